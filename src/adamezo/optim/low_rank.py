"""The shared part of the low-rank methods (LOZO, ZO-Muon): matrices move along factored
directions A·Bᵀ drawn from the seed, one-dimensional tensors along MeZO's Gaussian z."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adamezo._checks import check_int
from adamezo.kernels import FusedUpdate, compute_dtype
from adamezo.kernels.lowrank import Factors, gaussian_factor, is_matrix
from adamezo.noise import stream_base
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderConfig,
    ZerothOrderOptimizer,
)
from adamezo.optim.directions import (
    Directions,
    ElementwiseDirections,
    LowRankDirections,
    check_whole,
)


@dataclass(frozen=True, kw_only=True)
class LowRankConfig(ZerothOrderConfig):
    """The optimizer-wide setting every low-rank method has: r, the rank of a matrix's
    direction (each method extends it with its own and gives its own default)."""

    rank: int = 2


NewState = dict[torch.Tensor, dict[str, torch.Tensor]]
"""Parameter -> the buffers its update computed, stored in ``state`` only once every tensor is
updated (so that a failed update leaves the state as it was)."""


class LowRankOptimizer(ZerothOrderOptimizer):
    """A zeroth-order optimizer whose matrices (tensors of two or more dimensions, viewed as
    shape[0] × the rest) move along rank-r directions A·Bᵀ and whose one-dimensional tensors move
    along Gaussian z as in MeZO; every factor is regenerated from the seed.

    A subclass gives the factors of a query (``_factors``), the update of one matrix
    (``_matrix_update``) and of one vector (``_vector_update``, usually :meth:`_vector_sgd`), and
    may move from one query to the next in one product (``_switch_factors``). Sharded (FSDP)
    matrices are refused: a factor spans the whole matrix.
    """

    config_type = LowRankConfig
    config: LowRankConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        weight_decay: float,
        rank: int,
        options: Mapping[str, Any],
        config: Mapping[str, Any],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay},
            **options,
            config={"rank": check_int("rank", rank, 1), **config},
        )

    @property
    def rank(self) -> int:
        return self.config.rank

    @property
    def low_rank_directions(self) -> LowRankDirections:
        """The direction family (the same object as ``directions``, typed)."""
        directions = self.directions
        assert isinstance(directions, LowRankDirections)
        return directions

    def _make_directions(self) -> Directions:
        vectors = ElementwiseDirections(self._query_seed, self._kernel)
        chunk_size = self.config.chunk_size
        return LowRankDirections(
            self._query_seed, self._factors, vectors, chunk_size, self._switch_factors
        )

    def _check_slots(self, slots: Sequence[TensorSlot]) -> None:
        check_whole(slots, type(self).__name__)

    def _draw(self, slot: TensorSlot, seed: int, size: int, rank: int) -> torch.Tensor:
        """A size × rank factor for ``slot`` from the stream of ``seed`` (compute dtype), drawn
        by the kernel ``slot``'s tensor gets."""
        tensor = slot.tensor
        dtype, kernel = compute_dtype(tensor.dtype), self._kernel(tensor)
        return gaussian_factor(
            stream_base(seed, slot.key), size, rank, tensor.device, dtype, kernel
        )

    def _factors(self, slot: TensorSlot, step: int, query: int) -> Factors:
        """(A, B) of query ``query``'s direction of ``slot``'s matrix at ``step``."""
        raise NotImplementedError

    def _switch_factors(self, slot: TensorSlot, step: int, old: int, new: int) -> Factors | None:
        """(A, B) with A·Bᵀ = d_new − d_old when the queries share A, else None (then an
        in-place pass moves back along d_old and out along d_new)."""
        return None

    def _update(self, context: StepContext) -> float:
        new_state: NewState = {}

        def update(slot: TensorSlot) -> float | torch.Tensor:
            if is_matrix(slot.tensor):
                return self._matrix_update(context, slot, new_state)
            return self._vector_update(context, slot, new_state)

        total = context.rewrite_summed(update)
        for param, values in new_state.items():
            self.state[param].update(values)
        self._finish_update(context)
        return total

    def _matrix_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        """Restore and update one matrix; put new buffers in ``new_state``; return Σ(Δθ)²."""
        raise NotImplementedError

    def _vector_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        """Restore and update one one-dimensional tensor, as :meth:`_matrix_update`."""
        raise NotImplementedError

    def _finish_update(self, context: StepContext) -> None:
        """Advance the optimizer-wide state once every tensor is updated."""

    def _vector_sgd(
        self,
        context: StepContext,
        slot: TensorSlot,
        coefficients: Mapping[int, float],
        lr_scale: float = 1.0,
    ) -> float | torch.Tensor:
        """θ ← θ − η·lr_scale·(Σ_j c_j z_j + λ θ) over the queries j of ``coefficients``, fused
        with the restore along the query θ was left on, by the kernel."""
        queries = context.restore_first(coefficients)
        group = slot.group
        update = FusedUpdate.sgd(
            self._restore_scale(context),
            [coefficients[j] for j in queries],
            lr=group["lr"] * lr_scale,
            weight_decay=group["weight_decay"],
        )
        streams = [(context.step, j) for j in queries]
        return self.low_rank_directions.vectors.fused_update_deferred(slot, streams, update)
