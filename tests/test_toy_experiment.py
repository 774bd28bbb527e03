"""Toy runs: the library's optimizers on a 2-D parameter, reproducible, measured correctly."""

import dataclasses

import numpy as np
import pytest
import torch

import adamezo
from adamezo.toy.experiment import OPTIMIZERS, Run, iterate, run, run_all
from adamezo.toy.functions import FUNCTIONS

QUADRATIC = FUNCTIONS["quadratic"]
ZEROTH_ORDER = [name for name, spec in OPTIMIZERS.items() if spec.zeroth_order]


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_same_seed_gives_bitwise_the_same_trajectory(optimizer):
    a = run(QUADRATIC, optimizer, lr=1e-2, seed=3, steps=15)
    b = run(QUADRATIC, optimizer, lr=1e-2, seed=3, steps=15)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.losses, b.losses)


@pytest.mark.parametrize("optimizer", ZEROTH_ORDER)
def test_different_seeds_explore_different_directions(optimizer):
    a = run(QUADRATIC, optimizer, lr=1e-2, seed=0, steps=5)
    b = run(QUADRATIC, optimizer, lr=1e-2, seed=1, steps=5)
    assert not np.allclose(a.points[1:], b.points[1:])


def test_zeroth_order_runs_are_the_library_optimizer_step_for_step():
    param = torch.nn.Parameter(torch.tensor(QUADRATIC.start, dtype=torch.float64))
    opt = adamezo.AdaMeZO([param], lr=0.05, seed=2)
    expected = [param.detach().numpy().copy()]
    for _ in range(6):
        opt.step(lambda: QUADRATIC(param))
        expected.append(param.detach().numpy().copy())
    assert np.array_equal(run(QUADRATIC, "adamezo", lr=0.05, seed=2, steps=6).points, expected)


def test_first_order_adam_is_torch_adam_on_the_autograd_gradient():
    param = torch.nn.Parameter(torch.tensor(QUADRATIC.start, dtype=torch.float64))
    opt = torch.optim.Adam([param], lr=0.1)
    expected = [param.detach().numpy().copy()]
    for _ in range(6):
        opt.zero_grad()
        QUADRATIC(param).backward()
        opt.step()
        expected.append(param.detach().numpy().copy())
    assert np.array_equal(run(QUADRATIC, "adam", lr=0.1, steps=6).points, expected)


def test_losses_are_the_function_at_each_recorded_point():
    r = run(FUNCTIONS["rosenbrock"], "mezo", lr=1e-4, steps=8)
    recomputed = [float(FUNCTIONS["rosenbrock"](torch.tensor(p))) for p in r.points]
    assert r.losses.tolist() == recomputed
    assert len(r.points) == 9 and tuple(r.points[0]) == FUNCTIONS["rosenbrock"].start


# HiZOO's step p·z/√H turns as its Hessian estimate H changes, so it is not held to one line.
@pytest.mark.parametrize("optimizer", [name for name in ZEROTH_ORDER if name != "hizoo"])
def test_one_reused_direction_keeps_the_whole_trajectory_on_one_line(optimizer):
    def cross_products(r):
        moves = r.points[1:] - r.points[0]
        return moves[:, 0] * moves[-1, 1] - moves[:, 1] * moves[-1, 0]

    cyclic = run(QUADRATIC, optimizer, lr=1e-3, seed=0, steps=12, direction_seeds=1)
    np.testing.assert_allclose(cross_products(cyclic), 0.0, atol=1e-12)
    fresh = run(QUADRATIC, optimizer, lr=1e-3, seed=0, steps=12)
    assert np.abs(cross_products(fresh)).max() > 1e-9


def test_trajectory_length_and_steps_to_a_fraction():
    r = Run(
        function="quadratic",
        optimizer="mezo",
        lr=1.0,
        seed=0,
        direction_seeds=None,
        points=np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]),
        losses=np.array([100.0, 2.0, 0.5]),
    )
    assert r.length == 6.0
    assert r.steps_to(0.01) == 2 and r.steps_to(0.05) == 1 and r.steps_to(0.001) is None
    assert r.final_loss == 0.5


def test_run_all_refuses_an_optimizer_without_a_learning_rate_before_running_anything():
    no_rate = dataclasses.replace(QUADRATIC, learning_rates={"adam": 0.1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(FUNCTIONS, "quadratic", no_rate)
        with pytest.raises(ValueError, match="no learning rate for 'mezo'"):
            run_all(["quadratic"], ["adam", "mezo"], [0])


def test_unknown_names_are_refused_naming_the_choices():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        next(iterate(QUADRATIC, "sgd", 0.1))
    with pytest.raises(ValueError, match="function must be one of"):
        run("sphere", "adam")
