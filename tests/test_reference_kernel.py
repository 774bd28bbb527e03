"""The plain-torch reference kernel: its operation order, chunk independence, kernel choice."""

import pytest
import torch

from adamezo import kernels, noise
from adamezo.kernels import FusedUpdate, TorchKernel

BASES = [noise.stream_base(noise.step_seed(0, t), 2) for t in range(3)]


def _update(**overrides):
    values = {
        "restore": 1e-3,
        "m_coefs": (0.5, -0.25, 0.125),
        "v_coefs": (0.3, 0.2, 0.1),
        "gain": 1.5,
        "eps": 1e-6,
        "lr": 1e-2,
        "weight_decay": 0.1,
    }
    values.update(overrides)
    return FusedUpdate(**values)


def test_fused_update_follows_the_documented_operation_order():
    theta = torch.randn(1001)
    update = _update()
    expected = theta.clone()
    z = [noise.normal(b, 1001) for b in BASES]
    f32 = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    t = expected + z[0] * f32(update.restore)
    m = torch.zeros(1001)
    v = torch.zeros(1001)
    for k in range(3):
        m = m + z[k] * f32(update.m_coefs[k])
        v = v + (z[k] * z[k]) * f32(update.v_coefs[k])
    ieee_sqrt = v.double().sqrt().float()  # correctly rounded (torch's float32 CPU sqrt is not)
    u = (m * f32(update.gain)) / (ieee_sqrt + f32(update.eps))
    expected = t - (u + t * f32(update.weight_decay)) * f32(update.lr)
    TorchKernel().fused_update(theta, BASES, update)
    assert torch.equal(theta, expected)


def test_fused_update_without_second_moment_is_a_plain_combination():
    theta = torch.randn(100, dtype=torch.float64)
    before = theta.clone()
    update = _update(v_coefs=None, restore=0.0, weight_decay=0.0, gain=1.0)
    TorchKernel().fused_update(theta, BASES, update)
    z = [noise.normal(b, 100).double() for b in BASES]
    expected = before - 1e-2 * sum(c * zk for c, zk in zip(update.m_coefs, z))
    torch.testing.assert_close(theta, expected, rtol=1e-14, atol=0)


def test_fused_update_returns_the_squared_norm_of_the_change():
    theta = torch.randn(333, dtype=torch.float64)
    restored = theta + 1e-3 * noise.normal(BASES[0], 333).double()
    sq = TorchKernel().fused_update(theta, BASES, _update())
    assert sq == pytest.approx(float((theta - restored).square().sum()), rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_results_do_not_depend_on_chunk_size(dtype, chunk):
    theta = torch.randn(1000).to(dtype)
    expected, actual = theta.clone(), theta.clone()
    TorchKernel(1 << 20).fused_update(expected, BASES, _update(), offset=5)
    TorchKernel(chunk).fused_update(actual, BASES, _update(), offset=5)
    assert torch.equal(actual, expected)
    TorchKernel(1 << 20).add_noise(expected, BASES[1], 0.01, offset=7)
    TorchKernel(chunk).add_noise(actual, BASES[1], 0.01, offset=7)
    assert torch.equal(actual, expected)


def test_a_shard_at_an_offset_sees_its_slice_of_the_full_noise():
    full = torch.zeros(100)
    TorchKernel().add_noise(full, BASES[0], 1.0)
    shard = torch.zeros(30)
    TorchKernel().add_noise(shard, BASES[0], 1.0, offset=41)
    assert torch.equal(shard, full[41:71])


def test_noise_sq_sum_matches_the_generated_noise():
    tensor = torch.empty(777)
    expected = float(noise.normal(BASES[0], 777).double().square().sum())
    assert TorchKernel(100).noise_sq_sum(tensor, BASES[0]) == pytest.approx(expected, rel=1e-12)


def test_fused_update_rejects_mismatched_streams_and_coefficients():
    with pytest.raises(ValueError, match="streams"):
        TorchKernel().fused_update(torch.zeros(4), BASES[:2], _update())
    with pytest.raises(ValueError, match="v_coefs must match"):
        _update(v_coefs=(1.0,))


def test_auto_falls_back_to_the_torch_kernel_for_float64():
    kernel = kernels.resolve_kernel("auto", torch.zeros(3, dtype=torch.float64), 1024)
    assert kernel.supports(torch.zeros(3, dtype=torch.float64))


def test_a_kernel_instance_can_be_passed_directly():
    kernel = TorchKernel(17)
    assert kernels.resolve_kernel(kernel, torch.zeros(3), 1024) is kernel


def test_torch_is_always_an_available_kernel():
    assert "torch" in kernels.available_kernels()
