"""The toy test functions: Adam gets the right gradient, and each figure's settings make sense."""

import pytest
import torch

from adamezo.toy.experiment import OPTIMIZERS
from adamezo.toy.functions import FUNCTIONS

NAMES = list(FUNCTIONS)


def points_in_window(function, count=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    (x0, x1), (y0, y1) = function.x_range, function.y_range
    u = torch.rand(count, 2, generator=g, dtype=torch.float64)
    return torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], dim=1)


@pytest.mark.parametrize("name", NAMES)
def test_autograd_gradient_agrees_with_finite_differences(name):
    function = FUNCTIONS[name]
    for point in points_in_window(function):
        if name == "abs" and point.abs().min() < 1e-3:
            continue  # the kink: no derivative to check
        xy = point.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(function, (xy,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_the_recorded_optimum_is_below_every_point_of_the_window(name):
    function = FUNCTIONS[name]
    (x0, x1), (y0, y1) = function.x_range, function.y_range
    x, y = torch.meshgrid(
        torch.linspace(x0, x1, 201, dtype=torch.float64),
        torch.linspace(y0, y1, 201, dtype=torch.float64),
        indexing="xy",
    )
    assert function.minimum <= function.surface(x, y).min().item() + 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_start_and_optimum_lie_inside_the_plotting_window(name):
    function = FUNCTIONS[name]
    for x, y in (function.start, function.optimum):
        assert function.x_range[0] <= x <= function.x_range[1]
        assert function.y_range[0] <= y <= function.y_range[1]


def test_beale_is_lifted_so_its_minimum_is_positive_on_a_log_scale():
    assert FUNCTIONS["beale"].minimum == pytest.approx(1e-3, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_has_a_recorded_learning_rate(name):
    assert set(FUNCTIONS[name].learning_rates) == set(OPTIMIZERS)
