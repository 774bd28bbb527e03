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
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

__all__ = [
    "DistributedStepError",
    "LocalShard",
    "ProcessGroupChoice",
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
