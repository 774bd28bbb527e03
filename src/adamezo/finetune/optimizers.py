"""The optimizers a fine-tuning run can use: the registry of :mod:`adamezo.optim.registry`,
plus the builder that turns a run's settings into one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from adamezo.optim.registry import (
    DEFAULT_PERTURBATION_SCALE,
    OPTIMIZERS,
    TUNING_MODES,
    OptimizerEntry,
    optimizer_entry,
)

__all__ = [
    "DEFAULT_PERTURBATION_SCALE",
    "OPTIMIZERS",
    "TUNING_MODES",
    "OptimizerSpec",
    "build_optimizer",
    "optimizer_spec",
]

OptimizerSpec = OptimizerEntry
optimizer_spec = optimizer_entry


def build_optimizer(
    name: str,
    params: Sequence[torch.Tensor] | Sequence[dict[str, Any]],
    *,
    lr: float,
    perturbation_scale: float,
    weight_decay: float = 0.0,
    seed: int = 0,
    betas: tuple[float, ...] | None = None,
    horizon: int | None = None,
    preset: str | None = None,
    warmup_steps: int | None = None,
    kernel: str = "auto",
    perturbation: str = "auto",
    norm_schedule: Sequence[float] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` (the trainable tensors, or param-group dicts)."""
    return optimizer_entry(name).build(
        list(params),
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        perturbation_scale=perturbation_scale,
        seed=seed,
        kernel=kernel,
        perturbation=perturbation,
        horizon=horizon,
        preset=preset,
        warmup_steps=warmup_steps,
        norm_schedule=None if norm_schedule is None else list(norm_schedule),
    )


def run_optimizer(
    config: Any, tuned: Any, norm_schedule: Sequence[float] | None = None
) -> torch.optim.Optimizer:
    """The optimizer a fine-tuning run (a resolved ``FinetuneConfig``) trains ``tuned`` with:
    one recipe for the run itself and for its replay, so both build the same one."""
    return build_optimizer(
        config.optimizer,
        tuned.param_groups(exclude_bias_norm=config.weight_decay_exclude_bias_norm),
        lr=config.lr,
        perturbation_scale=config.perturbation_scale,
        weight_decay=config.weight_decay,
        seed=config.seed,
        betas=config.betas,
        horizon=config.horizon,
        preset=config.preset,
        warmup_steps=config.warmup_steps,
        kernel=config.kernel,
        perturbation=config.perturbation,
        norm_schedule=norm_schedule,
    )
