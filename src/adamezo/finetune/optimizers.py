"""The optimizers a fine-tuning run can use, each with its own default learning rate.

Learning rates are not interchangeable (docs/algorithms.md §3): MeZO's step is lr·p·z and
grows with |p|, while
AdaMeZO's and ZO-Adam's normalised updates make lr a per-coordinate step size, as in Adam. So every
optimizer has its own default per tuning mode, and μ has one per tuning mode (MeZO's settings: full
1e-3, LoRA 1e-2, prefix 1e-1). AdaMeZO's LoRA default was tuned on SmolLM2-135M and Rotten Tomatoes
(benchmarks/results/demo_tuning.md: 3e-3 barely moved the dev loss in 20 steps, 3e-2 diverged);
the other values follow the scale of the MeZO paper and docs/algorithms.md §3, untuned: tune lr
over a grid for any comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adamezo.optim import MEAZO, AdaMeZO, HiZOO, MeZO, MeZOSwitch, ZOAdam

TUNING_MODES = ("full", "lora", "prefix")

DEFAULT_PERTURBATION_SCALE = {"full": 1e-3, "lora": 1e-2, "prefix": 1e-1}


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer: its class, default lr per tuning mode, and options it takes."""

    label: str
    default_lr: dict[str, float]
    build: Callable[..., torch.optim.Optimizer]
    zeroth_order: bool = True
    uses_betas: bool = False
    uses_horizon: bool = False


def _zo(cls, **fixed: Any) -> Callable[..., torch.optim.Optimizer]:
    def build(params, *, lr, perturbation_scale, weight_decay, seed, kernel, **options):
        return cls(
            params,
            lr=lr,
            perturbation_scale=perturbation_scale,
            weight_decay=weight_decay,
            seed=seed,
            kernel=kernel,
            **fixed,
            **options,
        )

    return build


def _first_order_adam(params, *, lr, weight_decay, betas=None, **_ignored):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas or (0.9, 0.999))


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adamezo": OptimizerSpec(
        "AdaMeZO",
        {"full": 2e-5, "lora": 1e-2, "prefix": 1e-2},
        _zo(AdaMeZO),
        uses_betas=True,
        uses_horizon=True,
    ),
    "mezo": OptimizerSpec("MeZO", {"full": 1e-5, "lora": 1e-4, "prefix": 1e-3}, _zo(MeZO)),
    "zo-adam": OptimizerSpec(
        "ZO-Adam", {"full": 2e-5, "lora": 1e-3, "prefix": 1e-2}, _zo(ZOAdam), uses_betas=True
    ),
    "meazo": OptimizerSpec("MEAZO", {"full": 2e-5, "lora": 1e-3, "prefix": 1e-2}, _zo(MEAZO)),
    "hizoo": OptimizerSpec("HiZOO", {"full": 1e-5, "lora": 1e-4, "prefix": 1e-3}, _zo(HiZOO)),
    "mezo-switch": OptimizerSpec(
        "MeZO-switch", {"full": 1e-5, "lora": 1e-4, "prefix": 1e-3}, _zo(MeZOSwitch)
    ),
    "fo-adam": OptimizerSpec(
        "first-order Adam (backprop)",
        {"full": 1e-5, "lora": 1e-4, "prefix": 1e-2},
        _first_order_adam,
        zeroth_order=False,
        uses_betas=True,
    ),
}


def optimizer_spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name]


def build_optimizer(
    name: str,
    params: Sequence[torch.Tensor],
    *,
    lr: float,
    perturbation_scale: float,
    weight_decay: float = 0.0,
    seed: int = 0,
    betas: tuple[float, ...] | None = None,
    horizon: int | None = None,
    kernel: str = "auto",
    norm_schedule: Sequence[float] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` (the trainable tensors only)."""
    spec = optimizer_spec(name)
    options: dict[str, Any] = {}
    if betas is not None:
        if name == "meazo":
            options["beta"] = betas[-1]
        elif spec.uses_betas:
            options["betas"] = tuple(betas)
        else:
            raise ValueError(f"betas: optimizer {name!r} takes no betas")
    if horizon is not None:
        if not spec.uses_horizon:
            raise ValueError(f"horizon: optimizer {name!r} takes no horizon")
        options["horizon"] = horizon
    if name == "mezo-switch":
        if norm_schedule is None:
            raise ValueError(
                "optimizer 'mezo-switch' needs norm_schedule: the update norms of an AdaMeZO run "
                "(pass that run's log.jsonl)"
            )
        options["norm_schedule"] = list(norm_schedule)
    return spec.build(
        list(params),
        lr=lr,
        perturbation_scale=perturbation_scale,
        weight_decay=weight_decay,
        seed=seed,
        kernel=kernel,
        **options,
    )
