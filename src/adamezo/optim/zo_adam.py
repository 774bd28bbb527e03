"""ZO-Adam: Adam on the SPSA gradient estimate, with both moments in memory.

The exact update is in docs/algorithms.md §4.
"""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_betas, check_float
from adamezo.optim.base import ParamsT, StepContext, ZerothOrderOptimizer, ZerothOrderOptions
from adamezo.rules import bias_correction


class ZOAdam(ZerothOrderOptimizer):
    """Adam on ĝ_t = p_t z_t, holding the two model-sized moment buffers AdaMeZO avoids::

        m ← β₁ m + (1−β₁) ĝ,   v ← β₂ v + (1−β₂) ĝ²,   m̂ = m/(1−β₁^{t+1}),  v̂ = v/(1−β₂^{t+1})
        θ ← θ − η (m̂/(√v̂ + ε) + λ θ)

    The buffers ``exp_avg`` and ``exp_avg_sq`` live in ``state[param]`` in the parameter's dtype,
    as in ``torch.optim.Adam``.

    Args:
        betas: (β₁, β₂) in [0, 1) (default (0.9, 0.999)); per param group.
        eps: ε > 0 (default 1e-8); per param group.

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-5,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps},
            **options,
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        # β = 1 would make the bias correction 1 − β^{t+1} zero; ε = 0 divides 0 by 0 wherever
        # every projected gradient so far was 0.
        group["betas"] = check_betas("betas", group["betas"], max_open=True)
        check_float("eps", group["eps"], 0.0, min_open=True)

    def _update(self, context: StepContext) -> float:
        restore, p = self._restore_scale(context), context.projected_grad
        sq_norm = 0.0
        for slot in context.rewrite():
            group = slot.group
            beta1, beta2 = group["betas"]
            correction1 = bias_correction(beta1, context.update_index)
            correction2 = bias_correction(beta2, context.update_index)
            lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
            state = self.state[slot.param]
            if not state:
                state["exp_avg"] = torch.zeros_like(slot.tensor)
                state["exp_avg_sq"] = torch.zeros_like(slot.tensor)
            exp_avg, exp_avg_sq = state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1)
            for where, chunk, z in self._noise_chunks(slot, context.step):
                theta = chunk.to(z.dtype, copy=True).add_(z * restore)
                grad = z.mul_(p)
                m = exp_avg[where].to(z.dtype, copy=True).mul_(beta1).add_(grad * (1.0 - beta1))
                v = (
                    exp_avg_sq[where]
                    .to(z.dtype, copy=True)
                    .mul_(beta2)
                    .add_(grad.square() * (1.0 - beta2))
                )
                direction = (m / correction1).div_((v / correction2).sqrt_().add_(eps))
                step = direction.add_(theta * weight_decay).mul_(lr)
                sq_norm += float(step.double().square().sum())
                exp_avg[where] = m
                exp_avg_sq[where] = v
                chunk.copy_(theta.sub_(step))
        return sq_norm
