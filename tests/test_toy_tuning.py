"""The learning-rate rules give what running every rate in full would give."""

import dataclasses
import math

import numpy as np
import pytest

from adamezo.toy.experiment import run
from adamezo.toy.functions import FUNCTIONS
from adamezo.toy.tuning import (
    capped_length,
    coarse_to_fine,
    fastest_learning_rate,
    log_grid,
    match_trajectory_length,
)

# Short budgets keep the brute-force references cheap.
SHORT_QUADRATIC = dataclasses.replace(FUNCTIONS["quadratic"], steps=40)
SEEDS = [0, 1, 2]


def test_log_grid_holds_the_powers_of_ten_at_the_asked_resolution():
    assert log_grid(1e-3, 1.0, per_decade=2) == [
        1e-3,
        0.00316228,
        0.01,
        0.0316228,
        0.1,
        0.316228,
        1.0,
    ]
    assert log_grid(0.002, 0.05, per_decade=1) == [0.01]


def test_coarse_to_fine_visits_every_rate_once_largest_first():
    grid = log_grid(1e-5, 1.0)
    order = coarse_to_fine(grid)
    assert sorted(order) == grid and order[0] == 1.0


def test_fastest_learning_rate_matches_running_every_rate_to_the_budget():
    grid = log_grid(1e-3, 1e-2, per_decade=4)
    fraction = 0.5
    medians = {}
    for lr in grid:
        steps = [run(SHORT_QUADRATIC, "mezo", lr=lr, seed=s).steps_to(fraction) for s in SEEDS]
        medians[lr] = float(np.median([math.inf if s is None else s for s in steps]))
    best = min(grid, key=lambda lr: (medians[lr], lr))
    assert math.isfinite(medians[best]) and sum(map(math.isfinite, medians.values())) >= 2

    found = fastest_learning_rate(SHORT_QUADRATIC, "mezo", grid, SEEDS, fraction=fraction)
    assert (found.lr, found.median_steps) == (best, medians[best])
    expected = [run(SHORT_QUADRATIC, "mezo", lr=best, seed=s).steps_to(fraction) for s in SEEDS]
    assert found.steps == [math.inf if s is None else s for s in expected]


def test_fastest_learning_rate_with_a_cap_finds_nothing_slower_than_the_cap():
    grid = log_grid(1e-3, 1e-2, per_decade=4)
    uncapped = fastest_learning_rate(SHORT_QUADRATIC, "mezo", grid, SEEDS, fraction=0.5)
    capped = fastest_learning_rate(
        SHORT_QUADRATIC, "mezo", grid, SEEDS, fraction=0.5, cap=uncapped.median_steps - 1
    )
    assert math.isnan(capped.lr) and capped.median_steps == math.inf


def test_match_trajectory_length_picks_the_largest_rate_within_the_slack():
    function = dataclasses.replace(FUNCTIONS["quadratic"], steps=30)
    grid = log_grid(1e-4, 1e-2, per_decade=4)
    target = 1.5 * run(function, "adam").length
    lengths = {
        lr: float(np.median([run(function, "mezo", lr=lr, seed=s).length for s in SEEDS]))
        for lr in grid
    }
    fitting = [lr for lr in grid if lengths[lr] <= target]
    assert fitting and len(fitting) < len(grid)  # the rule has a real choice to make

    match = match_trajectory_length(function, "mezo", grid, SEEDS, slack=1.5)
    assert match.lr == max(fitting) and match.target == pytest.approx(target)
    for lr, length in match.lengths.items():
        if lengths[lr] <= target:
            assert length == pytest.approx(lengths[lr], rel=1e-12)
        else:
            assert length == math.inf or math.isnan(length)  # stopped early, or diverged


def test_a_diverging_run_has_no_length_and_one_past_the_cap_an_infinite_one():
    function = dataclasses.replace(FUNCTIONS["quadratic"], steps=30)
    assert math.isnan(capped_length(function, "mezo", 0.1, 0, cap=1e9))
    assert capped_length(function, "mezo", 1e-3, 0, cap=0.1) == math.inf
    assert capped_length(function, "mezo", 1e-3, 0, cap=1e9) == pytest.approx(
        run(function, "mezo", lr=1e-3).length, rel=1e-12
    )


def test_a_rate_with_a_diverging_seed_never_fits_even_when_its_median_does():
    # MeZO at lr 0.01 on Beale: seeds 0 and 1 travel about 2.6 in 60 steps, well within the
    # target of about 3.3, but seed 2 passes the target and then diverges at step 42.
    function = dataclasses.replace(FUNCTIONS["beale"], steps=60)
    match = match_trajectory_length(function, "mezo", [1e-3, 0.01], SEEDS)
    assert match.lr == 1e-3 and math.isnan(match.lengths[0.01])


def test_match_trajectory_length_refuses_a_grid_that_starts_too_high():
    function = dataclasses.replace(FUNCTIONS["quadratic"], steps=30)
    with pytest.raises(ValueError, match="extend the grid downwards"):
        match_trajectory_length(function, "adamezo", [10.0, 100.0], SEEDS)


def test_an_even_number_of_seeds_is_refused():
    with pytest.raises(ValueError, match="odd number of seeds"):
        fastest_learning_rate(SHORT_QUADRATIC, "mezo", [1e-3], [0, 1])
