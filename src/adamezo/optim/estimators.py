"""Estimators: where a step evaluates the loss and how the losses become projected gradients.

A zeroth-order step evaluates the closure at θ + c·μ·d_j for a few (offset c, query j) pairs, the
*passes*, and turns the losses into one projected gradient p_j per query (the slope of L along
d_j). :class:`CentralDifference` is the symmetric two-point estimate of MeZO (q queries of two
passes each, optionally after a pass at θ itself, as HiZOO needs); :class:`OneSided` is a clean
pass at θ followed by N one-sided queries, as FZOO takes them (docs/algorithms.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adamezo._checks import check_int


@dataclass(frozen=True)
class Estimator:
    """The passes of a step and what its losses mean; subclasses fill in the arithmetic."""

    queries: int = 1
    """How many directions a step explores (q)."""

    def __post_init__(self) -> None:
        check_int("queries", self.queries, 1)

    @property
    def offsets(self) -> tuple[float, ...]:
        """c of each pass, in the order the closure is called."""
        raise NotImplementedError

    @property
    def pass_queries(self) -> tuple[int, ...]:
        """The query j whose direction each pass moves along (offset 0: any)."""
        raise NotImplementedError

    def projected_grads(self, values: Sequence[float], mu: float) -> tuple[float, ...]:
        """p_j for j = 0 … q−1 from the passes' losses (in pass order) and μ."""
        raise NotImplementedError

    def loss(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """What ``step`` returns: the loss the step reports for its batch."""
        raise NotImplementedError


@dataclass(frozen=True)
class CentralDifference(Estimator):
    """q symmetric queries: passes θ ± μ d_j, p_j = (ℓ_j⁺ − ℓ_j⁻)/(2μ); with ``center`` a pass at
    θ comes first (its loss is for the update rule, HiZOO's curvature). Returns the mean of the
    perturbed losses, (ℓ⁺ + ℓ⁻)/2 for one query."""

    center: bool = False

    @property
    def offsets(self) -> tuple[float, ...]:
        return (0.0,) * self.center + (1.0, -1.0) * self.queries

    @property
    def pass_queries(self) -> tuple[int, ...]:
        return (0,) * self.center + tuple(j for j in range(self.queries) for _ in range(2))

    def projected_grads(self, values: Sequence[float], mu: float) -> tuple[float, ...]:
        first = int(self.center)
        return tuple(
            (values[first + 2 * j] - values[first + 2 * j + 1]) / (2.0 * mu)
            for j in range(self.queries)
        )

    def loss(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.queries == 1:
            return (losses[-2] + losses[-1]) / 2
        perturbed = list(losses[int(self.center) :])
        return torch.stack([loss.to(torch.float64) for loss in perturbed]).mean()


@dataclass(frozen=True)
class OneSided(Estimator):
    """A clean pass ℓ⁰ = L(θ), then N queries ℓ_j = L(θ + μ d_j), p_j = (ℓ_j − ℓ⁰)/μ. Returns
    ℓ⁰, the loss at the weights themselves."""

    @property
    def offsets(self) -> tuple[float, ...]:
        return (0.0,) + (1.0,) * self.queries

    @property
    def pass_queries(self) -> tuple[int, ...]:
        return (0, *range(self.queries))

    def projected_grads(self, values: Sequence[float], mu: float) -> tuple[float, ...]:
        return tuple((values[1 + j] - values[0]) / mu for j in range(self.queries))

    def loss(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        return losses[0]


class OneSidedQueries:
    """Mixin of an optimizer whose step is a clean pass and N one-sided queries, N its
    ``config.queries`` (FZOO, ZO-Muon): its :class:`OneSided` estimator and ``queries``. Put
    it before the optimizer's base class, so its ``estimator`` wins over the base's."""

    config: Any
    """The optimizer's settings; they hold ``queries``."""

    @property
    def estimator(self) -> OneSided:
        return OneSided(queries=self.config.queries)

    @property
    def queries(self) -> int:
        """N, the one-sided queries per step."""
        return self.config.queries

    @classmethod
    def estimator_at(cls, arguments: Mapping[str, Any]) -> OneSided:
        """The estimator of an optimizer built with ``arguments["queries"]`` queries."""
        return OneSided(queries=arguments["queries"])
