"""Kernels for the noise passes, and the choice of one per tensor.

``"auto"`` takes the fastest registered kernel that supports the tensor (by device, dtype and
what is installed) and falls back to the plain-torch reference, which supports everything.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adamezo.kernels.base import (
    CurvatureUpdate,
    DeferredSum,
    FusedUpdate,
    Kernel,
    MomentUpdate,
    compute_dtype,
)
from adamezo.kernels.reference import DEFAULT_CHUNK_SIZE, RademacherKernel, TorchKernel

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "CurvatureUpdate",
    "DeferredSum",
    "FusedUpdate",
    "Kernel",
    "KernelChoice",
    "MomentUpdate",
    "TorchKernel",
    "available_kernels",
    "compute_dtype",
    "rademacher_twin",
    "register_kernel",
    "registered_kernels",
    "resolve_kernel",
]

KernelFactory = Callable[[int], Kernel]
"""Builds a kernel for a chunk size; raises ImportError when its toolchain is missing."""

# Fastest first: "auto" tries them in this order.
_REGISTRY: dict[str, KernelFactory] = {}


def register_kernel(name: str, factory: KernelFactory, *, priority: int | None = None) -> None:
    """Make a kernel available by ``name``; ``priority`` 0 puts it first for ``"auto"``."""
    items = [(k, f) for k, f in _REGISTRY.items() if k != name]
    items.insert(len(items) if priority is None else priority, (name, factory))
    _REGISTRY.clear()
    _REGISTRY.update(items)


def _numba_kernel(chunk_size: int) -> Kernel:
    from adamezo.kernels.numba_cpu import NumbaKernel

    return NumbaKernel(chunk_size)


def _triton_kernel(chunk_size: int) -> Kernel:
    from adamezo.kernels.triton_gpu import TritonKernel

    return TritonKernel(chunk_size)


# Imported on first use, so that `import adamezo` does not pay for numba or triton.
register_kernel("torch", TorchKernel)
# "auto" tries numba (CPU only), then triton (CUDA; CPU too when TRITON_INTERPRET=1, which is for
# tests and must not win over numba), then the torch reference.
register_kernel("triton", _triton_kernel, priority=0)
register_kernel("numba", _numba_kernel, priority=0)


def rademacher_twin(kernel: Kernel, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Kernel:
    """The kernel that makes ``kernel``'s passes along Rademacher directions (sign(z), see
    :func:`adamezo.noise.rademacher`): the sign-table twin of the numba or Triton kernel (the
    same compiled passes reading a table of signs), the plain-torch :class:`RademacherKernel`
    for any other."""
    if kernel.name == "numba":
        from adamezo.kernels.numba_cpu import NumbaRademacherKernel

        return NumbaRademacherKernel(chunk_size)
    if kernel.name == "triton":
        from adamezo.kernels.triton_gpu import TritonRademacherKernel

        return TritonRademacherKernel(chunk_size)
    return RademacherKernel(chunk_size)


def registered_kernels() -> list[str]:
    """Every kernel name ``kernel=`` accepts besides ``"auto"`` (imports none of them)."""
    return list(_REGISTRY)


def available_kernels() -> list[str]:
    """Names of the registered kernels whose dependencies import here."""
    names = []
    for name, factory in _REGISTRY.items():
        try:
            factory(DEFAULT_CHUNK_SIZE)
        except ImportError:
            continue
        names.append(name)
    return names


KernelChoice = str | Kernel


class KernelSelector:
    """Picks and caches one kernel per (device, dtype) for an optimizer."""

    def __init__(self, choice: KernelChoice = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self.choice = choice
        self._instances: dict[str, Kernel] = {}
        self._cache: dict[tuple[torch.device, torch.dtype], Kernel] = {}
        if isinstance(choice, Kernel):
            return
        if not isinstance(choice, str):
            raise TypeError(
                f"kernel must be 'auto', a registered name or a Kernel, got {type(choice).__name__}"
            )
        if choice != "auto":
            if choice not in _REGISTRY:
                raise ValueError(
                    f"kernel must be 'auto' or one of {sorted(_REGISTRY)}, got {choice!r}"
                )
            self._instance(choice)  # fail now, not mid-step, if its toolchain is missing

    def _instance(self, name: str) -> Kernel:
        kernel = self._instances.get(name)
        if kernel is None:
            kernel = _REGISTRY[name](self.chunk_size)
            self._instances[name] = kernel
        return kernel

    def __call__(self, tensor: torch.Tensor) -> Kernel:
        key = (tensor.device, tensor.dtype)
        kernel = self._cache.get(key)
        if kernel is None:
            kernel = self._pick(tensor)
            self._cache[key] = kernel
        return kernel

    def _pick(self, tensor: torch.Tensor) -> Kernel:
        if isinstance(self.choice, Kernel):
            candidates = [self.choice]
        elif self.choice == "auto":
            candidates = []
            for name in _REGISTRY:
                try:
                    candidates.append(self._instance(name))
                except ImportError:
                    continue
        else:
            candidates = [self._instance(self.choice)]
        for kernel in candidates:
            if kernel.supports(tensor):
                return kernel
        raise ValueError(
            f"kernel {getattr(self.choice, 'name', self.choice)!r} does not support a "
            f"{tensor.dtype} tensor on {tensor.device}; use kernel='auto' or 'torch'"
        )


def resolve_kernel(choice: KernelChoice, tensor: torch.Tensor, chunk_size: int) -> Kernel:
    """The kernel ``choice`` selects for ``tensor`` (a one-off :class:`KernelSelector`)."""
    return KernelSelector(choice, chunk_size)(tensor)
