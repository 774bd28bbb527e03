"""LOZO and LOZO-M: each weight matrix perturbed along a rank-r direction U Vᵀ, V kept for ν steps
(docs/algorithms.md §11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_float, check_int
from adamezo.kernels import compute_dtype
from adamezo.kernels.lowrank import Factors, is_matrix, matrix_shape
from adamezo.noise import query_seed, step_seed
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderOptions,
)
from adamezo.optim.low_rank import LowRankConfig, LowRankOptimizer, NewState

RIGHT_FACTOR_QUERY = 1 << 32
"""The query index whose seed draws V (no step has that many queries), so V's stream is apart
from every U and z."""

MOMENTUM = "momentum"
"""The per-tensor buffer of LOZO-M: the m × r factor M for a matrix, a vector otherwise."""


@dataclass(frozen=True, kw_only=True)
class LOZOConfig(LowRankConfig):
    """LOZO's optimizer-wide settings: r, ν and LOZO-M's β (0: plain LOZO)."""

    lazy_interval: int = 50
    momentum: float = 0.0


class LOZO(LowRankOptimizer):
    """LOZO (Chen et al., ICLR 2025): zeroth-order SGD along low-rank directions.

    A matrix W (m × n; a tensor of more dimensions is viewed as shape[0] × the rest) moves along
    D_t = U_t V_kᵀ, with U_t (m × r) fresh every step and V_k (n × r) redrawn only every ν steps
    (k = ⌊t/ν⌋); both have standard normal entries and are regenerated from the seed, never
    stored. Tensors of one dimension (biases, norm weights) move along a full Gaussian z_t, as
    in MeZO. With p_t = (ℓ⁺ − ℓ⁻)/(2μ)::

        LOZO:    θ ← θ − η (p_t D_t + λ θ)
        LOZO-M:  M ← β M + (1−β) p_t U_t          (M is m × r; first update M = p_t U_t)
                 M ← β M V_{k'}ᵀ V_k / n + (1−β) p_t U_t      when V changed since M was made
                 θ ← θ − η (M V_kᵀ + λ θ)

    and the same momentum on p_t z_t for one-dimensional tensors. Memory beyond the model: none
    for LOZO; for LOZO-M the m × r factors plus the one-dimensional tensors' momentum.

    Args:
        rank: r ≥ 1 (default 2, the published code's).
        lazy_interval: ν ≥ 1, steps between draws of V (default 50).
        momentum: β in [0, 1) (default 0: LOZO; the paper's LOZO-M uses 0.9).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    config_type = LOZOConfig
    config: LOZOConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-6,
        *,
        rank: int = 2,
        lazy_interval: int = 50,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        checked = {
            "lazy_interval": check_int("lazy_interval", lazy_interval, 1),
            "momentum": check_float("momentum", momentum, 0.0, 1.0, max_open=True),
        }
        super().__init__(params, lr, weight_decay, rank, options, checked)

    def _initial_state(self) -> dict[str, Any]:
        # The k of the V that LOZO-M's factors are expressed in (None before the first update).
        return {"momentum_basis": None}

    @property
    def lazy_interval(self) -> int:
        return self.config.lazy_interval

    @property
    def momentum(self) -> float:
        return self.config.momentum

    def _state_shape(self, name: str, tensor: torch.Tensor) -> tuple[int, ...]:
        if name == MOMENTUM and is_matrix(tensor):
            return (tensor.shape[0], self.rank)
        return tuple(tensor.shape)

    def _right_factor(self, slot: TensorSlot, basis: int) -> torch.Tensor:
        """V_k for k = ``basis``: n × r."""
        seed = query_seed(step_seed(self.seed, basis), RIGHT_FACTOR_QUERY)
        return self._draw(slot, seed, matrix_shape(slot.tensor)[1], self.rank)

    def _factors(self, slot: TensorSlot, step: int, query: int) -> Factors:
        """(U_t, V_k) of ``slot`` at ``step``."""
        left = self._draw(slot, self._query_seed(step, query), slot.tensor.shape[0], self.rank)
        return left, self._right_factor(slot, step // self.lazy_interval)

    def _matrix_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        p, beta = context.projected_grad, self.momentum
        factors = self._factors(slot, context.step, 0)
        update: tuple[Factors, float] = (factors, p)
        if beta:
            basis = context.step // self.lazy_interval
            change = self._basis_change(slot, self._zo["momentum_basis"], basis, factors[1])
            factor = _momentum_factor(self._saved_momentum(slot), factors[0], p, beta, change)
            # Kept in the parameter's dtype, as torch's load_state_dict casts it back to that.
            new_state[slot.param] = {MOMENTUM: factor.to(slot.tensor.dtype)}
            update = ((factor, factors[1]), 1.0)
        restore = (factors, self._restore_scale(context))
        return self.low_rank_directions.update(slot, restore, update)

    def _finish_update(self, context: StepContext) -> None:
        if self.momentum:
            self._zo["momentum_basis"] = context.step // self.lazy_interval

    def _saved_momentum(self, slot: TensorSlot) -> torch.Tensor | None:
        """The momentum buffer of ``slot`` in the compute dtype, None before its first update."""
        saved = self.state[slot.param].get(MOMENTUM)
        return None if saved is None else saved.to(compute_dtype(slot.tensor.dtype))

    def _basis_change(
        self, slot: TensorSlot, previous: int | None, basis: int, right: torch.Tensor
    ) -> torch.Tensor | None:
        """V_{k'}ᵀ V_k / n when V changed since the momentum was made (k' ≠ k), else None."""
        if previous is None or previous == basis:
            return None
        return (self._right_factor(slot, previous).T @ right) / right.shape[0]

    def _vector_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        """A one-dimensional tensor: MeZO's fused update for LOZO; for LOZO-M the momentum of
        p_t z_t, chunk by chunk in plain torch (the buffer is as large as the tensor)."""
        group, p = slot.group, context.projected_grad
        if not self.momentum:
            return self._vector_sgd(context, slot, {0: p})
        restore = self._restore_scale(context)
        beta, lr, weight_decay = self.momentum, group["lr"], group["weight_decay"]
        old = self._saved_momentum(slot)
        momentum = torch.empty_like(slot.tensor)
        flat = momentum.view(-1)
        sq_sum = torch.zeros((), dtype=torch.float64, device=momentum.device)
        for where, chunk, z in self._noise_chunks(slot, context.step):
            theta = chunk.to(z.dtype, copy=True).add_(z * restore)
            m = (
                z.mul_(p)
                if old is None
                else old.view(-1)[where].mul(beta).add_(z.mul_(p * (1 - beta)))
            )
            step = (theta * weight_decay).add_(m).mul_(lr)
            sq_sum += step.double().square().sum()  # on the device: read once per step
            flat[where] = m
            chunk.copy_(theta.sub_(step))
        new_state[slot.param] = {MOMENTUM: momentum}
        return sq_sum


def _momentum_factor(
    old: torch.Tensor | None,
    left: torch.Tensor,
    p: float,
    beta: float,
    change: torch.Tensor | None,
) -> torch.Tensor:
    """LOZO-M's new m × r factor: p U on the first update, else β M (re-projected onto the new V
    by ``change`` = V_oldᵀ V_new / n when V changed) + (1−β) p U."""
    if old is None:
        return left * p
    carried = old if change is None else old @ change
    return carried * beta + left * ((1.0 - beta) * p)
