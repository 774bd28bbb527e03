"""The compiled Triton kernel on a CUDA GPU: 2³¹-element bfloat16 tensors, no host waits inside
a step's passes, and launches on the tensor's device. Skipped without CUDA (marker ``gpu``)."""

from __future__ import annotations

import pytest
import torch

from adamezo.kernels import DeferredSum, TorchKernel
from adamezo.noise import normal
from tests.kernel_cases import adamezo_update, bases, same_bits

pytestmark = pytest.mark.gpu

BIG = 2**31 + 4099
"""Elements of the large tensors: index 2³¹ and the block that straddles it are inside."""


@pytest.fixture(scope="module")
def triton_kernel():
    pytest.importorskip("triton")
    from adamezo.kernels.triton_gpu import TritonKernel

    return TritonKernel()


def _big_bf16(seed: int) -> torch.Tensor:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(BIG, device="cuda", generator=generator).to(torch.bfloat16)


@pytest.mark.parametrize("offset", [0, 2**31 + 5])
def test_triton_equals_reference_on_a_2_31_element_bfloat16_tensor(triton_kernel, offset):
    actual = _big_bf16(0)
    expected = actual.clone()
    triton_kernel.add_noise(actual, bases(1)[0], 0.37, offset)
    TorchKernel(1 << 26).add_noise(expected, bases(1)[0], 0.37, offset)
    assert same_bits(actual, expected)
    update = adamezo_update(3, True)
    triton_kernel.fused_update(actual, bases(3), update, offset)
    TorchKernel(1 << 26).fused_update(expected, bases(3), update, offset)
    assert same_bits(actual, expected)
    del expected
    # z itself around index 2³¹, against the CPU definition.
    start = 2**31 - 3000
    zeros = torch.zeros(BIG, device="cuda", dtype=torch.bfloat16)
    triton_kernel.add_noise(zeros, bases(1)[0], 1.0, offset)
    want = normal(bases(1)[0], 7000, offset + start).to(torch.bfloat16)
    assert same_bits(zeros[start : start + 7000].cpu(), want)


def test_triton_passes_make_the_host_wait_for_nothing(triton_kernel):
    params = [torch.randn(n, device="cuda") for n in (4099, 70_001, 5, 300_000)]
    update = adamezo_update(5, True)
    for p in params:  # compile first: compilation may synchronise
        triton_kernel.add_noise(p, bases(1)[0], 1e-3)
        triton_kernel.fused_update(p, bases(5), update)
    torch.cuda.synchronize()
    total = DeferredSum()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for p in params:
            triton_kernel.add_noise(p, bases(1)[0], 1e-3)
        for p in params:
            total.add(triton_kernel.fused_update_deferred(p, bases(5), update))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert total.value() > 0


def test_triton_launches_on_the_tensors_device_not_the_current_one(triton_kernel):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    expected = torch.randn(70_001)
    actual = expected.to("cuda:1")
    with torch.cuda.device(0):
        triton_kernel.add_noise(actual, bases(1)[0], 0.37, 3)
        triton_kernel.fused_update(actual, bases(3), adamezo_update(3, True), 3)
    TorchKernel(1000).add_noise(expected, bases(1)[0], 0.37, 3)
    TorchKernel(1000).fused_update(expected, bases(3), adamezo_update(3, True), 3)
    assert same_bits(actual.cpu(), expected)
