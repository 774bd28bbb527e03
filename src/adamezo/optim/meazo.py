"""MEAZO: MeZO with one scalar second moment of the projected gradient (docs/algorithms.md §5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from typing_extensions import Unpack

from adamezo._checks import check_float
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    ZerothOrderConfig,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.rules import bias_correction, ema


@dataclass(frozen=True, kw_only=True)
class MEAZOConfig(ZerothOrderConfig):
    """MEAZO's optimizer-wide settings: β and ε of its one shared second moment."""

    beta: float = 0.99
    eps: float = 1e-8


class MEAZO(ZerothOrderOptimizer):
    """MeZO normalised by a running RMS of the projected gradient; one scalar of state::

        v ← β v + (1−β) p_t²,   v̂ = v / (1 − β^{t+1}),   u_t = p_t z_t / (√v̂ + ε)
        θ ← θ − η (u_t + λ θ)

    Args:
        beta: β in [0, 1) (default 0.99); one value per optimizer, since v is shared.
        eps: ε > 0 (default 1e-8).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    config_type = MEAZOConfig
    config: MEAZOConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-5,
        *,
        beta: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay},
            **options,
            config={
                "beta": check_float("beta", beta, 0.0, 1.0, max_open=True),
                # ε = 0 would divide 0 by 0 while every projected gradient so far is 0.
                "eps": check_float("eps", eps, 0.0, min_open=True),
            },
        )

    def _initial_state(self) -> dict[str, Any]:
        return {"second_moment": 0.0}

    def _update(self, context: StepContext) -> float:
        beta, eps = self.config.beta, self.config.eps
        p = context.projected_grad
        second_moment = ema(self._zo["second_moment"], p * p, beta)
        corrected = second_moment / bias_correction(beta, context.update_index)
        sq_norm = self._noise_update(context, p / (math.sqrt(corrected) + eps))
        self._zo["second_moment"] = second_moment
        return sq_norm
