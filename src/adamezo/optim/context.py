"""What one step of a zeroth-order optimizer hands to its update rule: the tensors and the scalars.

:class:`TensorSlot` is one trainable tensor as the kernels see it; :class:`StepContext` is
everything a successful step knows when the update rule runs.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adamezo.collectives import LossReduction, local_shard
from adamezo.kernels import DeferredSum
from adamezo.zo_step import Perturbation


@dataclass(frozen=True)
class TensorSlot:
    """One trainable tensor as the kernels see it: its noise key, the parameter (which keys its
    ``state``), the storage the kernels write, and its param group.

    ``offset`` is the index of ``tensor``'s first element in the full tensor, non-zero only for a
    shard of a distributed parameter; ``shards`` is the number of distinct shards the parameter
    is split into across the processes (1 when every process holds all of it).
    """

    key: int
    param: torch.Tensor
    tensor: torch.Tensor
    group: dict[str, Any]
    offset: int = 0
    shards: int = 1


@dataclass(frozen=True)
class StepContext:
    """What one successful step hands to the update rule."""

    step: int
    """Index of this step among all steps drawn (skipped ones included): it seeds z_t."""
    update_index: int
    """t of the update formulas: how many updates were applied before this one."""
    projected_grad: float
    losses: tuple[float, ...]
    """The closure's values, one per pass, in the order of ``passes``."""
    offset: float
    """Where θ sits now, in units of the perturbation (−1 after the standard passes)."""
    slots: tuple[TensorSlot, ...]
    perturbation: Perturbation
    """Where each tensor stands; the update releases each slot once it has rewritten it."""
    process_group: Any = None
    """The group this step communicated over, None on a single process."""
    reduction: LossReduction | None = None
    """The step's exchange with the other processes, None on a single process."""
    projected_grads: tuple[float, ...] = ()
    """p_j of each query j (``projected_grad`` is their mean; the same value for one query)."""
    query: int = 0
    """The query whose direction θ sits on (at ``offset``) when the update runs."""

    @property
    def groups(self) -> tuple[dict[str, Any], ...]:
        """The param groups that hold this step's trainable tensors, in order, each once."""
        seen: dict[int, dict[str, Any]] = {}
        for slot in self.slots:
            seen.setdefault(id(slot.group), slot.group)
        return tuple(seen.values())

    def restore_first(self, queries: Iterable[int]) -> list[int]:
        """``queries`` in order with :attr:`query`, the one θ sits on, moved first: a fused
        update restores θ along its first stream."""
        return [self.query, *(j for j in queries if j != self.query)]

    def rewrite(self) -> Iterator[TensorSlot]:
        """The step's slots in order, each released from the perturbation once the loop body
        that rewrites it has finished (a body that raises leaves its slot to be restored)."""
        for index, slot in enumerate(self.slots):
            yield slot
            self.perturbation.release(index)

    def rewrite_summed(self, update: Callable[[TensorSlot], float | torch.Tensor]) -> float:
        """Run ``update`` on each slot of :meth:`rewrite` and return the sum of what it returns
        (a slot's Σ(Δθ)², a float or a 0-dim device tensor), each device's part read back once,
        after the last slot (:class:`~adamezo.kernels.DeferredSum`)."""
        total = DeferredSum()
        for slot in self.rewrite():
            total.add(update(slot))
        return total.value()

    def abandon(self) -> None:
        """After the update raised: move the tensors it has not rewritten back to θ.

        Update rules compute every scalar before they write a tensor, so an error in the rule
        (or in an argument it checks) leaves all of θ and the optimizer state as they were.
        Only a failure inside a kernel, between tensors (out of memory, a bug), can leave some
        tensors updated; that is said in a warning, since θ is then neither θ_t nor θ_{t+1}.
        """
        rewritten = self.perturbation.released
        self.perturbation.undo()
        if rewritten:
            warnings.warn(
                f"step {self.step}: the update failed after rewriting {rewritten} of "
                f"{len(self.slots)} trainable tensors; those hold their updated values, the "
                "others were restored, and the optimizer state was not advanced",
                RuntimeWarning,
                stacklevel=4,
            )

    def global_sum(self, value: float) -> float:
        """Complete a sum over this process's elements of the slots to the sum over all
        elements: the identity unless parameters are sharded across the processes."""
        shards = self.slots[0].shards if self.slots else 1
        if shards == 1 or self.reduction is None:
            return value
        return self.reduction.complete_sum(value, shards)


def check_param(param: Any) -> None:
    """Raise unless ``param`` is a dense, contiguous floating-point tensor."""
    if not isinstance(param, torch.Tensor):
        raise TypeError(f"params must be tensors, got {type(param).__name__}")
    if param.layout != torch.strided:
        raise TypeError(f"params must be dense (strided) tensors, got layout {param.layout}")
    if not param.is_floating_point():
        raise TypeError(f"params must be floating-point tensors, got dtype {param.dtype}")
    if not param.is_contiguous():
        raise ValueError(
            "params must be contiguous tensors (the noise is indexed by element position); "
            "call .contiguous() on the parameter's data first"
        )


def check_distinct(existing: Sequence[torch.Tensor], new: Sequence[torch.Tensor]) -> None:
    """Raise ValueError if a tensor of ``new`` is listed twice, or shares memory with another.

    Every listed tensor draws its own noise and gets its own update, so a tensor listed twice
    (or two views of one storage) would be perturbed and updated twice per step, along two
    different directions: silently wrong, never what the caller meant.
    """
    seen = {id(p): i for i, p in enumerate(existing)}
    for i, param in enumerate(new):
        if id(param) in seen:
            raise ValueError(
                f"parameter {i} of this param group (shape {tuple(param.shape)}) is already in "
                "the optimizer's parameters, the same tensor twice: each tensor may be listed "
                "once (remove the duplicate, e.g. a tied weight listed under both names)"
            )
        seen[id(param)] = len(seen)
    spans = []
    for index, param in enumerate([*existing, *new]):
        tensor = local_shard(param)[0]
        if tensor.numel() == 0 or tensor.device.type == "meta":
            continue
        try:
            ptr = tensor.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError, TypeError):  # tensors without a storage
            continue
        size = tensor.element_size()
        start = ptr + tensor.storage_offset() * size
        spans.append((tensor.device, start, start + tensor.numel() * size, index))
    spans.sort(key=lambda span: (str(span[0]), span[1]))
    for (dev_a, _, end_a, a), (dev_b, start_b, _, b) in itertools.pairwise(spans):
        if dev_a == dev_b and start_b < end_a:
            first, second = sorted((a, b))
            raise ValueError(
                f"parameters {first} and {second} (counting all param groups in order) share "
                "memory (they share storage: views of one tensor): each element would be "
                "perturbed and updated twice per step; pass each underlying tensor once"
            )


def check_group_params(params: Any, existing: Sequence[torch.Tensor]) -> list[Any]:
    """A param group's ``params`` as a list, each one checked (:func:`check_param`) and none
    shared with another or with the ``existing`` ones (:func:`check_distinct`)."""
    if isinstance(params, torch.Tensor):
        params = [params]
    elif isinstance(params, set):
        raise TypeError("a param group's params must be an ordered iterable, not a set")
    params = list(params or ())
    tensors = [entry[1] if isinstance(entry, tuple) else entry for entry in params]
    for tensor in tensors:
        check_param(tensor)
    check_distinct(existing, tensors)
    return params
