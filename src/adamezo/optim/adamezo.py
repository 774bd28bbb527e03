"""AdaMeZO: Adam-style moments from the last K directions, regenerated, never stored.

The exact update is in docs/algorithms.md §3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from typing_extensions import Unpack

from adamezo._checks import check_betas, check_choice, check_float, check_int
from adamezo.kernels import FusedUpdate
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    ZerothOrderConfig,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.rules import adamezo_coefficients

PRESETS: dict[str, dict[str, Any]] = {
    # The published reference implementation: raw weights, a large gain, and plain MeZO updates
    # while the history fills (the first K+1 steps; warmup_steps=None means horizon + 1).
    "reference": {"normalize": False, "gain": 100.0, "eps": 1e-5, "warmup_steps": None},
}

_DEFAULTS: dict[str, Any] = {"normalize": True, "gain": 1.0, "eps": 1e-8, "warmup_steps": 0}


@dataclass(frozen=True, kw_only=True)
class AdaMeZOConfig(ZerothOrderConfig):
    """AdaMeZO's optimizer-wide settings: K, the warm-up length and the preset they came from."""

    horizon: int = 10
    warmup_steps: int = 0
    preset: str | None = None


class AdaMeZO(ZerothOrderOptimizer):
    """Adaptive zeroth-order optimizer with truncated moments that are never stored.

    It keeps only the last K = ``horizon`` pairs (step, p) — 2K scalars — and, in one pass over θ,
    regenerates each z_{t−k} from its seed and forms element-wise::

        m_t = Σ_k a_k p_{t−k} z_{t−k}
        v_t = Σ_k b_k (p_{t−k} z_{t−k})²
        u_t = gain · m_t / (√v_t + ε)          (β₂ = 0: u_t = gain · m_t, momentum only)
        θ  ← θ − η (u_t + λ θ)

    over k = 0 … n−1, n = min(K, t+1). With ``normalize=True`` the weights are the bias-corrected
    truncated exponential averages a_k = (1−β₁)β₁^k/(1−β₁^n), b_k = (1−β₂)β₂^k/(1−β₂^n), so |u_t|
    per coordinate is bounded and lr is a per-coordinate step size, as in Adam. ``normalize=False``
    uses a_k = β₁^k, b_k = β₂^k. β₁ = β₂ = 0 is exactly MeZO.

    Args:
        betas: (β₁, β₂), each in [0, 1]; per param group.
        horizon: K ≥ 1, the number of past directions combined; one value per optimizer.
        eps: ε > 0 (default 1e-8); per param group.
        normalize: bias-corrected weights (default True); per param group.
        gain: multiplies u_t (default 1); per param group.
        warmup_steps: the first this many updates are plain MeZO updates (default 0).
        preset: ``"reference"`` reproduces the published code: normalize=False, gain=100,
            eps=1e-5 and horizon + 1 MeZO warm-up steps. Arguments passed explicitly win.
            With ``horizon=1`` the published code makes plain MeZO updates for ever, and so
            does this preset; without the preset, K = 1 follows the formula above
            (u_t = gain·p_t z_t/(|p_t z_t| + ε), a sign-like step).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    config_type = AdaMeZOConfig
    config: AdaMeZOConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-5,
        *,
        betas: tuple[float, float] = (0.7, 0.9),
        horizon: int = 10,
        eps: float | None = None,
        normalize: bool | None = None,
        gain: float | None = None,
        warmup_steps: int | None = None,
        preset: str | None = None,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        if preset is not None:
            check_choice("preset", preset, PRESETS)
        horizon = check_int("horizon", horizon, 1)
        explicit = {"normalize": normalize, "gain": gain, "eps": eps, "warmup_steps": warmup_steps}
        resolved = {**_DEFAULTS, **PRESETS.get(preset or "", {})}
        resolved.update({k: v for k, v in explicit.items() if v is not None})
        if resolved["warmup_steps"] is None:
            resolved["warmup_steps"] = horizon + 1
        super().__init__(
            params,
            {
                "lr": lr,
                "weight_decay": weight_decay,
                "betas": betas,
                "eps": resolved["eps"],
                "normalize": resolved["normalize"],
                "gain": resolved["gain"],
            },
            **options,
            config={
                "horizon": horizon,
                "warmup_steps": check_int("warmup_steps", resolved["warmup_steps"], 0),
                "preset": preset,
            },
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        group_betas = check_betas("betas", group["betas"])
        # ε = 0 would divide by zero wherever the second moment is 0 (a projected gradient of 0).
        check_float("eps", group["eps"], 0.0, min_open=True)
        check_float("gain", group["gain"], 0.0)
        if not isinstance(group["normalize"], bool):
            raise TypeError(f"normalize must be a bool, got {type(group['normalize']).__name__}")
        if not isinstance(group["betas"], tuple):
            group["betas"] = group_betas

    def _initial_state(self) -> dict[str, Any]:
        return {"history": []}

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def warmup_steps(self) -> int:
        return self.config.warmup_steps

    @property
    def history(self) -> list[tuple[int, float]]:
        """The (step, projected gradient) pairs the next update combines, oldest first."""
        return [tuple(entry) for entry in self._zo["history"]]

    def _mezo_update(self, update_index: int) -> bool:
        """Whether update ``update_index`` is a plain MeZO update: during the warm-up, and
        always with the reference preset and K = 1, as in the published code."""
        config = self.config
        return update_index < config.warmup_steps or (
            config.preset == "reference" and config.horizon == 1
        )

    def _update(self, context: StepContext) -> float:
        history = [*self._zo["history"], [context.step, context.projected_grad]]
        history = history[-self.horizon :]
        if self._mezo_update(context.update_index):
            sq_norm = self._noise_update(context, context.projected_grad)
        else:
            newest_first = history[::-1]
            streams = [step for step, _ in newest_first]
            grads = [p for _, p in newest_first]
            restore = self._restore_scale(context)
            updates = [_fused_rule(grads, group, restore) for group in context.groups]
            sq_norm = self._fused_update(context, streams, updates)
        self._zo["history"] = history
        return sq_norm


def _fused_rule(grads: list[float], group: dict[str, Any], restore: float) -> FusedUpdate:
    """The kernel coefficients of one param group for the projected gradients ``grads``
    (newest first)."""
    m_coefs, v_coefs = adamezo_coefficients(grads, group["betas"], group["normalize"])
    return FusedUpdate(
        restore=restore,
        m_coefs=m_coefs,
        v_coefs=v_coefs,
        gain=group["gain"],
        eps=group["eps"],
        lr=group["lr"],
        weight_decay=group["weight_decay"],
    )
