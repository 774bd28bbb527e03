"""The 2-D test functions of the toy experiment, each with the settings of its trajectory figure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

Surface = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ToyFunction:
    """f(x, y) and where to run and draw it.

    ``learning_rates`` maps an optimizer name (see :data:`adamezo.toy.experiment.OPTIMIZERS`) to
    the lr of the figures. Adam's is fixed by hand; every zeroth-order rate follows the paper's
    rule (:func:`adamezo.toy.tuning.match_trajectory_length`).
    """

    name: str
    formula: str
    """f in matplotlib mathtext, for titles."""
    surface: Surface
    """f on broadcastable x, y tensors, written in torch so autograd gives Adam its gradient."""
    start: tuple[float, float]
    optimum: tuple[float, float]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    steps: int
    learning_rates: Mapping[str, float]
    view_azimuth: float = -60.0
    """Azimuth of the 3-D view in degrees, turned so the paths are not hidden behind the surface."""

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        """f at the points ``xy[..., 0]``, ``xy[..., 1]`` (a single point or a whole grid)."""
        return self.surface(xy[..., 0], xy[..., 1])

    @property
    def minimum(self) -> float:
        return float(self(torch.tensor(self.optimum, dtype=torch.float64)))


def _quadratic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 100.0 * x**2 + y**2


def _beale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The 1e-3 lifts the minimum above zero so the loss can be drawn on a log scale.
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2 + 1e-3


def _asymmetric_valley(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 1.3x² + 2x + 1 > 0 everywhere (discriminant 4 − 5.2 < 0): one minimum, at (1, 4), with a
    # steep quartic wall on one side in x and a gentle quadratic in y.
    return 8.0 * (x - 1.0) ** 2 * (1.3 * x**2 + 2.0 * x + 1.0) + 0.5 * (y - 4.0) ** 2


def _absolute(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.abs() + y.abs()


def _rosenbrock(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


# Learning rates, by the paper's rule. Adam's is fixed by hand: among 0.01-0.3 the rate with which
# Adam reaches 1% of the starting loss well inside the step budget while its steps stay small
# against the window. Every zeroth-order rate is then the largest on the grid 10^(k/4) whose
# median trajectory length over seeds 0-4 stays within 1.5x Adam's: comparable paths, the
# zeroth-order methods allowed somewhat longer ones, so none wins a picture by travelling further.
# `benchmarks/toy_learning_rates.py` reproduces every value (`--check` compares) and records the
# lengths it measured in benchmarks/results/toy_learning_rates.md.
FUNCTIONS: dict[str, ToyFunction] = {
    f.name: f
    for f in (
        ToyFunction(
            name="quadratic",
            formula=r"$100x^2 + y^2$",
            surface=_quadratic,
            start=(0.8, 8.0),
            optimum=(0.0, 0.0),
            x_range=(-1.2, 1.2),
            y_range=(-3.0, 9.0),
            steps=300,
            learning_rates={
                "adam": 0.1,
                "mezo": 0.00177828,
                "adamezo": 0.0562341,
                "meazo": 0.0562341,
                "zo-adam": 0.316228,
                "hizoo": 0.0177828,
            },
        ),
        ToyFunction(
            name="beale",
            formula=r"Beale $+\,10^{-3}$",
            surface=_beale,
            start=(1.0, 1.5),
            optimum=(3.0, 0.5),
            x_range=(-0.5, 4.0),
            y_range=(-1.0, 2.0),
            steps=500,
            learning_rates={
                "adam": 0.05,
                "mezo": 0.00562341,
                "adamezo": 0.0177828,
                "meazo": 0.0562341,
                "zo-adam": 0.177828,
                "hizoo": 0.0316228,
            },
        ),
        ToyFunction(
            name="valley",
            formula=r"$8(x-1)^2(1.3x^2+2x+1) + 0.5(y-4)^2$",
            surface=_asymmetric_valley,
            start=(1.8, 0.0),
            optimum=(1.0, 4.0),
            x_range=(-1.2, 2.2),
            y_range=(-1.0, 5.0),
            steps=500,
            learning_rates={
                "adam": 0.05,
                "mezo": 0.00316228,
                "adamezo": 0.0177828,
                "meazo": 0.0316228,
                "zo-adam": 0.177828,
                "hizoo": 0.01,
            },
            view_azimuth=-130.0,
        ),
        ToyFunction(
            name="abs",
            formula=r"$|x| + |y|$",
            surface=_absolute,
            start=(1.5, -3.0),
            optimum=(0.0, 0.0),
            x_range=(-2.0, 2.0),
            y_range=(-3.5, 1.0),
            steps=300,
            learning_rates={
                "adam": 0.05,
                "mezo": 0.0177828,
                "adamezo": 0.0562341,
                "meazo": 0.0177828,
                "zo-adam": 0.0562341,
                "hizoo": 0.0177828,
            },
            view_azimuth=120.0,
        ),
        ToyFunction(
            name="rosenbrock",
            formula=r"$(1-x)^2 + 100(y-x^2)^2$",
            surface=_rosenbrock,
            start=(-1.2, 1.0),
            optimum=(1.0, 1.0),
            x_range=(-1.6, 1.6),
            y_range=(-0.5, 1.8),
            steps=1000,
            learning_rates={
                "adam": 0.05,
                "mezo": 0.001,
                "adamezo": 0.00562341,
                "meazo": 0.01,
                "zo-adam": 0.0562341,
                "hizoo": 0.01,
            },
        ),
    )
}
