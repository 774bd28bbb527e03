"""Exact perturbation: the closure sees round(θ + c·μ·d) while θ itself is never written.

Perturbing θ in place and restoring it (θ + μz, − 2μz, + μz) rounds the weights at every move: in
bfloat16 that drifts them by a large fraction of their size over a few hundred steps, and even in
float32 a step at lr 0 moves them. Here θ stays untouched during the passes. While the closure
runs, a :class:`~torch.overrides.TorchFunctionMode` replaces each trainable parameter, wherever a
torch operation takes it, by a perturbed copy round(θ + c·μ·d) computed from the unperturbed θ;
the update then starts from θ itself (restore = 0), so the weights after a step are
round(θ − η·u) and any number of steps at lr 0 leaves them bitwise unchanged.

Memory: the copies are made per tensor when an operation first takes it and kept in a small
cache of the most recently used ones (``CACHE_SIZE``), so at most the tensors of one operation
plus ``CACHE_SIZE`` copies are alive at once, never a copy of the model. A tensor used again
after it left the cache (tied embeddings) is regenerated, to the same values.

This sees every use of a parameter that goes through torch's Python API: module forwards,
functional calls, tensor methods and operators, ``.data``, in a module's own forward or outside
it, and plain tensors in a test's closure alike. It cannot see code that reads the storage
without torch's Python dispatch (TorchScript, a C++ extension handed a raw pointer); such code
would read the unperturbed θ, and ``perturbation="in_place"`` is the option for it.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from adamezo.zo_step import Perturbation

HALF_DTYPES = (torch.bfloat16, torch.float16)
"""Where ``perturbation="auto"`` is exact: the in-place path's rounding drifts these weights by a
large fraction of their size; in float32 it moves them by about 1e-8 relative, and the exact
path's step costs about 1.2× the in-place one on a CPU (docs/benchmarks.md)."""

CACHE_SIZE = 2
"""Perturbed copies kept after their operation, besides those of the operation running now."""


_VALUE_PROPERTIES = frozenset({"data", "T", "mT", "H", "mH", "real"})
"""Tensor properties that return the values (a view); every other property is metadata."""

_METADATA_METHODS = frozenset(
    {
        "size",
        "dim",
        "ndimension",
        "numel",
        "nelement",
        "stride",
        "storage_offset",
        "is_contiguous",
        "is_floating_point",
        "is_complex",
        "element_size",
        "get_device",
        "data_ptr",
        "__len__",
        "__format__",
    }
)
"""Tensor methods that read no values, answered by θ itself without making a copy."""


def substitutable(param: torch.Tensor) -> bool:
    """Whether the closure's uses of ``param`` can be redirected to a perturbed copy: a plain
    tensor, not a DTensor (FSDP2 gathers a new tensor from the shards for each forward, which
    the optimizer never sees, so sharded parameters are perturbed in place)."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    return dtensor is None or not isinstance(param, dtensor.DTensor)


def perturbation_for(optimizer: Any, slots: Sequence[Any], step: int) -> Perturbation:
    """How ``optimizer`` (a ``ZerothOrderOptimizer``) shows θ + c·μ·d to the closure at ``step``:
    exactly if its ``perturbation`` option is ``"exact"``, or ``"auto"`` and a trainable tensor is
    bfloat16 or float16; in place otherwise, and always when a parameter is sharded.
    Its public ``shift(slots, step, scale, query)`` moves tensors in place along query
    ``query``'s direction, ``perturbed_copy(slot, step, scale, query)`` returns round(θ + scale·d)
    as a new tensor."""
    mu = optimizer.perturbation_scale
    mode = optimizer.config.perturbation
    if mode == "auto":
        mode = "exact" if any(s.tensor.dtype in HALF_DTYPES for s in slots) else "in_place"
    if mode == "exact" and all(substitutable(slot.param) for slot in slots):
        return ExactPerturbation(
            [slot.param for slot in slots],
            lambda i, c, j: optimizer.perturbed_copy(slots[i], step, c * mu, j),
        )
    return Perturbation(
        lambda i, c, j: optimizer.shift(slots[i : i + 1], step, c * mu, j),
        len(slots),
        lambda i, c, j, k: optimizer.directions.switch(slots[i], step, c * mu, j, k),
    )


class ExactPerturbation(Perturbation):
    """A :class:`~adamezo.zo_step.Perturbation` that never moves θ (so ``offset`` stays 0 and
    ``undo`` has nothing to write); ``move_to(c, j)`` only says which offset (and query) the next
    ``evaluating()`` block shows the closure.

    ``perturbed(i, c, j)`` returns round(θ_i + c·μ·d_{j,i}) as a new tensor; ``params[i]`` is
    trainable tensor i as the closure's code holds it.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        perturbed: Callable[[int, float, int], torch.Tensor],
        cache_size: int = CACHE_SIZE,
    ) -> None:
        super().__init__(lambda i, c, j: None, len(params))
        self._params = list(params)  # held, so that their ids stay theirs during the step
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._make = perturbed
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self.shown = 0.0
        """The offset c the closure sees inside ``evaluating()``."""

    @property
    def cached_bytes(self) -> int:
        """Bytes of the perturbed copies the cache holds now (for memory measurements)."""
        return sum(copy.numel() * copy.element_size() for copy in self._cache.values())

    def move_to(self, offset: float, query: int = 0) -> None:
        self.shown, self.query = offset, query
        self._cache.clear()

    def undo(self) -> None:
        self._cache.clear()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        if self.shown == 0.0:
            yield
            return
        try:
            with _Substitution(self):
                yield
        finally:
            self._cache.clear()

    def perturbed(self, index: int) -> torch.Tensor:
        """round(θ_i + c·μ·d_i) for the shown offset c, from the cache or made now."""
        copy = self._cache.get(index)
        if copy is None:
            copy = self._make(index, self.shown, self.query)
            self._cache[index] = copy
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return copy

    def substitute(self, value: Any) -> Any:
        """``value`` with every trainable tensor in it (itself, or one level of list or tuple)
        replaced by its perturbed copy; ``value`` itself when it holds none."""
        if isinstance(value, torch.Tensor):
            index = self._index.get(id(value))
            return value if index is None else self.perturbed(index)
        if isinstance(value, (list, tuple)) and any(id(v) in self._index for v in value):
            return type(value)(self.substitute(v) for v in value)
        return value


class _Substitution(TorchFunctionMode):
    """Hands every torch operation the perturbed copies in place of the trainable tensors."""

    def __init__(self, owner: ExactPerturbation) -> None:
        super().__init__()
        self._owner = owner

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        # Every torch call in the forward comes through here: return early (no allocation) when
        # no argument can hold a trainable tensor.
        kwargs = kwargs or {}
        index = self._owner._index
        for value in (*args, *kwargs.values()) if kwargs else args:
            if id(value) in index or type(value) in _SEQUENCES:
                break
        else:
            return func(*args, **kwargs)
        if _reads_values(func):
            substitute = self._owner.substitute
            args = tuple(substitute(a) for a in args)
            kwargs = {k: substitute(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


_SEQUENCES = (list, tuple)


def _reads_values(func: Any) -> bool:
    name = getattr(func, "__name__", "")
    if name == "__get__":
        return getattr(getattr(func, "__self__", None), "__name__", "") in _VALUE_PROPERTIES
    return name not in _METADATA_METHODS
