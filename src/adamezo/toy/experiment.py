"""Run the library's optimizers on a toy function and keep the whole trajectory.

Every optimizer moves one float64 ``torch.nn.Parameter`` of two elements (x, y). The zeroth-order
ones are the library's own (``adamezo.MeZO``, ``AdaMeZO``, ...) and see only the closure's value;
first-order Adam is ``torch.optim.Adam`` with autograd. The loss recorded at each step is f(θ_t)
itself, evaluated apart from the optimizer (so it is exact and costs the optimizer nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from adamezo._checks import check_choice, check_int
from adamezo.optim.registry import OPTIMIZERS as REGISTRY
from adamezo.optim.registry import OptimizerEntry
from adamezo.toy.functions import FUNCTIONS, ToyFunction

Builder = Callable[[list[torch.nn.Parameter], float, int, "int | None"], torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    """How the toy builds one optimizer: ``build(params, lr, seed, direction_seeds)``."""

    name: str
    label: str
    build: Builder
    zeroth_order: bool = True


def _toy_spec(name: str, entry: OptimizerEntry) -> OptimizerSpec:
    def build(params, lr, seed, direction_seeds):
        # First-order Adam ignores the seed and the directions: its gradient is exact.
        return entry.build(params, lr=lr, seed=seed, direction_seeds=direction_seeds)

    return OptimizerSpec(name, entry.label, build, entry.zeroth_order)


TOY_ENTRIES: dict[str, OptimizerEntry] = {
    "adam": REGISTRY["fo-adam"].variant(label="Adam"),
    "mezo": REGISTRY["mezo"],
    "adamezo": REGISTRY["adamezo"],
    "meazo": REGISTRY["meazo"],
    "zo-adam": REGISTRY["zo-adam"],
    # The library default α = 1e-8 (HiZOO's LLM setting) leaves H at its initial ones over a
    # toy's few hundred steps (measured: H = (1.001, 1.0003) after 300 steps on the
    # quadratic), so HiZOO would be MeZO with a third pass; α = 0.01 lets H move.
    "hizoo": REGISTRY["hizoo"].variant(fixed={"hessian_smoothing": 0.01}),
}
"""The registry's optimizers under the toy's names, with the toy's variants (MeZO-switch needs an
AdaMeZO run's norms, so it is not among them)."""

OPTIMIZERS: dict[str, OptimizerSpec] = {
    name: _toy_spec(name, entry) for name, entry in TOY_ENTRIES.items()
}
DEFAULT_OPTIMIZERS = ("adam", "mezo", "adamezo")


@dataclass(frozen=True)
class Run:
    """One optimizer's trajectory on one function from one seed: θ_0 … θ_T and f at each."""

    function: str
    optimizer: str
    lr: float
    seed: int
    direction_seeds: int | None
    points: np.ndarray
    """(T + 1, 2) array of θ_t."""
    losses: np.ndarray
    """(T + 1,) array of f(θ_t)."""

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def length(self) -> float:
        """Σ_t ‖θ_{t+1} − θ_t‖₂, the distance travelled."""
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    def steps_to(self, fraction: float) -> int | None:
        """The first t with f(θ_t) ≤ fraction · f(θ_0), or None if the run never got there."""
        reached = np.flatnonzero(self.losses <= fraction * self.losses[0])
        return int(reached[0]) if reached.size else None


def resolve_function(name: str) -> ToyFunction:
    return FUNCTIONS[check_choice("function", name, FUNCTIONS)]


def resolve_optimizer(name: str) -> OptimizerSpec:
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)]


def iterate(
    function: ToyFunction,
    optimizer: str,
    lr: float,
    seed: int = 0,
    direction_seeds: int | None = None,
) -> Iterator[tuple[np.ndarray, float]]:
    """(θ_t, f(θ_t)) for t = 0, 1, 2, …, without end; the caller decides when to stop."""
    spec = resolve_optimizer(optimizer)
    param = torch.nn.Parameter(torch.tensor(function.start, dtype=torch.float64))
    opt = spec.build([param], lr, seed, direction_seeds)

    if spec.zeroth_order:

        def closure() -> torch.Tensor:
            return function(param)

    else:

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = function(param)
            loss.backward()
            return loss

    while True:
        with torch.no_grad():
            yield param.detach().numpy().copy(), float(function(param))
        opt.step(closure)


def run(
    function: ToyFunction | str,
    optimizer: str,
    *,
    lr: float | None = None,
    seed: int = 0,
    steps: int | None = None,
    direction_seeds: int | None = None,
) -> Run:
    """``steps`` steps (default: the function's budget) at ``lr`` (default: the figure's lr)."""
    function = resolve_function(function) if isinstance(function, str) else function
    steps = function.steps if steps is None else check_int("steps", steps, 0)
    lr = function.learning_rates[optimizer] if lr is None else lr
    points, losses = [], []
    for point, loss in iterate(function, optimizer, lr, seed, direction_seeds):
        points.append(point)
        losses.append(loss)
        if len(losses) > steps:
            break
    return Run(
        function=function.name,
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        direction_seeds=direction_seeds,
        points=np.stack(points),
        losses=np.asarray(losses),
    )


def diverged(loss: float, start_loss: float) -> bool:
    """A loss that is not finite or has grown a millionfold: the run has left the landscape."""
    return not math.isfinite(loss) or loss > 1e6 * max(start_loss, 1.0)


def run_all(
    functions: Sequence[str],
    optimizers: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int | None = None,
    direction_seeds: int | None = None,
) -> list[Run]:
    """Every (function, optimizer, seed) at the figure's learning rates, in that order.

    Checks every name and learning rate before the first run starts.
    """
    resolved = [resolve_function(name) for name in functions]
    for optimizer in optimizers:
        resolve_optimizer(optimizer)
        for function in resolved:
            if optimizer not in function.learning_rates:
                raise ValueError(
                    f"{function.name} records no learning rate for {optimizer!r}; it has "
                    f"{sorted(function.learning_rates)}"
                )
    return [
        run(function, optimizer, seed=s, steps=steps, direction_seeds=direction_seeds)
        for function in resolved
        for optimizer in optimizers
        for s in seeds
    ]
