"""The toy experiment's pictures: contours with trajectories, a 3-D surface, loss against step.

matplotlib (the ``toy`` extra) is imported here only, so the rest of the package and the CLI's
parser stay importable without it. Figures are drawn on the file-only Agg canvas directly, never
through pyplot, so no global backend or figure state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from adamezo.toy.experiment import OPTIMIZERS, Run
from adamezo.toy.functions import ToyFunction

COLORS = {
    "adam": "#222222",
    "mezo": "#e66100",
    "adamezo": "#1f5fbf",
    "meazo": "#2ca02c",
    "zo-adam": "#9467bd",
    "hizoo": "#8c564b",
}
DPI = 100


def _grid(function: ToyFunction, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = torch.linspace(*function.x_range, points, dtype=torch.float64)
    ys = torch.linspace(*function.y_range, points, dtype=torch.float64)
    x, y = torch.meshgrid(xs, ys, indexing="xy")
    return x.numpy(), y.numpy(), function.surface(x, y).numpy()


def _log_levels(values: np.ndarray, count: int = 24) -> np.ndarray:
    """Geometric levels from the smallest positive value (at most six decades down) to the max."""
    high = float(values.max())
    low = max(float(values[values > 0].min()), high * 1e-6)
    return np.geomspace(low, high, count)


def _by_optimizer(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.optimizer, []).append(r)
    return groups


def _label(name: str, runs: Sequence[Run]) -> str:
    return f"{OPTIMIZERS[name].label} (lr {runs[0].lr:.3g})"


def _inside(function: ToyFunction, points: np.ndarray) -> np.ndarray:
    """``points`` with every point outside the window set to NaN (a gap in the line): 3-D axes,
    unlike 2-D ones, do not clip to their limits."""
    (x0, x1), (y0, y1) = function.x_range, function.y_range
    outside = (points[:, 0] < x0) | (points[:, 0] > x1) | (points[:, 1] < y0) | (points[:, 1] > y1)
    return np.where(outside[:, None], np.nan, points)


def _mark_ends(ax, function: ToyFunction, *z: float) -> None:
    ax.plot(*function.start, *z[:1], "o", color="black", markersize=7, label="start", zorder=5)
    ax.plot(*function.optimum, *z[1:], "*", color="red", markersize=14, label="optimum", zorder=5)


def plot_contours(function: ToyFunction, runs: Sequence[Run], path: Path) -> Path:
    """Log-scaled contour lines of f, every run's path (the first seed bold), start and optimum."""
    x, y, z = _grid(function, 300)
    levels = _log_levels(z)
    fig = _figure(6.4, 5.0)
    ax = fig.subplots()
    ax.contour(
        x, y, z, levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="viridis", linewidths=0.6
    )
    for name, group in _by_optimizer(runs).items():
        for i, r in enumerate(group):
            ax.plot(
                *r.points.T,
                color=COLORS[name],
                linewidth=1.3 if i == 0 else 0.5,
                alpha=1.0 if i == 0 else 0.35,
                label=_label(name, group) if i == 0 else None,
            )
    _mark_ends(ax, function)
    ax.set(xlim=function.x_range, ylim=function.y_range, xlabel="x", ylabel="y")
    ax.set_title(f"{function.formula}: first seed bold, other seeds faint", fontsize=10)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return _save(fig, path)


def plot_surface(function: ToyFunction, runs: Sequence[Run], path: Path) -> Path:
    """log₁₀ f as a 3-D surface with each optimizer's first-seed path drawn on it."""
    x, y, z = _grid(function, 90)
    floor = _log_levels(z)[0]
    # computed_zorder=False draws in call order, so the paths stay visible on top of the surface.
    ax = _figure(6.4, 5.0).add_subplot(projection="3d", computed_zorder=False)
    ax.plot_surface(
        x,
        y,
        np.log10(np.maximum(z, floor)),
        cmap="viridis",
        alpha=0.55,
        linewidth=0,
        antialiased=False,
        rcount=45,
        ccount=45,
    )
    for name, group in _by_optimizer(runs).items():
        r = group[0]
        points = _inside(function, r.points)
        heights = np.log10(np.maximum(r.losses, floor))
        ax.plot(
            points[:, 0],
            points[:, 1],
            heights,
            color=COLORS[name],
            linewidth=1.4,
            label=_label(name, group),
        )
    start = float(function(torch.tensor(function.start, dtype=torch.float64)))
    _mark_ends(ax, function, np.log10(max(start, floor)), np.log10(max(function.minimum, floor)))
    ax.set(xlabel="x", ylabel="y", zlabel="log10 f")
    ax.view_init(elev=35, azim=function.view_azimuth)
    ax.set_title(f"{function.formula}: first seed", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _save(ax.figure, path)


def plot_losses(function: ToyFunction, runs: Sequence[Run], path: Path) -> Path:
    """f(θ_t) against t: the median over seeds, with the band from the best to the worst seed."""
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    start = None
    for name, group in _by_optimizer(runs).items():
        losses = np.stack([r.losses for r in group])
        start = losses[0, 0]
        steps = np.arange(losses.shape[1])
        ax.plot(
            steps,
            np.median(losses, axis=0),
            color=COLORS[name],
            linewidth=1.3,
            label=_label(name, group),
        )
        if len(group) > 1:
            ax.fill_between(
                steps,
                losses.min(axis=0),
                losses.max(axis=0),
                color=COLORS[name],
                alpha=0.15,
                linewidth=0,
            )
    if start is not None:
        ax.axhline(0.01 * start, color="gray", linestyle="--", linewidth=0.8, label="1% of start")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="f(θ)")
    ax.set_title(f"{function.formula}: median over seeds, band min to max", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
