"""What one step of a zeroth-order optimizer hands to its update rule: the tensors and the scalars.

:class:`TensorSlot` is one trainable tensor as the kernels see it; :class:`StepContext` is
everything a successful step knows when the update rule runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from adamezo.collectives import LossReduction
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

    @property
    def groups(self) -> tuple[dict[str, Any], ...]:
        """The param groups that hold this step's trainable tensors, in order, each once."""
        seen: dict[int, dict[str, Any]] = {}
        for slot in self.slots:
            seen.setdefault(id(slot.group), slot.group)
        return tuple(seen.values())

    def rewrite(self) -> Iterator[TensorSlot]:
        """The step's slots in order, each released from the perturbation once the loop body
        that rewrites it has finished (a body that raises leaves its slot to be restored)."""
        for index, slot in enumerate(self.slots):
            yield slot
            self.perturbation.release(index)

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


def check_distinct(params: list[Any]) -> None:
    """Raise ValueError if a tensor appears twice or two tensors share elements of storage:
    each would be perturbed and stepped twice per step, silently. Entries may be (name, tensor)."""
    seen: dict[int, int] = {}
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for index, entry in enumerate(params):
        param = entry[1] if isinstance(entry, tuple) else entry
        if id(param) in seen:
            raise ValueError(
                f"params holds the same tensor twice (positions {seen[id(param)]} and {index}); "
                "pass each parameter once (model.parameters() lists tied weights once)"
            )
        seen[id(param)] = index
        if param.device.type == "meta" or type(param).__name__ == "DTensor":
            continue
        start = param.storage_offset() * param.element_size()
        span = (start, start + param.numel() * param.element_size(), index)
        for first, end, other in spans.setdefault(param.untyped_storage().data_ptr(), []):
            if span[0] < end and first < span[1] and param.numel():
                raise ValueError(
                    f"params {other} and {index} share storage (views of one tensor, or tied "
                    "weights as separate tensors); pass each piece of memory once"
                )
        spans[param.untyped_storage().data_ptr()].append(span)


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
