"""The few collective operations a zeroth-order step makes when it runs on several processes.

Processes that train one model together need to agree on a handful of scalars per step (the
passes' losses); the direction z is regenerated identically everywhere from the shared seed. This
module says which process group a step talks to, all-reduces the losses as one small float64
tensor, checks that the processes are in step, and finds the local storage of a sharded (DTensor)
parameter. On one process it does nothing, and it never imports ``torch.distributed.tensor``
(over a second) unless a DTensor already exists.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from adamezo._checks import check_float

__all__ = [
    "DistributedStepError",
    "LocalShard",
    "LossReduction",
    "ProcessGroupChoice",
    "StepCollective",
    "active_group",
    "all_reduce_sum",
    "check_agreement",
    "check_process_group",
    "group_size",
    "local_shard",
    "reduce_losses",
    "sum_over_shards",
]

ProcessGroupChoice = Any
"""``None`` (the default group when one is initialised), ``False`` (never communicate), or a
``torch.distributed.ProcessGroup``. Typed ``Any`` because ``ProcessGroup`` is missing from torch
builds without distributed support."""


class DistributedStepError(RuntimeError):
    """The processes of a distributed run are out of step, or another process failed a step."""


class LocalShard(NamedTuple):
    """What a process holds of one parameter: the storage the kernels write, the index of its
    first element in the full flattened parameter, and into how many distinct shards the
    parameter is split across the process group (1: every process holds all of it)."""

    tensor: torch.Tensor
    offset: int
    shards: int


def check_process_group(value: ProcessGroupChoice) -> ProcessGroupChoice:
    """``value`` if it is ``None``, ``False`` or a ProcessGroup, else TypeError."""
    if value is None or value is False:
        return value
    if dist.is_available() and isinstance(value, dist.ProcessGroup):
        return value
    raise TypeError(
        "process_group must be None (the default group when torch.distributed is initialised), "
        f"False (no communication) or a torch.distributed.ProcessGroup, got {value!r}"
    )


def active_group(choice: ProcessGroupChoice) -> dist.ProcessGroup | None:
    """The group a step communicates over, or None when there is nobody to talk to.

    ``None`` means the default group if ``torch.distributed`` is initialised; ``False`` never
    communicates; a group of one process needs no communication either.
    """
    if choice is False:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        if choice is None:
            return None
        raise RuntimeError(
            "process_group was given but torch.distributed is not initialised; call "
            "torch.distributed.init_process_group() first"
        )
    group = dist.group.WORLD if choice is None else choice
    return group if dist.get_world_size(group) > 1 else None


def group_size(group: dist.ProcessGroup) -> int:
    """The number of processes in ``group``."""
    return dist.get_world_size(group)


def _device(group: dist.ProcessGroup) -> torch.device:
    # gloo and MPI reduce host memory; NCCL-style backends only reach accelerator memory.
    backend = str(dist.get_backend(group))
    if "gloo" in backend or "mpi" in backend or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def all_reduce_sum(values: Sequence[float], group: dist.ProcessGroup) -> list[float]:
    """The element-wise sum over the group of ``values``, as one float64 all-reduce."""
    buffer = torch.tensor(values, dtype=torch.float64, device=_device(group))
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=group)
    return buffer.tolist()


def check_agreement(
    group: dist.ProcessGroup,
    facts: dict[str, int],
    checksums: Sequence[torch.Tensor] = (),
    advice: str = "",
) -> None:
    """Raise :class:`DistributedStepError` unless every process of ``group`` has the same
    ``facts`` and, up to summation rounding, the same Σ over ``checksums`` of their elements.

    One all-reduce of 2·(len(facts) + 2) float64 numbers (MAX of v and −v gives min and max).
    Integer facts must be below 2**53 to compare exactly.
    """
    total = sum(float(t.sum(dtype=torch.float64)) for t in checksums)
    magnitude = sum(float(torch.linalg.vector_norm(t, 1)) for t in checksums)
    values = [*map(float, facts.values()), total, magnitude]
    both = [*values, *(-v for v in values)]
    buffer = torch.tensor(both, dtype=torch.float64, device=_device(group))
    dist.all_reduce(buffer, op=dist.ReduceOp.MAX, group=group)
    maxima = buffer.tolist()
    high, low = maxima[: len(values)], [-v for v in maxima[len(values) :]]
    # Sums of equal tensors may differ in the last bits (summation order, thread count).
    tolerances = [0.0] * len(facts) + [1e-8 * high[-1], math.inf]
    names = [*facts, "sum of the weights", "weights' magnitude"]
    for name, lo, hi, tolerance in zip(names, low, high, tolerances, strict=True):
        if hi - lo > tolerance:
            raise DistributedStepError(
                f"the processes disagree on the {name} (from {lo:.17g} to {hi:.17g}); {advice}"
            )


def sum_over_shards(value: float, shards: int, group: dist.ProcessGroup) -> float:
    """Σ over all elements of a parameter set split into ``shards`` distinct shards across
    ``group``, from each process's sum over its own elements: every shard is held by
    size/shards processes, so the group's total counts each element size/shards times."""
    (total,) = all_reduce_sum([value], group)
    return total * shards / group_size(group)


def reduce_losses(
    losses: Sequence[torch.Tensor] | None,
    count: int,
    weight: float,
    group: dist.ProcessGroup,
) -> tuple[list[torch.Tensor] | None, int]:
    """The weighted mean over the group of each pass's loss, and how many processes failed.

    ℓ_i = Σ_r w_r ℓ_{r,i} / Σ_r w_r, which is the loss of the whole global batch when each
    process's ℓ_{r,i} is a mean over its w_r examples. One all-reduce of ``count`` + 2 float64
    numbers: [w·ℓ_1, …, w·ℓ_count, w, failed]. A process whose closure raised passes
    ``losses=None`` (it contributes only to ``failed``), so the others learn of it instead of
    waiting. Returns ``(None, failed)`` if any process failed or all weights are zero; else the
    losses as 0-d tensors in each local loss's dtype and device.
    """
    if losses is None:
        payload = [0.0] * (count + 1) + [1.0]
    else:
        # A process with weight 0 contributes nothing, even a NaN from an empty shard.
        scaled = [float(loss) * weight if weight > 0 else 0.0 for loss in losses]
        payload = [*scaled, weight, 0.0]
    *sums, total, failed = all_reduce_sum(payload, group)
    if losses is None or failed or total <= 0:
        return None, int(failed)
    return [
        torch.tensor(s / total, dtype=loss.dtype, device=loss.device)
        for s, loss in zip(sums, losses, strict=True)
    ], 0


def local_shard(param: torch.Tensor) -> LocalShard:
    """The part of ``param`` this process holds and writes (see :class:`LocalShard`).

    A plain tensor is held whole. A DTensor (FSDP2's ``fully_shard``) is supported when each of
    its placements is ``Replicate`` or ``Shard(0)``: its local rows are then one contiguous range
    of the flattened parameter, starting at the global index of its first row. Writes to it
    reach the forward only if FSDP2 re-gathers it each time: see
    :func:`adamezo.distributed.prepare_fsdp`.
    """
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None or not isinstance(param, dtensor.DTensor):
        return LocalShard(param.detach(), 0, 1)
    return _dtensor_shard(param, dtensor)


def _dtensor_shard(param: Any, dtensor: Any) -> LocalShard:
    mesh, rows = param.device_mesh, param.shape[0] if param.dim() else 1
    first_row, shards = 0, 1
    for mesh_dim, placement in enumerate(param.placements):
        if isinstance(placement, dtensor.Replicate):
            continue
        # Exact type: _StridedShard (FSDP + tensor parallel) subclasses Shard but interleaves rows.
        if type(placement) is not dtensor.Shard or placement.dim != 0:
            raise TypeError(
                f"a DTensor parameter with placements {param.placements} is not supported; each "
                "placement must be Replicate() or Shard(0), as fully_shard() makes them"
            )
        # DTensor and FSDP2 split rows like torch.chunk: ceil(rows / k) rows per shard.
        size, index = mesh.size(mesh_dim), mesh.get_local_rank(mesh_dim)
        per_shard = math.ceil(rows / size)
        start = min(index * per_shard, rows)
        first_row += start
        rows = min(start + per_shard, rows) - start
        shards *= size
    local = param.detach().to_local()
    row_numel = math.prod(param.shape[1:])
    if local.numel() != rows * row_numel or not local.is_contiguous():
        raise TypeError(
            f"the local shard of a DTensor parameter of shape {tuple(param.shape)} has shape "
            f"{tuple(local.shape)}, expected {rows} contiguous rows"
        )
    return LocalShard(local, first_row * row_numel, shards)


Agreement = Callable[[], tuple[dict[str, int], Sequence[torch.Tensor]]]
"""What the processes must agree on before stepping: named integer facts and the tensors whose
sums must match (built only when a check is due)."""


@dataclass(frozen=True)
class LossReduction:
    """The one exchange of a distributed step: this process's passes' losses, weighted by its
    share of the global batch, averaged over ``group``; and sums over sharded elements."""

    group: Any
    count: int
    weight: float
    step: int

    def __call__(self, losses: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """The passes' losses averaged over the group's processes, weighted by ``weight``.

        A process whose closure raised calls it with ``losses=None``; the others then raise
        :class:`DistributedStepError`, so that all of them restore θ and stay in step.
        """
        reduced, failed = reduce_losses(losses, self.count, self.weight, self.group)
        if losses is None:
            return None
        if failed:
            raise DistributedStepError(
                f"step {self.step}: the closure or the step's arguments raised on {failed} of "
                f"{group_size(self.group)} processes; "
                "the step was abandoned and the weights restored on every process"
            )
        if reduced is None:
            raise DistributedStepError(
                f"step {self.step}: the step weights sum to zero over the processes; pass "
                "step(closure, weight=n) with n > 0 on at least one process"
            )
        return reduced

    def complete_sum(self, value: float, shards: int) -> float:
        """This process's sum over its elements completed to the sum over all elements."""
        return value if shards == 1 else sum_over_shards(value, shards, self.group)


class StepCollective:
    """Everything an optimizer's step says to the other processes of a data-parallel run: a check
    that they are in step (before the first step on a group, and again after :meth:`forget`),
    then per step one :class:`LossReduction`. On one process it checks the weight and is silent.
    """

    def __init__(self, choice: ProcessGroupChoice) -> None:
        self.choice = check_process_group(choice)
        self._agreed: Any = None

    def forget(self) -> None:
        """The processes must agree again before the next step (e.g. after loading a state)."""
        self._agreed = None

    def begin(
        self,
        *,
        step: int,
        passes: int,
        weight: float | None,
        shards: set[int],
        agreement: Agreement,
        advice: str = "",
    ) -> LossReduction | None:
        """Checks before step ``step`` touches anything; the reduction for its losses, or None
        when there is nobody to talk to. ``shards`` holds each parameter's shard count."""
        group = active_group(self.choice)
        if group is None:
            if any(count > 1 for count in shards):
                raise ValueError(
                    "the parameters are sharded across processes (FSDP2), so the optimizer must "
                    "communicate: use process_group=None or the group they are sharded over"
                )
            check_weight(weight)
            return None
        if group is not self._agreed:
            facts, checksums = agreement()
            check_agreement(
                group,
                {**facts, "shard count": _shard_count(shards, group)},
                checksums=checksums,
                advice=advice,
            )
            self._agreed = group
        try:
            weight = check_weight(weight)
        except (TypeError, ValueError):
            # The weight is this process's own argument: tell the others, who are waiting for
            # this process's losses, that the step is off (they raise and restore).
            reduce_losses(None, passes, 0.0, group)
            raise
        return LossReduction(group, passes, weight, step)


def check_weight(weight: float | None) -> float:
    """A step's weight (this process's share of the global batch): 1 by default, else ≥ 0."""
    return 1.0 if weight is None else check_float("weight", weight, 0.0)


def _shard_count(shards: set[int], group: dist.ProcessGroup) -> int:
    shards = shards or {1}
    if len(shards) > 1:
        raise ValueError(
            "all trainable parameters must be sharded alike (FSDP2 on one mesh) or not at "
            f"all; got shard counts {sorted(shards)}"
        )
    (count,) = shards
    if group_size(group) % count:
        raise ValueError(
            f"parameters are split into {count} shards, which does not divide the "
            f"{group_size(group)} processes of the process group"
        )
    return count
