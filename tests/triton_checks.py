"""The Triton kernel computes exactly what the reference kernel computes.

On a CUDA machine these tests run the compiled programs on the GPU. Elsewhere they need Triton's
CPU interpreter, which must be switched on before Triton is first imported, so the suite runs
this file in a fresh process with ``TRITON_INTERPRET=1`` (see ``test_triton_kernel.py``); run
alone without that variable, it skips.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from adamezo.kernels import CurvatureUpdate, MomentUpdate, TorchKernel
from adamezo.kernels.reference import CANONICAL_NAN, RademacherKernel
from adamezo.noise import normal, rademacher
from tests.kernel_cases import DTYPES, adamezo_update, bases, same_bits, weights

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
if not (INTERPRET or torch.cuda.is_available()):
    pytest.skip("needs a CUDA device or TRITON_INTERPRET=1", allow_module_level=True)
pytest.importorskip("triton")
DEVICE = "cpu" if INTERPRET else "cuda"


@pytest.fixture(scope="module")
def triton_kernel():
    from adamezo.kernels.triton_gpu import TritonKernel

    return TritonKernel()


@pytest.mark.parametrize(("numel", "offset"), [(7, 3), (4099, 5)])
def test_triton_noise_equals_reference_noise(triton_kernel, numel, offset):
    z = torch.zeros(numel, device=DEVICE)
    triton_kernel.add_noise(z, bases(1)[0], 1.0, offset)
    assert same_bits(z.cpu(), normal(bases(1)[0], numel, offset))


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_add_noise_equals_reference(triton_kernel, dtype):
    expected = weights(5001, dtype)
    actual = expected.to(DEVICE, copy=True)
    TorchKernel(1000).add_noise(expected, bases(1)[0], 0.37, 3)
    triton_kernel.add_noise(actual, bases(1)[0], 0.37, 3)
    assert same_bits(actual.cpu(), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("streams", "second_moment"), [(1, False), (5, True), (10, True)])
def test_triton_fused_update_equals_reference(triton_kernel, dtype, streams, second_moment):
    update = adamezo_update(streams, second_moment)
    expected = weights(5001, dtype)
    actual = expected.to(DEVICE, copy=True)
    expected_sq = TorchKernel(1000).fused_update(expected, bases(streams), update, 3)
    actual_sq = triton_kernel.fused_update(actual, bases(streams), update, 3)
    assert same_bits(actual.cpu(), expected)
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


def test_triton_noise_sq_sum_matches_reference(triton_kernel):
    tensor = torch.empty(9001, device=DEVICE)
    expected = TorchKernel(1000).noise_sq_sum(tensor.cpu(), bases(1)[0], 1)
    assert triton_kernel.noise_sq_sum(tensor, bases(1)[0], 1) == pytest.approx(expected, rel=1e-12)


# Bases that do not fit in 32 bits (or in a signed 64-bit int), and small ones that Triton would
# type as int32.
WIDE_BASES = [3, 2**31 + 1, 2**32 + 7, 0xDEADBEEF12345678, 2**63 + 5, 2**64 - 1]


@pytest.mark.parametrize("base", WIDE_BASES)
def test_triton_noise_equals_reference_for_bases_beyond_32_bits(triton_kernel, base):
    z = torch.zeros(4099, device=DEVICE)
    triton_kernel.add_noise(z, base, 1.0, 5)
    assert same_bits(z.cpu(), normal(base, 4099, 5))


def test_triton_fused_update_equals_reference_for_bases_beyond_32_bits(triton_kernel):
    update = adamezo_update(len(WIDE_BASES), True)
    expected = weights(3001, torch.float32)
    actual = expected.to(DEVICE, copy=True)
    TorchKernel(1000).fused_update(expected, WIDE_BASES, update, 1)
    triton_kernel.fused_update(actual, WIDE_BASES, update, 1)
    assert same_bits(actual.cpu(), expected)


# Offsets at and past 2^31 elements (a shard of a tensor larger than int32 can index), with a
# block that straddles 2^31 itself.
WIDE_OFFSETS = [2**31 - 2049, 2**31, 2**32 + 3, 2**40 + 1]


@pytest.mark.parametrize("offset", WIDE_OFFSETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_passes_equal_reference_at_offsets_past_2_31(triton_kernel, offset, dtype):
    update = adamezo_update(3, True)
    expected = weights(4099, dtype)
    actual = expected.to(DEVICE, copy=True)
    TorchKernel(1000).add_noise(expected, bases(1)[0], 0.37, offset)
    triton_kernel.add_noise(actual, bases(1)[0], 0.37, offset)
    TorchKernel(1000).fused_update(expected, bases(3), update, offset)
    triton_kernel.fused_update(actual, bases(3), update, offset)
    assert same_bits(actual.cpu(), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_stores_a_16_bit_nan_as_every_kernel_does(triton_kernel, dtype):
    """NaN is stored as the canonical quiet NaN (0x7FC0, 0x7E00) by every kernel, whatever the
    device's own conversion would leave (CPU torch: 0xFFFF for bfloat16; CUDA: 0x7FFF)."""
    canonical = CANONICAL_NAN[dtype]
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0] * 5, dtype=dtype)
    expected = special.clone()
    actual = special.to(DEVICE, copy=True)
    TorchKernel(1000).add_noise(expected, bases(1)[0], 0.37)
    triton_kernel.add_noise(actual, bases(1)[0], 0.37)
    assert same_bits(actual.cpu(), expected)
    assert (actual.cpu().view(torch.int16)[::4] == canonical).all()
    # 0/0 in the update (m = v = 0 with eps = 0) makes a NaN of every element.
    zero = dataclasses.replace(adamezo_update(1, True), m_coefs=(0.0,), v_coefs=(0.0,), eps=0.0)
    expected, actual = special.clone(), special.to(DEVICE, copy=True)
    TorchKernel(1000).fused_update(expected, bases(1), zero)
    triton_kernel.fused_update(actual, bases(1), zero)
    assert same_bits(actual.cpu(), expected)
    assert (actual.cpu().view(torch.int16) == canonical).all()


def test_triton_fused_update_deferred_leaves_the_sum_on_the_device(triton_kernel):
    update = adamezo_update(5, True)
    first, second = weights(5001, torch.float32).to(DEVICE), weights(5001, torch.float32)
    second = second.to(DEVICE)
    deferred = triton_kernel.fused_update_deferred(first, bases(5), update, 3)
    assert isinstance(deferred, torch.Tensor) and deferred.dtype == torch.float64
    assert deferred.shape == () and deferred.device == first.device
    assert float(deferred) == triton_kernel.fused_update(second, bases(5), update, 3)


def test_triton_reused_coefficients_keep_the_sign_of_zero(triton_kernel):
    """Coefficients are cached by their bits: a scale of -0.0 after one of +0.0 is not +0.0."""
    for scale in (0.0, -0.0, 0.0):
        expected = torch.full((9,), -0.0)
        actual = expected.to(DEVICE, copy=True)
        TorchKernel(1000).add_noise(expected, bases(1)[0], scale)
        triton_kernel.add_noise(actual, bases(1)[0], scale)
        assert same_bits(actual.cpu(), expected)


MOMENT = MomentUpdate(
    restore=-1e-3,
    grad=2.3,
    beta1=0.9,
    beta2=0.999,
    correction1=1 - 0.9**3,
    correction2=1 - 0.999**3,
    eps=1e-8,
    lr=1e-2,
    weight_decay=0.1,
)
CURVATURE = CurvatureUpdate(
    restore=1e-3, grad=-1.7, curvature=3.1, smoothing=0.3, lr=1e-2, weight_decay=0.1
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), [(7, 3), (5001, 2)])
def test_triton_moment_update_equals_reference(triton_kernel, dtype, numel, offset):
    state = [weights(numel, dtype), weights(numel, dtype, 1) * 0.1]
    state.append(weights(numel, dtype, 2).square().to(dtype) * 0.1)
    actual = [x.to(DEVICE, copy=True) for x in state]
    expected_sq = TorchKernel(1000).moment_update(*state, bases(1)[0], MOMENT, offset)
    actual_sq = float(triton_kernel.moment_update(*actual, bases(1)[0], MOMENT, offset))
    assert all(same_bits(a.cpu(), e) for a, e in zip(actual, state, strict=True))
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), [(7, 3), (5001, 2)])
def test_triton_curvature_passes_equal_reference(triton_kernel, dtype, numel, offset):
    theta, h = weights(numel, dtype), (weights(numel, dtype, 3).abs() + 0.5).to(dtype)
    on_device = theta.to(DEVICE, copy=True), h.to(DEVICE, copy=True)
    expected = TorchKernel(1000).add_preconditioned_noise(
        theta, h, bases(1)[0], 0.37, offset, out=torch.empty_like(theta)
    )
    copy = triton_kernel.add_preconditioned_noise(
        *on_device, bases(1)[0], 0.37, offset, out=torch.empty_like(on_device[0])
    )
    assert same_bits(copy.cpu(), expected)
    in_place = on_device[0].clone()
    triton_kernel.add_preconditioned_noise(in_place, on_device[1], bases(1)[0], 0.37, offset)
    assert same_bits(in_place.cpu(), expected)
    expected_sq = TorchKernel(1000).curvature_update(theta, h, bases(1)[0], CURVATURE, offset)
    actual_sq = float(triton_kernel.curvature_update(*on_device, bases(1)[0], CURVATURE, offset))
    assert same_bits(on_device[0].cpu(), theta) and same_bits(on_device[1].cpu(), h)
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


@pytest.fixture(scope="module")
def triton_rademacher():
    from adamezo.kernels import rademacher_twin
    from adamezo.kernels.triton_gpu import TritonKernel

    twin = rademacher_twin(TritonKernel())
    assert twin.name == "triton-rademacher"
    return twin


@pytest.mark.parametrize(("numel", "offset"), [(7, 3), (4099, 5)])
def test_triton_rademacher_noise_equals_reference_signs(triton_rademacher, numel, offset):
    r = torch.zeros(numel, device=DEVICE)
    triton_rademacher.add_noise(r, bases(1)[0], 1.0, offset)
    assert same_bits(r.cpu(), rademacher(bases(1)[0], numel, offset))
    assert same_bits(r.cpu(), torch.sign(normal(bases(1)[0], numel, offset)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_rademacher_passes_equal_the_torch_and_numba_twins(triton_rademacher, dtype):
    from adamezo.kernels.numba_cpu import NumbaRademacherKernel

    theta = weights(5001, dtype)
    expected = RademacherKernel(1000).perturbed_copy(theta, bases(1)[0], -0.37, 3)
    copy = triton_rademacher.perturbed_copy(theta.to(DEVICE), bases(1)[0], -0.37, 3)
    assert same_bits(copy.cpu(), expected)
    update = adamezo_update(9, second_moment=False)
    expected, compiled, actual = theta.clone(), theta.clone(), theta.to(DEVICE, copy=True)
    expected_sq = RademacherKernel(1000).fused_update(expected, bases(9), update, 3)
    NumbaRademacherKernel().fused_update(compiled, bases(9), update, 3)
    actual_sq = triton_rademacher.fused_update(actual, bases(9), update, 3)
    assert same_bits(actual.cpu(), expected) and same_bits(compiled, expected)
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)
    assert triton_rademacher.noise_sq_sum(actual, bases(1)[0], 3) == 5001.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fzoo_on_triton_is_bitwise_fzoo_on_torch(dtype):
    """FZOO's passes and update go through the Triton twin (``kernel="triton"``) and give the
    weights of the plain-torch path bit for bit."""
    import adamezo
    from tests.zo_reference import loss_of, make_params

    runs = []
    for kernel in ("torch", "triton"):
        params = [p.detach().to(DEVICE, dtype) for p in make_params()]
        opt = adamezo.FZOO(params, lr=1e-2, queries=3, kernel=kernel, weight_decay=0.1)
        for _ in range(3):
            opt.step(lambda params=params: loss_of([p.cpu() for p in params]))
        runs.append([p.cpu() for p in params])
        if kernel == "triton":
            assert opt.directions.kernel_for(params[0]).name == "triton-rademacher"
    assert all(same_bits(a, b) for a, b in zip(*runs, strict=True))
