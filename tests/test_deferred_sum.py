"""Σ(Δθ)² stays where the kernel left it until the step's end: one read per device per step."""

from __future__ import annotations

import pytest
import torch

import adamezo
from adamezo.kernels import DeferredSum, Kernel, TorchKernel

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


def _new_method_steps(name, kernel):
    from tests.zo_reference import build

    torch.manual_seed(0)
    params = [torch.randn(*shape, requires_grad=True) for shape in ((30, 7), (70,), (5,))]
    opt = build(name, params, lr=1e-2, kernel=kernel, seed=3, perturbation="in_place")
    for _ in range(3):
        opt.step(lambda: sum((p.double() ** 2).sum() for p in params))
    return params, opt.state_dict()["zo"]["last_update_norm"]


@pytest.mark.parametrize("name", ["FZOO", "LOZO", "LOZO-M", "ZOMuon"])
def test_the_new_methods_never_read_a_sum_per_tensor(name, monkeypatch):
    # The reading path (Kernel.fused_update) is refused: every update goes through the deferred
    # one. The one-dimensional tensors of LOZO and ZO-Muon use the watched kernel, whose sums
    # are read once per step (FZOO draws Rademacher signs with its own twin of the kernel, and
    # LOZO-M's vector momentum is plain torch); the weights and the norm equal the reference's.
    reference_params, reference_norm = _new_method_steps(name, TorchKernel(1000))

    def refuse(*args, **kwargs):
        raise AssertionError("a per-tensor read of the update's sum")

    monkeypatch.setattr(Kernel, "fused_update", refuse)
    EVENTS.clear()
    params, norm = _new_method_steps(name, _DeferringKernel(1000))
    if name in ("LOZO", "ZOMuon"):
        assert EVENTS == (["update"] * 2 + ["read"]) * 3
    assert norm == pytest.approx(reference_norm, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(params, reference_params, strict=True))
