"""The part of a zeroth-order step every optimizer shares: perturb, evaluate, restore.

The closure is evaluated at θ + c·μ·d for a few offsets c (MeZO: +1, −1; HiZOO: 0, +1, −1), each
time under ``torch.no_grad()`` and from the same random-number state, so that dropout masks and any
random sampling inside the closure are identical across the passes. Whatever goes wrong in between,
an exception or a KeyboardInterrupt, θ is moved back to where it started and the random state
rewound before the error propagates. Each move of θ is complete or not made at all with respect to
ctrl-c, which is held back until the move ends (:func:`interrupts_deferred`).
"""

from __future__ import annotations

import contextlib
import numbers
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

Closure = Callable[[], torch.Tensor | float]


class RNGSnapshot:
    """The torch random state of the CPU and of the given CUDA devices, captured at creation."""

    def __init__(self, devices: Iterable[torch.device]) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = {
            d: torch.cuda.get_rng_state(d) for d in {d for d in devices if d.type == "cuda"}
        }

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        for device, state in self.cuda.items():
            torch.cuda.set_rng_state(state, device)


def as_scalar_loss(value: object) -> torch.Tensor:
    """The closure's return value as a detached 0-d tensor; rejects anything but a scalar."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"the closure must return a scalar loss, got a tensor of shape {tuple(value.shape)}"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"the closure must return a real scalar loss, got {value.dtype}")
        return value.detach().reshape(())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    raise TypeError(
        f"the closure must return a scalar loss (a tensor or a float), got {type(value).__name__}"
    )


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT (ctrl-c) until the block ends, so that it cannot land halfway through
    rewriting θ; the interrupt is delivered as soon as the block is left.

    Only the main thread receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[-1])
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


class Perturbation:
    """Moves θ along a step's directions tensor by tensor and remembers where each tensor went
    (which query's direction, how far), so that any exit, even one between two tensors, can undo
    exactly what was done.

    ``shift(i, c, j)`` must add c·μ·d_j to trainable tensor i (of ``count``), d_j the direction of
    query j (a one-query step has only j = 0). ``switch(i, c, j, k)``, if given, moves tensor i
    from θ + c·μ·d_j to θ + c·μ·d_k in one go (else: back along d_j, then along d_k). Each move
    holds back ctrl-c until it is complete (see :func:`interrupts_deferred`).
    """

    def __init__(
        self,
        shift: Callable[[int, float, int], None],
        count: int,
        switch: Callable[[int, float, int, int], None] | None = None,
    ) -> None:
        self._shift = shift
        self._switch = switch
        self._at: list[tuple[float, int] | None] = [(0.0, 0)] * count
        self.offset = 0.0
        self.query = 0

    def move_to(self, offset: float, query: int = 0) -> None:
        """Bring every tensor still on the directions to θ + offset·μ·d_query."""
        with interrupts_deferred():
            for i, current in enumerate(self._at):
                if current is None:
                    continue
                start, on = current
                if on != query and start == offset != 0.0 and self._switch is not None:
                    self._switch(i, offset, on, query)
                    self._at[i] = (offset, query)
                    continue
                if on != query and start != 0.0:
                    # Another query's direction: back to θ along it first.
                    self._shift(i, -start, on)
                    start = 0.0
                    self._at[i] = (start, query)
                if start != offset:
                    self._shift(i, offset - start, query)
                self._at[i] = (offset, query)
            self.offset, self.query = offset, query

    def release(self, i: int) -> None:
        """Tensor i has been rewritten by the update and is no longer θ + offset·μ·d."""
        self._at[i] = None

    @property
    def released(self) -> int:
        """How many tensors the update has rewritten."""
        return sum(at is None for at in self._at)

    def undo(self) -> None:
        """Move every tensor the update has not rewritten back to θ."""
        self.move_to(0.0, self.query)

    def evaluating(self) -> contextlib.AbstractContextManager[None]:
        """The block in which the closure runs; θ has been moved already, so nothing to do."""
        return contextlib.nullcontext()


def evaluate_perturbed(
    closure: Closure,
    perturbation: Perturbation,
    offsets: Sequence[float],
    rng_devices: Iterable[torch.device],
    reduce: Callable[[list[torch.Tensor] | None], list[torch.Tensor] | None] | None = None,
    queries: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """The losses at θ + c·μ·d for each c in ``offsets``, in order, passed through ``reduce``
    (which combines them across processes in distributed training). With ``queries`` (one per
    offset), pass i is evaluated along the direction of query ``queries[i]``.

    On return θ sits at the last offset (the caller's update restores it). If anything raises,
    θ is moved back to its starting point and the random state rewound before the error
    propagates. If the closure raises an ``Exception``, ``reduce(None)`` is called before the
    error propagates, so that processes waiting for this one in ``reduce`` learn of the failure
    (and raise too) instead of waiting forever.
    """
    snapshot = RNGSnapshot(rng_devices)
    losses = []
    try:
        for i, offset in enumerate(offsets):
            perturbation.move_to(offset, 0 if queries is None else queries[i])
            if i:
                snapshot.restore()
            with torch.no_grad(), perturbation.evaluating():
                losses.append(as_scalar_loss(closure()))
    except BaseException as error:
        perturbation.undo()
        snapshot.restore()
        if reduce is not None and isinstance(error, Exception):
            _report_failure(reduce, error)
        raise
    if reduce is None:
        return losses
    try:
        reduced = reduce(losses)
    except BaseException:
        perturbation.undo()
        snapshot.restore()
        raise
    assert reduced is not None, "reduce returns the losses when this process has them"
    return reduced


def _report_failure(
    reduce: Callable[[list[torch.Tensor] | None], object], error: BaseException
) -> None:
    try:
        reduce(None)
    except Exception as report_error:
        # The closure's error is the one worth raising; say that the others were not told.
        warnings.warn(
            f"could not tell the other processes that the closure raised {error!r}: "
            f"{report_error!r}",
            RuntimeWarning,
            stacklevel=3,
        )
