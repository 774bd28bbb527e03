"""FZOO: one clean pass and N one-sided Rademacher queries, the step normalised by the spread of
the N losses (docs/algorithms.md §10)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from typing_extensions import Unpack

from adamezo._checks import check_int
from adamezo.kernels import FusedUpdate, Kernel, rademacher_twin
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    ZerothOrderConfig,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.optim.directions import Directions, ElementwiseDirections
from adamezo.optim.estimators import OneSided
from adamezo.rules import normalised_one_sided


@dataclass(frozen=True, kw_only=True)
class FZOOConfig(ZerothOrderConfig):
    """FZOO's optimizer-wide setting: N, the one-sided queries per step."""

    queries: int = 8


class FZOO(ZerothOrderOptimizer):
    """FZOO (Dang et al., 2025): a normalised zeroth-order SGD step from N + 1 forward passes.

    Each step evaluates ℓ⁰ = L(θ) and ℓ_j = L(θ + μ r_j) for N Rademacher directions r_j (every
    entry ±1, regenerated from the seed like MeZO's z), then::

        σ  = population standard deviation of ℓ_1 … ℓ_N
        u_t = Σ_j (ℓ_j − ℓ⁰) / (N σ) · r_j                 (u_t = 0 when σ = 0)
        θ ← θ − η (u_t + λ θ)

    Dividing by σ, itself about μ·‖∇L‖, makes the step's length independent of μ and of the
    gradient's scale: η is a per-coordinate step size (|u_t| per coordinate is about 1/√N).
    ``step`` returns ℓ⁰, the loss at θ. The Rademacher passes run in the sign-table twin of the
    kernel ``kernel`` selects (numba, Triton), or in plain torch for any other kernel.

    Args:
        queries: N ≥ 2 (default 8, the published code's value); one value per optimizer.

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    config_type = FZOOConfig
    config: FZOOConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        queries: int = 8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        self._twins: dict[str, Kernel] = {}
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay},
            **options,
            config={"queries": check_int("queries", queries, 2)},
        )

    @property
    def estimator(self) -> OneSided:  # type: ignore[override]
        return OneSided(queries=self.config.queries)

    @property
    def queries(self) -> int:
        return self.config.queries

    def _make_directions(self) -> Directions:
        return ElementwiseDirections(self._query_seed, self._rademacher_kernel)

    def _rademacher_kernel(self, tensor: torch.Tensor) -> Kernel:
        """The Rademacher twin of the kernel ``kernel`` selects for ``tensor``: compiled where
        that is the numba or Triton kernel, else the plain-torch passes (bitwise the same
        values)."""
        gaussian = self._kernel(tensor)
        twin = self._twins.get(gaussian.name)
        if twin is None:
            twin = rademacher_twin(gaussian, self.config.chunk_size)
            self._twins[gaussian.name] = twin
        return twin

    def _update(self, context: StepContext) -> float:
        coefficients = normalised_one_sided(context.losses)
        order = context.restore_first(range(len(coefficients)))
        streams = [(context.step, j) for j in order]
        restore = self._restore_scale(context)
        updates = {
            id(group): FusedUpdate.sgd(
                restore, [coefficients[j] for j in order], group["lr"], group["weight_decay"]
            )
            for group in context.groups
        }
        directions = self.directions
        assert isinstance(directions, ElementwiseDirections)
        return context.rewrite_summed(
            lambda slot: directions.fused_update_deferred(slot, streams, updates[id(slot.group)])
        )
