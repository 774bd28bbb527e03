"""The Triton kernel computes exactly what the reference kernel computes.

On a CUDA machine these tests run the compiled programs on the GPU. Elsewhere they need Triton's
CPU interpreter, which must be switched on before Triton is first imported, so the suite runs
this file in a fresh process with ``TRITON_INTERPRET=1`` (see ``test_triton_kernel.py``); run
alone without that variable, it skips.
"""

from __future__ import annotations

import os

import pytest
import torch

from adamezo.kernels import TorchKernel
from adamezo.noise import normal
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
