"""The kernel contract: the two element-wise passes every zeroth-order step makes over a tensor.

A kernel knows how to (1) add a multiple of the noise z to a tensor and (2) apply the fused
restore-and-update of docs/algorithms.md §1–3. Optimizers describe *what* to compute with a
:class:`FusedUpdate`; kernels decide *how* (chunked torch, compiled CPU loops, GPU kernels). All
kernels follow the exact operation order below, so that they agree bit for bit where their
arithmetic is IEEE.

The fused update, per element, in the compute dtype (float64 for float64 tensors, else float32)::

    t = θ + restore·z₀                                   restore the last perturbation
    m = c₀·z₀ + c₁·z₁ + … + c_{n−1}·z_{n−1}              left to right
    v = d₀·(z₀·z₀) + … + d_{n−1}·(z_{n−1}·z_{n−1})        only if second moments are used
    u = (gain·m) / (sqrt(v) + eps)     or     u = gain·m
    θ' = t − lr·(u + weight_decay·t)

where z_k is the noise of stream k (stream 0 is the current step's), each product is rounded once
(no fused multiply-add), sums run left to right starting from +0, sqrt and the division are
correctly rounded (IEEE), and coefficients are rounded to the compute dtype once, on the host.
bfloat16 and float16 tensors are read exactly into float32 and θ' is rounded to nearest even.
The kernel returns Σ(θ' − t)² over the tensor (θ' before that final rounding), accumulated in
float64, for the update-norm log; its summation order is the kernel's own, so kernels agree on
it to float64 rounding, not bit for bit.

Two more update passes read and write per-element state buffers of the tensor's shape and dtype
(the baselines that keep them): :class:`MomentUpdate` (ZO-Adam's m and v) and
:class:`CurvatureUpdate` (HiZOO's diagonal Hessian H, whose perturbations move θ along z/√H,
:meth:`Kernel.add_preconditioned_noise`). Their rules are in those classes; the rounding rules
above hold for them too, and state values are rounded once to the state's dtype.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from adamezo.noise import check_uint64 as _check_uint64
from adamezo.noise import normal

if TYPE_CHECKING:
    from adamezo.kernels.lowrank import ProductPasses

NOISE_SQ_CHUNK = 1 << 20
"""Elements per chunk of the default :meth:`Kernel.noise_sq_sum` (a kernel's own ``chunk_size``
wins)."""

COMPILED_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
"""Storage dtypes the compiled kernels handle."""


def is_dense(tensor: torch.Tensor, device_type: str) -> bool:
    """Whether ``tensor`` is a contiguous strided tensor of a compiled dtype on ``device_type``."""
    return (
        tensor.device.type == device_type
        and tensor.dtype in COMPILED_DTYPES
        and tensor.layout == torch.strided
        and tensor.is_contiguous()
    )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the update math runs in: float64 stays float64, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class FusedUpdate:
    """Coefficients of one fused restore-and-update pass over one tensor (see module docstring)."""

    restore: float
    m_coefs: tuple[float, ...]
    v_coefs: tuple[float, ...] | None
    gain: float
    eps: float
    lr: float
    weight_decay: float

    def __post_init__(self) -> None:
        if not self.m_coefs:
            raise ValueError("m_coefs must hold at least one coefficient (stream 0)")
        if self.v_coefs is not None and len(self.v_coefs) != len(self.m_coefs):
            raise ValueError(
                f"v_coefs must match m_coefs in length, got {len(self.v_coefs)} and "
                f"{len(self.m_coefs)}"
            )

    @classmethod
    def sgd(
        cls, restore: float, coefficients: Sequence[float], lr: float, weight_decay: float
    ) -> FusedUpdate:
        """The MeZO-shaped update u = c₀·z₀ + c₁·z₁ + … (no second moment, gain 1)."""
        return cls(
            restore=restore,
            m_coefs=tuple(coefficients),
            v_coefs=None,
            gain=1.0,
            eps=0.0,
            lr=lr,
            weight_decay=weight_decay,
        )

    def check_streams(self, bases: Sequence[int]) -> None:
        """Raise ValueError unless there is one stream base per coefficient."""
        if len(bases) != len(self.m_coefs):
            raise ValueError(f"got {len(bases)} streams for {len(self.m_coefs)} coefficients")


@dataclass(frozen=True)
class MomentUpdate:
    """ZO-Adam's pass over one tensor and its moment buffers m, v (docs/algorithms.md §4), per
    element in the compute dtype, each operation rounded once::

        t  = θ + z·restore
        g  = z·grad
        m' = m·beta1 + g·(1 − beta1)
        v' = v·beta2 + (g·g)·(1 − beta2)
        u  = (m' / correction1) / (sqrt(v' / correction2) + eps)
        θ' = t − (t·weight_decay + u)·lr

    1 − beta1 and 1 − beta2 are formed on the host in float64, then rounded like every
    coefficient; ``correction`` k is the bias correction 1 − beta_k^{t+1}."""

    restore: float
    grad: float
    beta1: float
    beta2: float
    correction1: float
    correction2: float
    eps: float
    lr: float
    weight_decay: float

    def coefficients(self) -> tuple[float, ...]:
        """The scalars in the order the compiled passes read them."""
        return (
            self.restore,
            self.grad,
            self.beta1,
            1.0 - self.beta1,
            self.beta2,
            1.0 - self.beta2,
            self.correction1,
            self.correction2,
            self.eps,
            self.lr,
            self.weight_decay,
        )


@dataclass(frozen=True)
class CurvatureUpdate:
    """HiZOO's pass over one tensor and its diagonal Hessian estimate H (docs/algorithms.md §6),
    per element in the compute dtype, each operation rounded once::

        t  = θ + (z / sqrt(h))·restore
        h' = h·(1 − smoothing) + ((h·(z·z))·curvature)·smoothing
        u  = (z·grad) / sqrt(h')
        θ' = t − (t·weight_decay + u)·lr

    where ``curvature`` is the step's |ℓ⁺ + ℓ⁻ − 2ℓ⁰| / (2μ²) and 1 − smoothing is formed on the
    host in float64."""

    restore: float
    grad: float
    curvature: float
    smoothing: float
    lr: float
    weight_decay: float

    def coefficients(self) -> tuple[float, ...]:
        """The scalars in the order the compiled passes read them."""
        return (
            self.restore,
            self.grad,
            self.curvature,
            1.0 - self.smoothing,
            self.smoothing,
            self.lr,
            self.weight_decay,
        )


StateUpdate = MomentUpdate | CurvatureUpdate
"""The coefficients of an update pass that reads and writes per-element state."""


def check_state(name: str, state: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """``state``, after checking that it is a contiguous buffer of ``tensor``'s shape, dtype and
    device (ValueError naming ``name`` otherwise)."""
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(state).__name__}")
    if (
        state.shape != tensor.shape
        or state.dtype != tensor.dtype
        or state.device != tensor.device
        or not state.is_contiguous()
    ):
        raise ValueError(
            f"{name} must be a contiguous {tensor.dtype} tensor of shape {tuple(tensor.shape)} "
            f"on {tensor.device}, got a {state.dtype} tensor of shape {tuple(state.shape)} on "
            f"{state.device} (contiguous: {state.is_contiguous()})"
        )
    return state


class Kernel(abc.ABC):
    """Element-wise noise passes over one contiguous tensor.

    ``bases`` are stream bases from :func:`adamezo.noise.stream_base`; ``offset`` is the index of
    the tensor's first element in the full (unsharded) tensor, so a shard regenerates its part of z.

    The public methods check their arguments once, here, and call the kernel's own
    ``_add_noise`` and ``_fused_update`` with the tensor's compute dtype (the optimizers call
    :meth:`fused_update_deferred`; :meth:`fused_update` is it, read back at once).
    ``noise_sq_sum`` is an optional capability (only MeZO-switch needs it): its default
    regenerates z in plain torch, and a kernel may override ``_noise_sq_sum`` with a faster pass.
    The state passes (:meth:`moment_update` and :meth:`curvature_update`, both through
    ``_state_update``, and :meth:`add_preconditioned_noise`) are optional too: the built-in
    kernels have them, and a kernel without them raises NotImplementedError when ZO-Adam or
    HiZOO asks for them.
    """

    name: str = "abstract"

    @abc.abstractmethod
    def supports(self, tensor: torch.Tensor) -> bool:
        """Whether this kernel can process ``tensor`` (device, dtype, layout)."""

    def require(self, tensor: torch.Tensor) -> torch.dtype:
        """The compute dtype of ``tensor``; ValueError if this kernel cannot process it."""
        if not self.supports(tensor):
            raise ValueError(
                f"the {self.name} kernel does not support a {tensor.dtype} tensor on "
                f"{tensor.device} (contiguous: {tensor.is_contiguous()}); use kernel='auto'"
            )
        return compute_dtype(tensor.dtype)

    def add_noise(self, tensor: torch.Tensor, base: int, scale: float, offset: int = 0) -> None:
        """θ ← θ + scale·z in place (in the compute dtype, rounded once to the storage dtype)."""
        dtype = self.require(tensor)
        self._add_noise(tensor, _check_uint64("base", base), scale, offset, dtype)

    def switch_noise(
        self, tensor: torch.Tensor, old: int, new: int, scale: float, offset: int = 0
    ) -> None:
        """θ + scale·z_old → θ + scale·z_new in place: bitwise :meth:`add_noise` of −scale along
        stream ``old``, then of scale along ``new`` (a multi-query step's move from one query to
        the next). The default makes those two passes; a kernel may override ``_switch_noise``
        with one pass over the tensor."""
        self.require(tensor)
        old, new = _check_uint64("old", old), _check_uint64("new", new)
        self._switch_noise(tensor, old, new, scale, offset)

    def _switch_noise(
        self, tensor: torch.Tensor, old: int, new: int, scale: float, offset: int
    ) -> None:
        """:meth:`switch_noise` on checked arguments."""
        dtype = compute_dtype(tensor.dtype)
        self._add_noise(tensor, old, -scale, offset, dtype)
        self._add_noise(tensor, new, scale, offset, dtype)

    def perturbed_copy(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int = 0
    ) -> torch.Tensor:
        """A new tensor round(θ + scale·z), bitwise what :meth:`add_noise` would leave in θ;
        θ is not written. The default copies θ and adds the noise to the copy (two passes); a
        kernel may override ``_perturbed_copy`` with one."""
        dtype = self.require(tensor)
        return self._perturbed_copy(tensor, _check_uint64("base", base), scale, offset, dtype)

    def _perturbed_copy(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """:meth:`perturbed_copy` on checked arguments."""
        copy = tensor.detach().clone()
        self._add_noise(copy, base, scale, offset, dtype)
        return copy

    def fused_update(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int = 0,
    ) -> float:
        """Apply ``update`` in place; return Σ(θ' − t)² (float64)."""
        return float(self.fused_update_deferred(tensor, bases, update, offset))

    def fused_update_deferred(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int = 0,
    ) -> float | torch.Tensor:
        """:meth:`fused_update`, with Σ(θ' − t)² possibly left on the tensor's device as a 0-dim
        float64 tensor: reading it makes the host wait for the GPU, so a step over many tensors
        adds them up in a :class:`DeferredSum` and reads the total once."""
        dtype = self.require(tensor)
        update.check_streams(bases)
        checked = [_check_uint64("bases", base) for base in bases]
        return self._fused_update(tensor, checked, update, offset, dtype)

    def product_passes(self) -> ProductPasses | None:
        """This kernel's compiled element-wise sweeps for low-rank directions
        (:class:`adamezo.kernels.lowrank.ProductPasses`), or None for the plain-torch ones."""
        return None

    def noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int = 0) -> float:
        """Σ z² over the elements of ``tensor``'s stream (float64), without touching ``tensor``."""
        self.require(tensor)
        return self._noise_sq_sum(tensor, _check_uint64("base", base), offset)

    def moment_update(
        self,
        tensor: torch.Tensor,
        exp_avg: torch.Tensor,
        exp_avg_sq: torch.Tensor,
        base: int,
        update: MomentUpdate,
        offset: int = 0,
    ) -> float | torch.Tensor:
        """Apply ``update`` (:class:`MomentUpdate`) to θ, m = ``exp_avg`` and v = ``exp_avg_sq``
        in place; return Σ(θ' − t)², possibly left on the device as :meth:`fused_update_deferred`
        leaves it."""
        dtype = self.require(tensor)
        check_state("exp_avg", exp_avg, tensor)
        check_state("exp_avg_sq", exp_avg_sq, tensor)
        base = _check_uint64("base", base)
        return self._state_update(tensor, (exp_avg, exp_avg_sq), base, update, offset, dtype)

    def curvature_update(
        self,
        tensor: torch.Tensor,
        hessian: torch.Tensor,
        base: int,
        update: CurvatureUpdate,
        offset: int = 0,
    ) -> float | torch.Tensor:
        """Apply ``update`` (:class:`CurvatureUpdate`) to θ and H = ``hessian`` in place; return
        Σ(θ' − t)², possibly left on the device."""
        dtype = self.require(tensor)
        check_state("hessian", hessian, tensor)
        base = _check_uint64("base", base)
        return self._state_update(tensor, (hessian,), base, update, offset, dtype)

    def add_preconditioned_noise(
        self,
        tensor: torch.Tensor,
        hessian: torch.Tensor,
        base: int,
        scale: float,
        offset: int = 0,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """round(θ + (z / sqrt(h))·scale), HiZOO's perturbation, written into ``out`` (a tensor
        like θ) or, when ``out`` is None, into θ itself; returns what it wrote."""
        dtype = self.require(tensor)
        check_state("hessian", hessian, tensor)
        if out is None:
            out = tensor
        elif out is not tensor:
            check_state("out", out, tensor)
        base = _check_uint64("base", base)
        self._add_preconditioned_noise(out, tensor, hessian, base, scale, offset, dtype)
        return out

    def _missing(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"the {self.name} kernel has no {what} pass (ZO-Adam and HiZOO need it); use "
            "kernel='auto' or 'torch'"
        )

    def _state_update(
        self,
        tensor: torch.Tensor,
        states: tuple[torch.Tensor, ...],
        base: int,
        update: StateUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float | torch.Tensor:
        """:meth:`moment_update` (``states`` = (m, v)) or :meth:`curvature_update` (``states`` =
        (H,)) on checked arguments, by the type of ``update``."""
        raise self._missing("state-update")

    def _add_preconditioned_noise(
        self,
        out: torch.Tensor,
        tensor: torch.Tensor,
        hessian: torch.Tensor,
        base: int,
        scale: float,
        offset: int,
        dtype: torch.dtype,
    ) -> None:
        """:meth:`add_preconditioned_noise` on checked arguments (``out`` may be ``tensor``)."""
        raise self._missing("preconditioned-noise")

    @abc.abstractmethod
    def _add_noise(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> None:
        """:meth:`add_noise` on checked arguments; ``dtype`` is the compute dtype."""

    @abc.abstractmethod
    def _fused_update(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float | torch.Tensor:
        """:meth:`fused_update_deferred` on checked arguments (one base per coefficient)."""

    def _noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int) -> float:
        """:meth:`noise_sq_sum` on checked arguments: z regenerated chunk by chunk in torch,
        each chunk's Σ z² in float64, the chunks' sums added in order."""
        chunk = getattr(self, "chunk_size", None) or NOISE_SQ_CHUNK
        total = 0.0
        for start in range(0, tensor.numel(), chunk):
            count = min(chunk, tensor.numel() - start)
            z = normal(base, count, offset + start, tensor.device).double()
            total += float(z.square().sum())
        return total


class DeferredSum:
    """A float64 sum of host floats and 0-dim device tensors that reads each device back once.

    Values are added left to right: host floats on the host, device values on their device (the
    GPU keeps working while the host goes on), and :meth:`value` adds the host part and each
    device's part in the order the devices first appeared.
    """

    def __init__(self) -> None:
        self._host = 0.0
        self._devices: dict[torch.device, torch.Tensor] = {}

    def add(self, value: float | torch.Tensor) -> None:
        if not isinstance(value, torch.Tensor):
            self._host += value
            return
        partial = self._devices.get(value.device)
        self._devices[value.device] = value if partial is None else partial + value

    def value(self) -> float:
        """The sum as a Python float (one host-device synchronisation per device)."""
        total = self._host
        for partial in self._devices.values():
            total += float(partial)
        return total
