"""``kernel="auto"`` picks the compiled kernel where it applies, and any choice can be forced."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import adamezo
from adamezo.kernels import TorchKernel, available_kernels, resolve_kernel
from tests.kernel_cases import same_bits

pytest.importorskip("adamezo.kernels.numba_cpu")


def test_auto_picks_numba_for_cpu_float_tensors():
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        assert resolve_kernel("auto", torch.zeros(3, dtype=dtype), 1024).name == "numba"


def test_auto_falls_back_to_torch_where_numba_does_not_apply():
    odd_dtype = torch.zeros(3, dtype=torch.float8_e5m2)
    assert resolve_kernel("auto", odd_dtype, 1024).name == "torch"


def test_numba_and_torch_are_available_here():
    assert {"numba", "torch"} <= set(available_kernels())


@pytest.mark.parametrize("name", ["torch", "numba"])
def test_named_kernel_overrides_auto(name):
    optimizer = adamezo.MeZO([nn.Parameter(torch.zeros(3))], kernel=name)
    assert optimizer._kernel(torch.zeros(3)).name == name


def test_kernel_instance_overrides_auto():
    kernel = TorchKernel(16)
    optimizer = adamezo.MeZO([nn.Parameter(torch.zeros(3))], kernel=kernel)
    assert optimizer._kernel(torch.zeros(3)) is kernel


def test_unknown_kernel_name_is_rejected():
    with pytest.raises(ValueError, match="kernel must be"):
        adamezo.MeZO([nn.Parameter(torch.zeros(3))], kernel="cuda-magic")


def _train(optimizer_class, kernel: str, steps: int = 6, **options) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 37), nn.Tanh(), nn.Linear(37, 1))
    inputs, targets = torch.randn(32, 13), torch.randn(32, 1)
    groups = [
        {"params": [model[0].weight, model[2].weight], "weight_decay": 0.1},
        {"params": [model[0].bias, model[2].bias]},
    ]
    optimizer = optimizer_class(groups, lr=1e-2, seed=5, kernel=kernel, **options)
    for _ in range(steps):
        optimizer.step(lambda: nn.functional.mse_loss(model(inputs), targets))
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("optimizer_class", "options"),
    [(adamezo.MeZO, {}), (adamezo.AdaMeZO, {"horizon": 3})],
    ids=["MeZO", "AdaMeZO"],
)
def test_training_with_numba_gives_the_same_weights_as_torch(optimizer_class, options):
    with_numba = _train(optimizer_class, "numba", **options)
    with_torch = _train(optimizer_class, "torch", **options)
    assert all(same_bits(a, b) for a, b in zip(with_numba, with_torch, strict=True))


def test_auto_prefers_numba_over_the_triton_interpreter_for_cpu_tensors():
    pytest.importorskip("triton")
    code = (
        "import torch; from adamezo.kernels import available_kernels, resolve_kernel; "
        "assert 'triton' in available_kernels(); "
        "print(resolve_kernel('auto', torch.zeros(8), 1024).name)"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numba"
