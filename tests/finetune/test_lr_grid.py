"""The lr grid rule: 1-3-10 steps, the auto grid, growth past an edge best, settling."""

import math

import pytest

from adamezo.finetune.lr_grid import (
    auto_grid,
    best_lr,
    centred_grid,
    grid_state,
    past_the_edge,
    snap_lr,
    step_lr,
)


def test_step_lr_walks_the_one_three_ten_sequence():
    assert step_lr(3e-5, 1) == 1e-4 and step_lr(1e-4, 1) == 3e-4
    assert step_lr(3e-5, -1) == 1e-5 and step_lr(1e-5, -1) == 3e-6
    assert centred_grid(1e-3) == (3e-4, 1e-3, 3e-3, 1e-2)


@pytest.mark.parametrize(
    ("lr", "snapped"), [(2e-5, 3e-5), (1.5e-3, 1e-3), (1e-2, 1e-2), (6e-4, 1e-3), (4e-7, 3e-7)]
)
def test_snap_lr_takes_the_nearest_sequence_value_on_a_log_scale(lr, snapped):
    assert snap_lr(lr) == snapped


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.inf, math.nan])
def test_snap_lr_refuses_what_is_no_learning_rate(lr):
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        snap_lr(lr)


def test_auto_grid_is_two_steps_below_the_default_and_one_above():
    assert auto_grid(1e-3) == (1e-4, 3e-4, 1e-3, 3e-3)
    assert auto_grid(2e-5) == (3e-6, 1e-5, 3e-5, 1e-4)  # ZO-Adam's default, snapped to 3e-5


def test_past_the_edge_waits_for_the_planned_values_then_steps_past_the_best_edge():
    planned = (1e-4, 3e-4, 1e-3)
    assert past_the_edge({1e-4: 0.5, 3e-4: 0.4}, planned) is None  # 1e-3 has not finished
    assert past_the_edge({1e-4: 0.5, 3e-4: 0.4, 1e-3: 0.3}, planned) == 3e-3
    assert past_the_edge({1e-4: 0.2, 3e-4: 0.4, 1e-3: 0.3}, planned) == 3e-5
    assert past_the_edge({1e-4: 0.5, 3e-4: 0.2, 1e-3: 0.3}, planned) is None


def test_a_diverged_lr_never_wins_but_bounds_the_grid():
    losses = {1e-4: 0.5, 3e-4: 0.4, 1e-3: math.inf}
    assert best_lr(losses) == 3e-4
    assert past_the_edge(losses, losses) is None
    assert best_lr({1e-3: math.inf}) is None


def test_grid_state_grows_until_the_best_is_interior():
    planned = (1e-4, 3e-4)
    state = grid_state(planned, planned, {1e-4: 0.5}, grow=True)
    assert (state.next, state.settled) == (None, False)  # 3e-4 still running
    state = grid_state(planned, planned, {1e-4: 0.5, 3e-4: 0.4}, grow=True)
    assert (state.next, state.settled) == (1e-3, False)
    state = grid_state(planned, (*planned, 1e-3), {1e-4: 0.5, 3e-4: 0.4}, grow=True)
    assert (state.next, state.settled) == (1e-3, False)  # scheduled, not finished
    done = {1e-4: 0.5, 3e-4: 0.4, 1e-3: 0.45}
    state = grid_state(planned, (*planned, 1e-3), done, grow=True)
    assert (state.next, state.settled, state.lr, state.interior) == (None, True, 3e-4, True)


def test_grid_state_without_growth_settles_at_an_edge_and_says_so():
    state = grid_state((1e-4, 3e-4), (1e-4, 3e-4), {1e-4: 0.5, 3e-4: 0.4}, grow=False)
    assert (state.next, state.settled, state.lr, state.interior) == (None, True, 3e-4, False)


def test_grid_state_stops_growing_at_its_cap():
    losses = {1e-4: 0.5, 3e-4: 0.4, 1e-3: 0.3}
    state = grid_state((1e-4, 3e-4), losses, losses, grow=True, max_values=3)
    assert (state.next, state.settled, state.lr, state.interior) == (None, True, 1e-3, False)
