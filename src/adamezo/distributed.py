"""Helpers for training loops that run on several processes (``torchrun``, ``accelerate launch``).

The optimizers need nothing from here: with a process group initialised they all-reduce the
passes' losses themselves (see :class:`~adamezo.optim.base.ZerothOrderOptimizer`). A training loop
uses these helpers to start the group from the launcher's environment, give each process its
shard of the global batch, make every process start from the same weights, and write logs and
checkpoints from one process only. On a single process every helper is a no-op or the identity.
A model sharded with FSDP2's ``fully_shard`` must go through :func:`prepare_fsdp` before training.

A data-parallel loop::

    from adamezo import AdaMeZO, distributed

    def train(model, loader):
        distributed.broadcast_parameters(model)  # every process starts from rank 0's weights
        opt = AdaMeZO(model.parameters(), lr=1e-4, seed=0)
        for batch in loader:                     # the same global batches on every process
            shard, n = distributed.shard_batch(batch)
            loss = opt.step(lambda: loss_fn(model, shard), weight=n)
            if distributed.is_main_process():
                print(loss.item())

    with distributed.process_group_from_env():   # no-op unless launched by torchrun
        train(model, loader)
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from adamezo._checks import check_int
from adamezo.collectives import DistributedStepError, active_group, local_shard

__all__ = [
    "CollectiveLog",
    "DistributedStepError",
    "barrier",
    "broadcast_object",
    "broadcast_parameters",
    "count_collectives",
    "init_from_env",
    "is_main_process",
    "main_process_only",
    "prepare_fsdp",
    "process_group_from_env",
    "rank",
    "shard_batch",
    "shard_range",
    "world_size",
]

T = TypeVar("T")


def init_from_env(backend: str | None = None, timeout: timedelta | None = None) -> bool:
    """Initialise the default process group from the variables ``torchrun`` and
    ``accelerate launch`` set (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``,
    ``LOCAL_RANK``); return whether this is a run of several processes.

    Does nothing when ``WORLD_SIZE`` is unset or 1, or when the group already exists. With CUDA
    it binds this process to GPU ``LOCAL_RANK`` and defaults to NCCL, else to gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={size} but this torch build has no torch.distributed")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    options = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, **options)
    return True


@contextlib.contextmanager
def process_group_from_env(
    backend: str | None = None, timeout: timedelta | None = None
) -> Iterator[bool]:
    """:func:`init_from_env` for the length of a ``with`` block (yields whether the run has
    several processes); a group the block started is destroyed when it ends, however it ends.

    Why: a gloo group left to the interpreter's exit keeps its worker threads, and one of them
    may still be releasing the last collective's tensors when Python finalises; it then cannot
    take the GIL and the process aborts ("terminate called without an active exception"), failing
    the job that launched it. Destroying the group and collecting what still refers to it joins
    those threads while Python is alive. Let go of the objects that hold the group (an optimizer,
    a run's result) inside the block."""
    existed = dist.is_available() and dist.is_initialized()
    several = init_from_env(backend, timeout)
    try:
        yield several
    finally:
        if not existed and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
            gc.collect()  # the group's last references may sit in reference cycles


def world_size() -> int:
    """The number of processes in the default group; 1 when it is not initialised."""
    group = active_group(None)
    return 1 if group is None else dist.get_world_size(group)


def rank() -> int:
    """This process's rank in the default group; 0 when it is not initialised."""
    group = active_group(None)
    return 0 if group is None else dist.get_rank(group)


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that logs, evaluates and writes checkpoints."""
    return rank() == 0


def main_process_only(function: Callable[..., T]) -> Callable[..., T | None]:
    """Decorate ``function`` to run on rank 0 only; elsewhere the call returns None."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        return function(*args, **kwargs) if is_main_process() else None

    return wrapper


def barrier() -> None:
    """Wait until every process of the default group gets here (e.g. rank 0 wrote a file)."""
    group = active_group(None)
    if group is not None:
        dist.barrier(group)


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every process of the default group;
    ``value`` itself on one process. Use it where every process must decide alike from numbers
    each computed itself, which may differ in the last bits across devices."""
    group = active_group(None)
    if group is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def shard_range(total: int, rank: int, world_size: int) -> range:
    """The indices ``rank`` takes of ``total`` examples split into ``world_size`` contiguous
    shards as even as possible (the first ``total % world_size`` get one more), so that the
    shards in rank order are the whole batch. Raises if a shard would be empty."""
    world_size = check_int("world_size", world_size, 1)
    rank = check_int("rank", rank, 0, world_size - 1)
    total = check_int("total", total, 0)
    if total < world_size:
        raise ValueError(
            f"a batch of {total} examples cannot be split over {world_size} processes: each "
            "needs at least one (use a global batch size that is a multiple of the world size)"
        )
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def shard_batch(
    batch: Any, rank: int | None = None, world_size: int | None = None
) -> tuple[Any, int]:
    """This process's shard of a global batch, and its number of examples (pass it to
    ``step(closure, weight=n)``).

    ``batch`` is a tensor or array (examples along dim 0), a list of examples, or a dict or
    tuple of those with the same number of rows (a tokenizer's output), or a list of
    tensors/arrays (a ``TensorDataset`` batch): each is cut to the rows of :func:`shard_range`.
    A list holding anything but tensors/arrays is a list of examples. ``rank`` and
    ``world_size`` default to the default process group's (0 and 1 on a single process).
    """
    if rank is None or world_size is None:
        group = active_group(None)
        rank = 0 if group is None else dist.get_rank(group)
        world_size = 1 if group is None else dist.get_world_size(group)
    total = _batch_rows(batch)
    rows = shard_range(total, rank, world_size)
    return _take(batch, slice(rows.start, rows.stop)), len(rows)


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or (hasattr(value, "shape") and hasattr(value, "ndim"))


def _is_columns(batch: Any) -> bool:
    # A list of tensors is a DataLoader's batch of a TensorDataset; any other list holds examples.
    return isinstance(batch, (Mapping, tuple)) or (
        isinstance(batch, list) and len(batch) > 0 and all(map(_is_array, batch))
    )


def _columns(batch: Any) -> Iterable[Any]:
    return batch.values() if isinstance(batch, Mapping) else batch


def _batch_rows(batch: Any) -> int:
    if _is_array(batch):
        if batch.ndim == 0:
            raise ValueError("shard_batch needs a batch with examples along dim 0, got a scalar")
        return int(batch.shape[0])
    if _is_columns(batch):
        sizes = {_batch_rows(column) for column in _columns(batch)}
        if len(sizes) != 1:
            raise ValueError(
                f"every column of the batch must have the same number of rows, got {sorted(sizes)}"
            )
        return sizes.pop()
    if isinstance(batch, (list, tuple)):
        return len(batch)
    raise TypeError(
        "batch must be a tensor, an array, a list of examples, or a dict/tuple/list of tensors, "
        f"got {type(batch).__name__}"
    )


def _take(batch: Any, rows: slice) -> Any:
    if _is_array(batch) or not _is_columns(batch):
        return batch[rows]
    if isinstance(batch, Mapping):
        items = {key: _take(value, rows) for key, value in batch.items()}
        try:
            return type(batch)(items)
        except TypeError:  # a mapping type that cannot be built from a dict
            return items
    columns = [_take(column, rows) for column in batch]
    if hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*columns)
    return type(batch)(columns)


def broadcast_parameters(module_or_tensors: torch.nn.Module | Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values of a module's parameters and buffers (or of the given tensors) to
    every process, as ``DistributedDataParallel`` does at construction, so that data-parallel
    processes start from the same weights. Sharded (DTensor) parameters are left alone."""
    group = active_group(None)
    if group is None:
        return
    if isinstance(module_or_tensors, torch.nn.Module):
        tensors = [*module_or_tensors.parameters(), *module_or_tensors.buffers()]
    else:
        tensors = list(module_or_tensors)
    for tensor in tensors:
        local, _, shards = local_shard(tensor)
        if shards == 1:
            dist.broadcast(local, src=0, group=group)


def prepare_fsdp(model: torch.nn.Module) -> torch.nn.Module:
    """Make a model sharded with FSDP2's ``fully_shard`` train correctly with a zeroth-order
    optimizer: every FSDP module, the root included, reshards its parameters after each forward;
    returns ``model``. Call it after the last ``fully_shard`` and before training.

    Required, not an optimisation. The optimizers write each process's local shard in place and
    rely on the next forward to all-gather it. FSDP2 keeps the root module's parameters (and
    those of any module sharded with ``reshard_after_forward=False`` or an int) gathered after
    the forward, expecting a backward pass to free them; a zeroth-order step has none, so the
    next forward would reuse the stale gathered copy and never see the perturbation or update
    (``model.parameters()`` would even list the gathered copies). Costs one more all-gather per
    forward for the root's parameters, the same as any other layer's.
    """
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_reshard_after_forward(True, recurse=False)
            module.reshard()  # in case a forward already ran and left the parameters gathered
    return model


# Collectives of torch.distributed, each with the index of the argument this process sends.
_SENT_ARGUMENT = {
    "all_reduce": 0,
    "broadcast": 0,
    "all_gather": 1,
    "all_gather_into_tensor": 1,
    "all_gather_single": 1,
    "reduce_scatter": 1,
    "reduce_scatter_tensor": 1,
    "reduce_scatter_single": 1,
    "all_to_all_single": 1,
}


@dataclass
class CollectiveLog:
    """The collectives one process called: (function name, bytes it contributed) in order."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    def count(self, name: str | None = None) -> int:
        """How many calls (of ``name``, or of any collective)."""
        return sum(1 for called, _ in self.calls if name in (None, called))

    def bytes(self, name: str | None = None) -> int:
        """Bytes contributed by this process (of ``name``, or in total): the buffer of an
        all-reduce or broadcast, the local shard of an all-gather, the input of a
        reduce-scatter."""
        return sum(size for called, size in self.calls if name in (None, called))


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(map(_nbytes, value))
    return 0


@contextlib.contextmanager
def count_collectives() -> Iterator[CollectiveLog]:
    """Log the ``torch.distributed`` collectives this process calls inside the block (by their
    ``torch.distributed.<name>`` functions, which the optimizers and FSDP2 use), to measure
    what a training step communicates. A diagnostic: it patches module functions, so use it in
    one thread at a time."""
    log = CollectiveLog()
    originals = {name: getattr(dist, name) for name in _SENT_ARGUMENT if hasattr(dist, name)}
    depth = 0

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        index = _SENT_ARGUMENT[name]
        keyword = list(inspect.signature(original).parameters)[index]

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            if depth == 0:  # one collective may be built on another
                sent = args[index] if len(args) > index else kwargs.get(keyword)
                log.calls.append((name, _nbytes(sent)))
            depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth -= 1

        return counted

    for name, original in originals.items():
        setattr(dist, name, wrap(name, original))
    try:
        yield log
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


class PeerLostError(RuntimeError):
    """Another process of the group stopped (killed, crashed, or cut off) during a collective."""


# What gloo and NCCL say when the other end of a collective has gone away or never answered.
_PEER_FAILURES = re.compile(
    r"connection (reset|closed|refused)|broken pipe|timed out|timeout|"
    r"remote (process|worker|peer)|communicator was aborted|socket",
    re.IGNORECASE,
)


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another process is gone."""
    return isinstance(error, RuntimeError) and bool(_PEER_FAILURES.search(str(error)))


def peer_lost_error(error: BaseException, step: int) -> PeerLostError:
    """The error to raise on a surviving process, saying what happened and what to do."""
    return PeerLostError(
        f"step {step}: another process of the {world_size()}-process group is gone (killed, "
        f"crashed or cut off); this process (rank {rank()}) stops too. Restart the job with "
        f"--resume to continue from the last checkpoint. ({type(error).__name__}: {error})"
    )
