"""HiZOO: zeroth-order steps preconditioned by a diagonal Hessian estimate.

The exact update is in docs/algorithms.md §6.
"""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_float
from adamezo.kernels import CurvatureUpdate
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.optim.directions import Directions, PreconditionedDirections
from adamezo.optim.estimators import CentralDifference


class HiZOO(ZerothOrderOptimizer):
    """Zeroth-order optimizer with a diagonal Hessian estimate H (one model-sized buffer).

    Three passes per step: ℓ⁰ = L(θ), ℓ± = L(θ ± μ H^{−1/2} ⊙ z_t). Then::

        Ĥ = |ℓ⁺ + ℓ⁻ − 2ℓ⁰| / (2μ²) · H ⊙ z_t²,    H ← (1−α) H + α Ĥ
        θ ← θ − η (p_t z_t / √H + λ θ)                (with the updated H)

    H starts at ones and lives in ``state[param]["hessian"]`` in the parameter's dtype. The
    perturbations and the update are kernel passes (:class:`~adamezo.kernels.CurvatureUpdate`), so
    ``kernel`` picks numba, Triton or plain torch. ``step`` returns (ℓ⁺ + ℓ⁻)/2.

    Args:
        hessian_smoothing: α in [0, 1) (default 1e-8).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    estimator = CentralDifference(center=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-6,
        *,
        hessian_smoothing: float = 1e-8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay, "hessian_smoothing": hessian_smoothing},
            **options,
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        # α = 1 would replace H by the new estimate alone, which is 0 where the loss has no
        # curvature along z, and z/√H would be infinite; α < 1 keeps H ≥ (1−α)^t > 0.
        check_float("hessian_smoothing", group["hessian_smoothing"], 0.0, 1.0, max_open=True)

    def _hessian(self, slot: TensorSlot) -> torch.Tensor:
        state = self.state[slot.param]
        if "hessian" not in state:
            state["hessian"] = torch.ones_like(slot.tensor)
        return state["hessian"]

    def _make_directions(self) -> Directions:
        return PreconditionedDirections(self._query_seed, self._kernel, self._hessian)

    def _update(self, context: StepContext) -> float:
        mu = self.perturbation_scale
        loss_center, loss_plus, loss_minus = context.losses
        curvature = abs(loss_plus + loss_minus - 2.0 * loss_center) / (2.0 * mu * mu)
        restore, p = self._restore_scale(context), context.projected_grad
        updates = {
            id(group): CurvatureUpdate(
                restore=restore,
                grad=p,
                curvature=curvature,
                smoothing=group["hessian_smoothing"],
                lr=group["lr"],
                weight_decay=group["weight_decay"],
            )
            for group in context.groups
        }

        def update(slot: TensorSlot) -> float | torch.Tensor:
            return self._kernel(slot.tensor).curvature_update(
                slot.tensor,
                self._hessian(slot),
                self._stream_base(slot, context.step),
                updates[id(slot.group)],
                slot.offset,
            )

        return context.rewrite_summed(update)
