"""The compiled CPU kernel computes exactly what the plain-torch reference kernel computes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adamezo.kernels import TorchKernel
from adamezo.kernels.reference import CANONICAL_NAN, RademacherKernel, sqrt_rn
from tests.kernel_cases import DTYPES, adamezo_update, bases, same_bits, weights

numba_cpu = pytest.importorskip("adamezo.kernels.numba_cpu")
NumbaKernel = numba_cpu.NumbaKernel
NumbaRademacherKernel = numba_cpu.NumbaRademacherKernel

SIZES = [(1, 0), (7, 3), (4099, 5), (70_001, 2)]


# (plain-torch reference, compiled twin): the compiled Rademacher passes take each sign from a bit
# of the hash, not from the sign table, and must still give the reference's values.
PAIRS = [(TorchKernel(1000), NumbaKernel()), (RademacherKernel(1000), NumbaRademacherKernel())]
PAIR_IDS = ["gaussian", "rademacher"]


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_numba_add_noise_equals_reference(pair, dtype, numel, offset):
    reference, compiled = pair
    expected = weights(numel, dtype)
    actual = expected.clone()
    reference.add_noise(expected, bases(1)[0], 0.37, offset)
    compiled.add_noise(actual, bases(1)[0], 0.37, offset)
    assert same_bits(actual, expected)
    assert compiled.noise_sq_sum(actual, bases(1)[0], offset) == pytest.approx(
        reference.noise_sq_sum(actual, bases(1)[0], offset), rel=1e-12
    )


@pytest.mark.parametrize(
    "pair",
    [*PAIRS, (TorchKernel(1000), TorchKernel(1000))],
    ids=[*PAIR_IDS, "torch"],
)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_perturbed_copy_equals_add_noise_and_leaves_theta_alone(pair, dtype, numel, offset):
    reference, kernel = pair
    theta = weights(numel, dtype)
    before = theta.clone()
    expected = theta.clone()
    reference.add_noise(expected, bases(1)[0], -0.37, offset)
    actual = kernel.perturbed_copy(theta, bases(1)[0], -0.37, offset)
    assert same_bits(actual, expected)
    assert same_bits(theta, before)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_a_switch_between_queries_is_bitwise_two_noise_passes(pair, dtype, numel, offset):
    reference, compiled = pair
    old, new = bases(2)
    expected = weights(numel, dtype)
    reference.add_noise(expected, old, 0.37, offset)
    actual = expected.clone()
    reference.add_noise(expected, old, -0.37, offset)
    reference.add_noise(expected, new, 0.37, offset)
    compiled.switch_noise(actual, old, new, 0.37, offset)
    assert same_bits(actual, expected)
    default = weights(numel, dtype)
    reference.add_noise(default, old, 0.37, offset)
    reference.switch_noise(default, old, new, 0.37, offset)  # the base class's two passes
    assert same_bits(default, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("streams", [1, 2, 3, 4, 5, 10])
@pytest.mark.parametrize("second_moment", [True, False])
def test_numba_fused_update_equals_reference(dtype, streams, second_moment):
    numel, offset = 70_001, 3
    update = adamezo_update(streams, second_moment)
    expected = weights(numel, dtype)
    actual = expected.clone()
    expected_sq = TorchKernel(4096).fused_update(expected, bases(streams), update, offset)
    actual_sq = NumbaKernel().fused_update(actual, bases(streams), update, offset)
    assert same_bits(actual, expected)
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


def test_numba_fused_update_without_weight_decay_equals_reference():
    update = adamezo_update(3, second_moment=True, weight_decay=0.0)
    expected = weights(5003, torch.float32)
    actual = expected.clone()
    TorchKernel(1000).fused_update(expected, bases(3), update, 1)
    NumbaKernel().fused_update(actual, bases(3), update, 1)
    assert same_bits(actual, expected)


@pytest.mark.parametrize("offset", [0, 1, 6])
def test_numba_noise_sq_sum_matches_reference(offset):
    tensor = torch.empty(40_003)
    expected = TorchKernel(1000).noise_sq_sum(tensor, bases(1)[0], offset)
    assert NumbaKernel().noise_sq_sum(tensor, bases(1)[0], offset) == pytest.approx(
        expected, rel=1e-12
    )


def test_numba_update_of_shards_equals_update_of_whole_tensor():
    update = adamezo_update(4, second_moment=True)
    whole = weights(50_001, torch.float32)
    shards = whole.clone()
    kernel = NumbaKernel()
    whole_sq = kernel.fused_update(whole, bases(4), update)
    split = 20_003  # not a multiple of 4: the second shard starts inside a hash word
    sq = kernel.fused_update(shards[:split], bases(4), update, 0)
    sq += kernel.fused_update(shards[split:], bases(4), update, split)
    assert same_bits(shards, whole)
    assert sq == pytest.approx(whole_sq, rel=1e-12)


def test_reference_kernel_result_does_not_depend_on_chunk_size():
    update = adamezo_update(3, second_moment=True)
    small_chunks = weights(10_001, torch.bfloat16)
    one_chunk = small_chunks.clone()
    TorchKernel(999).fused_update(small_chunks, bases(3), update, 2)
    TorchKernel(1 << 20).fused_update(one_chunk, bases(3), update, 2)
    assert same_bits(small_chunks, one_chunk)


def test_numba_update_norm_does_not_depend_on_thread_count():
    update = adamezo_update(2, second_moment=True)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            tensor = weights(200_003, torch.float32)
            results.append((NumbaKernel().fused_update(tensor, bases(2), update), tensor))
    finally:
        torch.set_num_threads(threads)
    assert results[0][0] == results[1][0] == results[2][0]
    assert same_bits(results[0][1], results[1][1]) and same_bits(results[0][1], results[2][1])


def _all_finite_patterns(dtype: torch.dtype) -> torch.Tensor:
    values = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype)
    return values[torch.isfinite(values)].contiguous()


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (torch.bfloat16, 1e-3),
        (torch.bfloat16, 1e-38),  # results in the subnormal range
        (torch.bfloat16, 3e38),  # results overflow to ±inf
        (torch.float16, 1e-3),
        (torch.float16, 1e-6),
        (torch.float16, 3e4),
    ],
)
def test_numba_rounds_every_16_bit_value_like_torch(dtype, scale):
    expected = _all_finite_patterns(dtype)
    actual = expected.clone()
    TorchKernel().add_noise(expected, bases(1)[0], scale)
    NumbaKernel().add_noise(actual, bases(1)[0], scale)
    assert same_bits(actual, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sqrt_rn_is_the_ieee_square_root(dtype):
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.random(200_000) * 10.0, np.exp(rng.uniform(-80, 80, 200_000)), [0.0, 1.0, 4.0]]
    ).astype(dtype)
    assert np.array_equal(sqrt_rn(torch.from_numpy(values)).numpy(), np.sqrt(values))


def test_numba_kernel_rejects_unsupported_tensors():
    with pytest.raises(ValueError, match="numba kernel"):
        NumbaKernel().add_noise(torch.zeros(4, 4).t(), bases(1)[0], 1.0)
    with pytest.raises(ValueError, match="streams"):
        NumbaKernel().fused_update(torch.zeros(4), bases(2), adamezo_update(3, True))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_cpu_kernel_stores_a_16_bit_nan_as_the_canonical_quiet_nan(dtype):
    """CPU torch's own vectorised float32 -> bfloat16 conversion stores NaN as 0xFFFF; the
    reference kernel stores 0x7FC0 (0x7E00 for float16), as numba and Triton do."""
    canonical = CANONICAL_NAN[dtype]
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0] * 5, dtype=dtype)
    zero = dataclasses.replace(adamezo_update(1, True), m_coefs=(0.0,), v_coefs=(0.0,), eps=0.0)
    for kernel in (TorchKernel(7), NumbaKernel()):
        noisy, updated = special.clone(), special.clone()
        kernel.add_noise(noisy, bases(1)[0], 0.37)
        kernel.fused_update(updated, bases(1), zero)
        assert (noisy.view(torch.int16)[::4] == canonical).all(), kernel.name
        assert (updated.view(torch.int16) == canonical).all(), kernel.name
