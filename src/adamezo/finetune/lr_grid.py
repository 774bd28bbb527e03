"""Learning-rate grids 3x apart (the 1-3-10 sequence) that grow past an edge best until it is
interior: the search rule of ``adamezo sweep`` and of the optimizer study.

A grid starts from a few planned values. Once every planned value has finished, the value of
lowest finite loss (the *best*) is looked at: at the smallest or the largest lr tried, the grid
grows by one value past that edge (:func:`past_the_edge`), and again after that one finishes,
until the best has a tried value on each side. Non-finite losses (a diverged run) never win but
do bound the grid: a best just below an lr that diverged is interior.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_GRID = 12
"""A grid stops growing at this many values (12 values 3x apart span 5.5 decades): the best then
stays at an edge and the sweep says so."""


def step_lr(lr: float, direction: int) -> float:
    """The next value up (``direction`` 1) or down (-1) in the 1-3-10 sequence: 3x or 10/3x."""
    mantissa = lr / 10 ** math.floor(math.log10(lr))
    is_three = abs(mantissa - 3) < 1e-6
    factor = (10 / 3 if is_three else 3) if direction > 0 else (3 if is_three else 10 / 3)
    return float(f"{(lr * factor if direction > 0 else lr / factor):.0e}")


def snap_lr(lr: float) -> float:
    """The 1-3-10 value nearest to ``lr`` on a log scale (2e-5 -> 3e-5, 1.5e-3 -> 1e-3)."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    exponent = math.floor(math.log10(lr))
    candidates = [m * 10.0**e for e in (exponent - 1, exponent, exponent + 1) for m in (1, 3)]
    best = min(candidates, key=lambda c: abs(math.log10(c) - math.log10(lr)))
    return float(f"{best:.0e}")


def auto_grid(default_lr: float) -> tuple[float, float, float, float]:
    """Four values 3x apart around an optimizer's default lr: (c/10, c/3, c, 3c) in the 1-3-10
    steps, c the default snapped to the sequence. Two below, one above: a default tuned on one
    task tends to sit near the top of what another task takes (our study's MeZO diverged on TREC
    one step above its SST-2 choice)."""
    centre = snap_lr(default_lr)
    down = step_lr(centre, -1)
    return (step_lr(down, -1), down, centre, step_lr(centre, 1))


def centred_grid(centre: float) -> tuple[float, float, float, float]:
    """(c/3, c, 3c, 10c) in the 1-3-10 steps: a linear decay to 0 averages half its start, so
    its best lr lies at or above the constant one."""
    up = step_lr(centre, 1)
    return (step_lr(centre, -1), centre, up, step_lr(up, 1))


def best_lr(losses: Mapping[float, float]) -> float | None:
    """The lr of lowest finite loss (ties: the smaller lr), None if no loss is finite."""
    finite = {lr: loss for lr, loss in losses.items() if math.isfinite(loss)}
    return min(sorted(finite), key=finite.get) if finite else None


def past_the_edge(grid: Mapping[float, float], planned: Iterable[float]) -> float | None:
    """The next lr past the edge where a grid's best (lowest finite loss) sits, once every
    ``planned`` lr has finished; None while it has not, or when the best is interior."""
    planned = set(planned)
    best = best_lr(grid)
    if not planned or not planned <= set(grid) or best is None:
        return None
    lrs = sorted(grid)
    if best == lrs[0]:
        return step_lr(best, -1)
    if best == lrs[-1]:
        return step_lr(best, 1)
    return None


@dataclass(frozen=True)
class GridState:
    """Where one grid stands: what to run next, or the lr it settled on."""

    next: float | None
    """An lr to add (already scheduled or not); None when the grid needs none."""
    settled: bool
    """Every scheduled lr has finished and the grid will not grow."""
    lr: float | None
    """The best lr once settled (None: no finite loss)."""
    interior: bool
    """The settled best has a tried lr on each side."""


def grid_state(
    planned: Sequence[float],
    scheduled: Iterable[float],
    finished: Mapping[float, float],
    *,
    grow: bool,
    max_values: int = MAX_GRID,
) -> GridState:
    """The state of a grid that started as ``planned``, has ``scheduled`` lrs (planned and
    grown, finished or not) and ``finished`` losses; it grows past an edge best when ``grow``,
    up to ``max_values`` values."""
    scheduled = set(scheduled) | set(planned)
    grown = past_the_edge(finished, planned) if grow else None
    if grown is not None and grown not in scheduled and len(scheduled) >= max_values:
        grown = None
    if grown is not None and grown not in finished:
        return GridState(grown, False, None, False)
    if not scheduled <= set(finished):
        return GridState(None, False, None, False)
    best = best_lr(finished)
    lrs = sorted(finished)
    interior = best is not None and lrs[0] < best < lrs[-1]
    return GridState(None, True, best, interior)
