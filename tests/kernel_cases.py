"""Inputs shared by the kernel tests: weights, stream bases, update coefficients, bit equality."""

from __future__ import annotations

import numpy as np
import torch

from adamezo.kernels import FusedUpdate
from adamezo.noise import step_seed, stream_base

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def bases(count: int, key: int = 3) -> list[int]:
    """Stream bases of ``count`` consecutive steps for tensor ``key``."""
    return [stream_base(step_seed(7, step), key) for step in range(count)]


def weights(numel: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(numel, generator=generator, dtype=torch.float64).to(dtype)


def adamezo_update(streams: int, second_moment: bool, weight_decay: float = 0.1) -> FusedUpdate:
    """Coefficients shaped like AdaMeZO's (decaying weights times p and p²), with large |p|."""
    grads = np.random.default_rng(streams).standard_normal(streams) * 3
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(float(0.3 * 0.7**k * g) for k, g in enumerate(grads)),
        v_coefs=(
            tuple(float(0.1 * 0.9**k * g * g) for k, g in enumerate(grads))
            if second_moment
            else None
        ),
        gain=1.0,
        eps=1e-8,
        lr=1e-2,
        weight_decay=weight_decay,
    )


def same_bits(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Bitwise equality (so -0.0 differs from +0.0 and NaN payloads count)."""
    a, b = actual.detach().reshape(-1), expected.detach().reshape(-1)
    return a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))
