"""MeZO (ZO-SGD): θ ← θ − η (p_t z_t + λ θ), docs/algorithms.md §2."""

from __future__ import annotations

from typing_extensions import Unpack

from adamezo.optim.base import ParamsT, StepContext, ZerothOrderOptimizer, ZerothOrderOptions


class MeZO(ZerothOrderOptimizer):
    """Zeroth-order SGD (Malladi et al., 2023), memory-free.

    Update: u_t = p_t z_t, θ ← θ − η (u_t + λ θ), with p_t = (ℓ⁺ − ℓ⁻)/(2μ). The step length grows
    with |p_t|, so its lr is not interchangeable with AdaMeZO's. It holds no state beyond counters;
    the restore of the last perturbation and the update are one pass over θ.

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-6,
        *,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay},
            **options,
        )

    def _update(self, context: StepContext) -> float:
        return self._noise_update(context, context.projected_grad)
