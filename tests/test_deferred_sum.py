"""Σ(Δθ)² stays where the kernel left it until the step's end: one read per device per step."""

from __future__ import annotations

import torch

import adamezo
from adamezo.kernels import DeferredSum, TorchKernel

EVENTS: list[str] = []


class _Watched(torch.Tensor):
    """A 0-dim tensor that records when the host reads it."""

    def __float__(self) -> float:
        EVENTS.append("read")
        return super().__float__()


class _DeferringKernel(TorchKernel):
    """The reference kernel, returning its sums as device-style tensors, not floats."""

    name = "deferring"

    def _fused_update(self, tensor, bases, update, offset, dtype):
        EVENTS.append("update")
        total = super()._fused_update(tensor, bases, update, offset, dtype)
        return torch.tensor(total, dtype=torch.float64).as_subclass(_Watched)


def test_deferred_sum_adds_left_to_right_and_reads_each_device_once():
    values = [0.1, 1e-17, 3.0, 1e16, -1e16]
    total = DeferredSum()
    for v in values:
        total.add(torch.tensor(v, dtype=torch.float64).as_subclass(_Watched))
    EVENTS.clear()
    expected = 0.0
    for v in values:
        expected += v
    assert total.value() == expected
    assert EVENTS == ["read"]
    mixed = DeferredSum()
    mixed.add(0.5)
    mixed.add(torch.tensor(0.25, dtype=torch.float64))
    assert mixed.value() == 0.75


def _model_step(kernel):
    torch.manual_seed(0)
    params = [torch.randn(n, requires_grad=True) for n in (300, 70, 5)]
    opt = adamezo.AdaMeZO(params, lr=1e-2, kernel=kernel, seed=3)
    for _ in range(3):
        opt.step(lambda: sum((p.double() ** 2).sum() for p in params))
    return params, opt.state_dict()["zo"]["last_update_norm"]


def test_a_step_reads_the_update_norm_once_after_every_tensor_is_updated():
    EVENTS.clear()
    params, norm = _model_step(_DeferringKernel(1000))
    assert EVENTS == (["update"] * 3 + ["read"]) * 3
    reference_params, reference_norm = _model_step(TorchKernel(1000))
    assert norm == reference_norm
    assert all(torch.equal(a, b) for a, b in zip(params, reference_params))
