"""Every kernel computes exactly what the plain-torch reference computes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adamezo.kernels import FusedUpdate, TorchKernel, available_kernels, resolve_kernel
from adamezo.kernels.reference import sqrt_rn
from adamezo.noise import normal, step_seed, stream_base

numba_cpu = pytest.importorskip("adamezo.kernels.numba_cpu")
NumbaKernel = numba_cpu.NumbaKernel

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def bases(count: int, key: int = 3) -> list[int]:
    return [stream_base(step_seed(7, step), key) for step in range(count)]


def weights(numel: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(numel, generator=generator, dtype=torch.float64).to(dtype)


def adamezo_update(streams: int, second_moment: bool, weight_decay: float) -> FusedUpdate:
    rng = np.random.default_rng(streams)
    grads = rng.standard_normal(streams) * 3
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(float(0.3 * 0.7**k * g) for k, g in enumerate(grads)),
        v_coefs=tuple(float(0.1 * 0.9**k * g * g) for k, g in enumerate(grads))
        if second_moment
        else None,
        gain=1.0,
        eps=1e-8,
        lr=1e-2,
        weight_decay=weight_decay,
    )


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), [(1, 0), (7, 3), (4099, 5), (70001, 2)])
def test_numba_add_noise_equals_reference(dtype, numel, offset):
    expected = weights(numel, dtype)
    actual = expected.clone()
    TorchKernel(1000).add_noise(expected, bases(1)[0], 0.37, offset)
    NumbaKernel().add_noise(actual, bases(1)[0], 0.37, offset)
    assert same_bits(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("streams", [1, 5, 10])
@pytest.mark.parametrize("second_moment", [True, False])
def test_numba_fused_update_equals_reference(dtype, streams, second_moment):
    numel, offset = 70001, 3
    update = adamezo_update(streams, second_moment, weight_decay=0.1)
    expected = weights(numel, dtype)
    actual = expected.clone()
    expected_sq = TorchKernel(4096).fused_update(expected, bases(streams), update, offset)
    actual_sq = NumbaKernel().fused_update(actual, bases(streams), update, offset)
    assert same_bits(actual, expected)
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)
