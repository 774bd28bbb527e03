"""The two rules that pick a zeroth-order learning rate on a toy function.

* :func:`match_trajectory_length` is the paper's rule for the figures: Adam's lr is fixed, and each
  zeroth-order lr is the largest on a log grid whose median trajectory length stays within
  ``slack`` times Adam's, so no method wins a picture by simply travelling further.
* :func:`fastest_learning_rate` is the rule for the speed claim: the lr on a log grid with the
  fewest median steps to reach a fraction (1%) of the starting loss.

Both are exact for the grid they are given, with one stated assumption in the first (median length
grows with lr, which lets it bisect); both stop a run as soon as its outcome is decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from adamezo._checks import check_float, check_int
from adamezo.toy.experiment import diverged, iterate, run
from adamezo.toy.functions import ToyFunction


def log_grid(low: float, high: float, per_decade: int = 4) -> list[float]:
    """10^(k/per_decade) for every k with low ≤ 10^(k/per_decade) ≤ high, ascending."""
    check_float("low", low, 0.0, min_open=True)
    check_float("high", high, low)
    check_int("per_decade", per_decade, 1)
    first = math.ceil(math.log10(low) * per_decade - 1e-9)
    last = math.floor(math.log10(high) * per_decade + 1e-9)
    return [float(f"{10 ** (k / per_decade):.6g}") for k in range(first, last + 1)]


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


# ----------------------------------------------------------------------- length-matched rates


def capped_length(
    function: ToyFunction,
    optimizer: str,
    lr: float,
    seed: int,
    cap: float,
    direction_seeds: int | None = None,
) -> float:
    """The trajectory length over the function's budget; inf once it passes ``cap``, nan if the
    run diverges first."""
    length, previous, start = 0.0, None, None
    for step, (point, loss) in enumerate(iterate(function, optimizer, lr, seed, direction_seeds)):
        if previous is None:
            start = loss
        else:
            length += float(np.linalg.norm(point - previous))
        if diverged(loss, start):
            return math.nan
        if length > cap:
            return math.inf
        if step == function.steps:
            return length
        previous = point
    raise AssertionError("iterate() never ends")  # pragma: no cover


@dataclass
class LengthMatch:
    """The rate :func:`match_trajectory_length` chose, and every median length it measured."""

    lr: float
    target: float
    """slack × Adam's trajectory length."""
    adam_length: float
    lengths: dict[float, float] = field(default_factory=dict)
    """lr → median length over the seeds (inf: above the target, stopped early; nan: a seed
    diverged)."""


def match_trajectory_length(
    function: ToyFunction,
    optimizer: str,
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    slack: float = 1.5,
    direction_seeds: int | None = None,
) -> LengthMatch:
    """The largest lr in ``grid`` whose median trajectory length ≤ slack × Adam's and with which
    no seed diverges (a rate that loses one run in five is no rate to draw).

    Adam runs at ``function.learning_rates["adam"]``; every run lasts ``function.steps`` steps.
    Assumes the median length grows with lr, and bisects the sorted grid on that assumption.
    Raises ValueError if even the smallest rate travels too far.
    """
    grid = sorted(grid)
    adam_length = run(function, "adam").length
    target = slack * adam_length
    match = LengthMatch(lr=math.nan, target=target, adam_length=adam_length)

    def fits(index: int) -> bool:
        lr = grid[index]
        lengths = [
            capped_length(function, optimizer, lr, s, target, direction_seeds) for s in seeds
        ]
        if _median(lengths) <= target:
            # The seeds stopped past the target may still diverge later: run them out.
            lengths = [
                capped_length(function, optimizer, lr, s, math.inf, direction_seeds)
                if math.isinf(length)
                else length
                for s, length in zip(seeds, lengths, strict=True)
            ]
        match.lengths[lr] = math.nan if any(map(math.isnan, lengths)) else _median(lengths)
        return match.lengths[lr] <= target

    below, above = -1, len(grid)  # invariant: grid[below] fits (or below = −1), grid[above] not
    while above - below > 1:
        middle = (below + above) // 2
        if fits(middle):
            below = middle
        else:
            above = middle
    if below < 0:
        raise ValueError(
            f"{optimizer} on {function.name}: even lr={grid[0]:g} travels further than "
            f"{slack} x Adam's {adam_length:.3g}; extend the grid downwards"
        )
    match.lr = grid[below]
    match.lengths = dict(sorted(match.lengths.items()))
    return match


# --------------------------------------------------------------------------- fastest rates


def steps_to_fraction(
    function: ToyFunction,
    optimizer: str,
    lr: float,
    seed: int,
    *,
    fraction: float = 0.01,
    cap: float = math.inf,
    direction_seeds: int | None = None,
) -> float:
    """The first step t with f(θ_t) ≤ fraction·f(θ_0); inf if not reached by step ``cap`` (or by
    the function's budget, whichever is smaller), or if the run diverges first."""
    limit = min(cap, function.steps)
    for step, (_, loss) in enumerate(iterate(function, optimizer, lr, seed, direction_seeds)):
        if step == 0:
            start = loss
        if loss <= fraction * start:
            return float(step)
        if step >= limit or diverged(loss, start):
            return math.inf
    raise AssertionError("iterate() never ends")  # pragma: no cover


@dataclass
class Fastest:
    """The rate :func:`fastest_learning_rate` chose and what it measured."""

    lr: float
    """nan when no rate reached the fraction within the cap."""
    median_steps: float
    """Median over seeds of the steps to reach the fraction (inf: no rate did, within the cap)."""
    steps: list[float]
    """Each seed's steps at the chosen lr (inf: not within the budget or the cap)."""
    medians: dict[float, float] = field(default_factory=dict)
    """lr → median steps; inf means "more than the best found so far (or the cap)", since each
    rate runs only as long as it could still win."""


def coarse_to_fine(grid: Sequence[float]) -> list[float]:
    """The grid, largest first, reordered so every other point comes before its neighbours,
    recursively (decades before half-decades before quarter-decades on a quarter-decade grid):
    a good rate is found early, and the rest can be cut off sooner. Large rates come first
    because a diverging run ends at once, while a too-small rate always runs to the cap."""
    grid = sorted(grid, reverse=True)
    stride = 1 << max(len(grid) - 1, 1).bit_length()
    order: list[float] = []
    while stride:
        order += [lr for i, lr in enumerate(grid) if i % stride == 0 and lr not in order]
        stride //= 2
    return order


def fastest_learning_rate(
    function: ToyFunction,
    optimizer: str,
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    fraction: float = 0.01,
    cap: float = math.inf,
    direction_seeds: int | None = None,
) -> Fastest:
    """The lr in ``grid`` with the fewest median steps to reach ``fraction`` of the starting loss,
    within the function's step budget and at most ``cap`` steps (ties: the smaller lr).

    Each rate runs only as long as it could still match the best median so far, so the answer is
    that of running everything to the budget, at a fraction of the cost. With ``cap`` set to
    another optimizer's best, the result says exactly whether this one can match it.
    """
    check_float("fraction", fraction, 0.0, 1.0, min_open=True, max_open=True)
    if len(seeds) % 2 == 0:
        raise ValueError(f"seeds must be an odd number of seeds (a median), got {len(seeds)}")
    best = Fastest(lr=math.nan, median_steps=math.inf, steps=[])
    for lr in coarse_to_fine(grid):
        limit = min(cap, best.median_steps)
        steps: list[float] = []
        for seed in seeds:
            steps.append(
                steps_to_fraction(
                    function,
                    optimizer,
                    lr,
                    seed,
                    fraction=fraction,
                    cap=limit,
                    direction_seeds=direction_seeds,
                )
            )
            if steps.count(math.inf) > len(seeds) // 2:
                break  # the median is already out of reach
        median = _median(steps) if len(steps) == len(seeds) else math.inf
        best.medians[lr] = median
        if median < best.median_steps or (median == best.median_steps < math.inf and lr < best.lr):
            best.lr, best.median_steps = lr, median
    if not math.isnan(best.lr):
        # Seeds behind the median were cut off at the cap of their time; measure them in full.
        best.steps = [
            steps_to_fraction(
                function,
                optimizer,
                best.lr,
                seed,
                fraction=fraction,
                cap=cap,
                direction_seeds=direction_seeds,
            )
            for seed in seeds
        ]
    best.medians = dict(sorted(best.medians.items()))
    return best
