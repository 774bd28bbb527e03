"""Test-side tools: a closure that records every θ it is evaluated at, and SPEC formulas written
out independently of the library (float64), to hold the optimizers against."""

from __future__ import annotations

import math

import torch

MU = 1e-3


def params_of(shapes, dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    """Seeded standard-normal parameters of these shapes, drawn in float64, stored in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64).to(dtype))
        for s in shapes
    ]


def make_params(seed: int = 0, dtype: torch.dtype = torch.float64) -> list[torch.nn.Parameter]:
    """Two tensors with sizes that are not multiples of 4, so lanes straddle tensor ends."""
    return params_of([(7,), (3, 5)], dtype, seed)


def loss_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A smooth non-quadratic loss, so projected gradients vary from step to step."""
    total = torch.zeros((), dtype=torch.float64)
    for i, t in enumerate(tensors):
        t = t.double()
        total = total + (torch.sin(t * (i + 1)) + 0.5 * t * t).sum()
    return total


class RecordingClosure:
    """Returns L(θ) and keeps a float64 copy of θ from every call."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.seen: list[list[torch.Tensor]] = []
        self.grad_enabled: list[bool] = []

    def __call__(self) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        self.seen.append([p.detach().double().clone() for p in self.params])
        return loss_of(self.params)


def snapshot(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().double().clone() for p in params]


def direction_from(before: list[torch.Tensor], plus: list[torch.Tensor], mu: float = MU):
    """z recovered from the first pass, which saw θ + μz."""
    return [(p - b) / mu for b, p in zip(before, plus, strict=True)]


def weights(beta: float, n: int, normalize: bool) -> list[float]:
    if not normalize:
        return [1.0 if k == 0 else beta**k for k in range(n)]
    if beta == 1.0:
        return [1.0 / n] * n
    return [(1 - beta) * beta**k / (1 - beta**n) for k in range(n)]


def relative_error(actual: list[torch.Tensor], expected: list[torch.Tensor], before) -> float:
    """‖actual − expected‖ / ‖expected − before‖: error relative to the size of the update."""
    num = math.sqrt(sum(float((a.double() - e).square().sum()) for a, e in zip(actual, expected)))
    den = math.sqrt(sum(float((e - b).square().sum()) for e, b in zip(expected, before)))
    return num / den


def build(name: str, params, **overrides):
    """An optimizer of the family by name, with small test-friendly defaults."""
    import adamezo

    lr = overrides.pop("lr", 1e-2)
    if name == "LOZO-M":  # V redrawn every 3 steps, so resumes and replays cross a change
        return adamezo.LOZO(params, lr=lr, momentum=0.9, lazy_interval=3, **overrides)
    if name == "ZOMuon":  # P redrawn every 3 steps; rank below the test matrices' rows
        return adamezo.ZOMuon(params, lr=lr, rank=2, resample_interval=3, **overrides)
    if name == "MeZOSwitch":
        return adamezo.MeZOSwitch(
            params, overrides.pop("norm_schedule", lambda t: 0.01), lr=lr, **overrides
        )
    return getattr(adamezo, name)(params, lr=lr, **overrides)


OPTIMIZERS = [
    "MeZO",
    "AdaMeZO",
    "ZOAdam",
    "MEAZO",
    "HiZOO",
    "MeZOSwitch",
    "FZOO",
    "LOZO",
    "LOZO-M",
    "ZOMuon",
]
