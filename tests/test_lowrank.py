"""The low-rank passes: the compiled ones equal the plain-torch ones bit for bit, both equal the
float64 formula to rounding, and the factors drawn by a kernel are the reference stream."""

from __future__ import annotations

import pytest
import torch

from adamezo.kernels import TorchKernel, compute_dtype
from adamezo.kernels.lowrank import (
    INLINE_RANK,
    TORCH_PASSES,
    add_lowrank,
    gaussian_factor,
    lowrank_copy,
    lowrank_update,
)
from adamezo.noise import normal
from tests.kernel_cases import DTYPES, bases, same_bits

numba_cpu = pytest.importorskip("adamezo.kernels.numba_cpu")
COMPILED = numba_cpu.NumbaKernel().product_passes()

SHAPES = [(7, 5), (300, 257), (2000, 33), (1, 9), (3, 2, 4)]
RANKS = [1, 2, 3, INLINE_RANK, INLINE_RANK + 1, 20]


def case(shape, dtype, rank, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows, cols = shape[0], int(torch.tensor(shape[1:]).prod())
    cd = compute_dtype(dtype)
    theta = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    a, b, a2 = (
        torch.randn(n, rank, generator=g, dtype=torch.float64).to(cd) for n in (rows, cols, rows)
    )
    return theta, a, b, a2


@pytest.mark.parametrize("chunk", [1 << 20, 100])
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_passes_equal_the_torch_passes_bit_for_bit(dtype, shape, rank, chunk):
    theta, a, b, a2 = case(shape, dtype, rank)
    in_place = [theta.clone(), theta.clone()]
    add_lowrank(in_place[0], (a, b), 3e-2, chunk, TORCH_PASSES)
    add_lowrank(in_place[1], (a, b), 3e-2, chunk, COMPILED)
    assert same_bits(in_place[1], in_place[0])
    for passes in (TORCH_PASSES, COMPILED):
        assert same_bits(lowrank_copy(theta, (a, b), 3e-2, chunk, passes), in_place[0])
    for restore, update in [
        (((a, b), -3e-2), ((a, b), 0.3)),  # LOZO: the same factors
        (((a, b), -3e-2), ((a2, b), 0.3)),  # LOZO-M: the momentum factor
        (None, ((a2, b), 0.3)),  # an exact perturbation: nothing to restore
    ]:
        moved = [theta.clone(), theta.clone()]
        sums = [
            float(lowrank_update(x, restore, update, 0.1, 0.01, chunk, passes))
            for x, passes in zip(moved, (TORCH_PASSES, COMPILED), strict=True)
        ]
        assert same_bits(moved[1], moved[0])
        assert sums[1] == pytest.approx(sums[0], rel=1e-12)


@pytest.mark.parametrize("passes", [TORCH_PASSES, COMPILED], ids=["torch", "numba"])
@pytest.mark.parametrize("rank", [2, INLINE_RANK + 1])
def test_the_passes_equal_the_float64_formula(passes, rank):
    theta, a, b, a2 = case((300, 257), torch.float32, rank)
    d = a.double() @ b.double().T
    moved = lowrank_copy(theta, (a, b), 3e-2, 1 << 20, passes)
    torch.testing.assert_close(moved.double(), theta.double() + 3e-2 * d, rtol=1e-6, atol=1e-6)
    start = moved.clone()
    sq = float(lowrank_update(moved, ((a, b), -3e-2), ((a2, b), 0.3), 0.1, 0.01, 1 << 20, passes))
    t = start.double() - 3e-2 * d
    want = t - 0.1 * (0.3 * (a2.double() @ b.double().T) + 0.01 * t)
    torch.testing.assert_close(moved.double(), want, rtol=1e-6, atol=1e-6)
    assert sq == pytest.approx(float((want - t).square().sum()), rel=1e-4)


def test_the_compiled_passes_do_not_depend_on_the_thread_count():
    theta, a, b, a2 = case((2000, 33), torch.bfloat16, 2)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            moved = lowrank_copy(theta, (a, b), 3e-2, 1 << 20, COMPILED)
            sq = lowrank_update(moved, ((a, b), -3e-2), ((a2, b), 0.3), 0.1, 0.0, 1 << 20, COMPILED)
            results.append((moved, sq))
    finally:
        torch.set_num_threads(threads)
    assert same_bits(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize("kernel", [None, TorchKernel(1000), numba_cpu.NumbaKernel()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_factor_is_the_reference_stream_whichever_kernel_draws_it(kernel, dtype):
    base = bases(1)[0]
    factor = gaussian_factor(base, 37, 5, torch.device("cpu"), dtype, kernel)
    assert factor.shape == (37, 5) and factor.dtype == dtype
    assert same_bits(factor, normal(base, 37 * 5).view(37, 5).to(dtype))
