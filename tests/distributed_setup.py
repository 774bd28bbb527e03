"""The small float64 model, data and optimizer settings the multi-process tests train, shared by
the worker processes and the single-process reference runs in the test process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import adamezo

SEED = 7
STEPS = 5
TOLERANCE = 1e-11
"""Largest weight difference allowed between a multi-process run and one process on the whole
batch, in float64: the mean of the shards' mean losses differs from the whole batch's mean loss
in the last bits, p = Δℓ/2μ scales that by 1/μ (HiZOO's curvature by 1/μ²); measured: at most
1e-14, HiZOO 1.6e-13. Without the weighting of uneven shards the difference is 7e-3."""

OPTIMIZERS: dict[str, Callable[..., adamezo.ZerothOrderOptimizer]] = {
    "MeZO": lambda params, **kw: adamezo.MeZO(params, lr=1e-2, **kw),
    "AdaMeZO": lambda params, **kw: adamezo.AdaMeZO(params, lr=1e-2, horizon=3, **kw),
    "ZOAdam": lambda params, **kw: adamezo.ZOAdam(params, lr=1e-2, **kw),
    "MEAZO": lambda params, **kw: adamezo.MEAZO(params, lr=1e-2, **kw),
    "HiZOO": lambda params, **kw: adamezo.HiZOO(params, lr=1e-2, hessian_smoothing=0.1, **kw),
    "MeZOSwitch": lambda params, **kw: adamezo.MeZOSwitch(params, lambda t: 0.05, **kw),
    "FZOO": lambda params, **kw: adamezo.FZOO(params, lr=1e-2, queries=3, **kw),
    "ZOMuon": lambda params, **kw: adamezo.ZOMuon(
        params, lr=1e-2, rank=2, resample_interval=2, vector_lr_scale=1.0, **kw
    ),
    "LOZO-M": lambda params, **kw: adamezo.LOZO(
        params, lr=1e-2, momentum=0.9, lazy_interval=2, **kw
    ),
}


LOW_RANK = ("ZOMuon", "LOZO-M")
"""Optimizers whose directions are low-rank per matrix: data parallel only, no FSDP."""


def make_data(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 6, generator=generator, dtype=torch.float64)
    return x, x[:, :1].sin() + 0.1 * torch.randn(rows, 1, generator=generator, dtype=torch.float64)


def make_model(init_seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(init_seed)
    # 7 hidden rows and 1 output row: uneven shards over 2 processes, one of them empty.
    return torch.nn.Sequential(
        torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1)
    ).double()


def make_optimizer(name: str, model: torch.nn.Module, **options: Any) -> Any:
    return OPTIMIZERS[name](list(model.parameters()), seed=SEED, **options)


def train(
    optimizer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = STEPS,
    weight: float | None = None,
) -> list[float]:
    """``steps`` steps on the mean squared error of (x, y); the returned losses."""
    return [
        float(optimizer.step(lambda: F.mse_loss(model(x), y), weight=weight)) for _ in range(steps)
    ]


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def reference(name: str, rows: int, steps: int = STEPS) -> tuple[torch.Tensor, list[float]]:
    """Weights and losses after ``steps`` steps of one process on the whole batch of ``rows``."""
    x, y = make_data(rows)
    model = make_model()
    optimizer = make_optimizer(name, model)
    losses = train(optimizer, model, x, y, steps)
    return flat(model), losses
