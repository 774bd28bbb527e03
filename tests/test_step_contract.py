"""What ``step(closure)`` promises every caller, for every optimizer of the family."""

import math

import pytest
import torch

import adamezo
from adamezo.optim.context import StepContext
from tests.zo_reference import (
    MU,
    OPTIMIZERS,
    RecordingClosure,
    build,
    loss_of,
    make_params,
    snapshot,
)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_closure_runs_once_per_pass_without_grad(name):
    params = make_params()
    closure = RecordingClosure(params)
    build(name, params).step(closure)
    assert len(closure.seen) == {"HiZOO": 3, "FZOO": 9, "ZOMuon": 5}.get(name, 2)
    assert closure.grad_enabled == [False] * len(closure.seen)


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n not in ("FZOO", "ZOMuon")])
def test_step_returns_the_mean_of_the_two_perturbed_losses(name):
    params = make_params()
    closure = RecordingClosure(params)
    loss = build(name, params).step(closure)
    plus, minus = closure.seen[-2], closure.seen[-1]
    assert isinstance(loss, torch.Tensor)
    assert loss.item() == pytest.approx((loss_of(plus) + loss_of(minus)).item() / 2, rel=1e-12)


@pytest.mark.parametrize("name", ["FZOO", "ZOMuon"])
def test_one_sided_methods_return_the_loss_of_their_clean_pass_at_theta(name):
    params = make_params()
    closure = RecordingClosure(params)
    before = snapshot(params)
    loss = build(name, params).step(closure)
    assert all(torch.equal(a, b) for a, b in zip(closure.seen[0], before, strict=True))
    assert loss.item() == loss_of(before).item()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_pass_sees_the_same_random_state(name):
    params = make_params()
    draws = []

    def closure():
        draws.append(torch.rand(3))
        return loss_of(params)

    build(name, params).step(closure)
    assert all(torch.equal(d, draws[0]) for d in draws)


def test_after_a_step_the_random_state_is_as_after_one_closure_call():
    params = make_params()

    def closure():
        torch.rand(5)
        return loss_of(params)

    torch.manual_seed(0)
    adamezo.MeZO(params).step(closure)
    after_step = torch.rand(1)
    torch.manual_seed(0)
    torch.rand(5)
    assert torch.equal(torch.rand(1), after_step)


def test_dropout_masks_match_across_passes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 64), torch.nn.Dropout(0.5), torch.nn.Linear(64, 1)
    )
    x = torch.randn(4, 8)
    masks = []
    model[1].register_forward_hook(lambda m, i, o: masks.append(o.eq(0)))
    adamezo.AdaMeZO(model.parameters()).step(lambda: model(x).square().mean())
    assert torch.equal(masks[0], masks[1])
    assert masks[0].any()


def test_a_float_returned_by_the_closure_is_accepted():
    params = make_params()
    loss = adamezo.MeZO(params).step(lambda: float(loss_of(params)))
    assert isinstance(loss, torch.Tensor) and math.isfinite(loss.item())


def test_step_without_closure_raises_a_clear_error():
    with pytest.raises(TypeError, match="needs a closure"):
        adamezo.AdaMeZO(make_params()).step()


def test_a_non_scalar_loss_raises_and_leaves_weights_alone():
    params = make_params()
    before = snapshot(params)
    with pytest.raises(ValueError, match="scalar loss"):
        adamezo.MeZO(params).step(lambda: params[0] * 2)
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=1e-15)


def test_a_loss_of_the_wrong_type_raises_a_type_error():
    with pytest.raises(TypeError, match="scalar loss"):
        adamezo.MeZO(make_params()).step(lambda: "0.5")


def test_frozen_tensors_are_untouched_and_others_get_the_same_noise():
    free, frozen = make_params(), make_params()
    frozen[0].requires_grad_(False)
    frozen_before = frozen[0].detach().clone()
    adamezo.MeZO(free, lr=1e-2).step(lambda: loss_of(free))
    closure = RecordingClosure(frozen)
    adamezo.MeZO(frozen, lr=1e-2).step(closure)
    assert torch.equal(frozen[0], frozen_before)
    # Tensor 1 keeps its noise key: its perturbation is the same as in the all-trainable run.
    seen_free = RecordingClosure(make_params())
    params = seen_free.params
    adamezo.MeZO(params, lr=1e-2).step(seen_free)
    torch.testing.assert_close(closure.seen[0][1], seen_free.seen[0][1], rtol=0, atol=0)


def test_lr_scheduler_changes_the_step_size_per_group():
    params_a, params_b = make_params(), make_params()
    opt = adamezo.MeZO(params_a, lr=1e-2, seed=1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    manual = adamezo.MeZO(params_b, lr=1e-2, seed=1)
    for step in range(5):
        opt.step(lambda: loss_of(params_a))
        scheduler.step()
        manual.step(lambda: loss_of(params_b))
        manual.param_groups[0]["lr"] = 1e-2 * 0.1 ** ((step + 1) // 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


SCHEDULERS = {
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (t + 1)),
    "MultiplicativeLR": lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, lambda t: 0.9),
    "MultiStepLR": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [1, 3]),
    "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8),
    "LinearLR": lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.2, total_iters=4),
    "PolynomialLR": lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=5),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5),
    "CosineAnnealingWarmRestarts": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=2
    ),
    # These two cycle momentum by default; a zeroth-order optimizer has none to cycle (nor has
    # torch.optim.Adagrad), so they are used as with any optimizer without momentum.
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=1e-2, total_steps=5, cycle_momentum=False
    ),
    "CyclicLR": lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, 1e-3, 1e-2, step_size_up=2, cycle_momentum=False
    ),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_lr_scheduler_sets_the_same_rates_as_on_a_torch_optimizer(name, scheduler):
    params = make_params()
    opt = build(name, params)
    torch_opt = torch.optim.Adagrad(make_params(), lr=opt.defaults["lr"])
    ours, theirs = SCHEDULERS[scheduler](opt), SCHEDULERS[scheduler](torch_opt)
    for _ in range(4):
        opt.step(lambda: loss_of(params))
        torch_opt.step()  # no gradients: it only marks the step, as the scheduler expects
        ours.step()
        theirs.step()
        assert opt.param_groups[0]["lr"] == torch_opt.param_groups[0]["lr"]


def test_metrics_report_projected_grad_update_norm_and_forward_passes():
    params = make_params()
    closure = RecordingClosure(params)
    opt = adamezo.AdaMeZO(params, lr=1e-2, perturbation_scale=MU)
    before = snapshot(params)
    opt.step(closure)
    after = snapshot(params)
    plus, minus = closure.seen
    p = (loss_of(plus).item() - loss_of(minus).item()) / (2 * MU)
    norm = math.sqrt(sum(float((a - b).square().sum()) for a, b in zip(after, before)))
    metrics = opt.metrics()
    assert metrics["projected_grad"] == pytest.approx(p, rel=1e-12)
    assert metrics["update_norm"] == pytest.approx(norm, rel=1e-9)
    assert (metrics["forward_passes"], metrics["steps"], metrics["updates"]) == (2, 1, 1)
    assert metrics["skipped_steps"] == 0


def test_hizoo_counts_three_forward_passes_per_step():
    params = make_params()
    opt = adamezo.HiZOO(params)
    for _ in range(2):
        opt.step(lambda: loss_of(params))
    assert opt.forward_passes == 6


def test_the_update_restores_along_the_query_theta_sits_on_first():
    def context(query):
        return StepContext(0, 0, 0.0, (), -1.0, (), None, query=query)  # type: ignore[arg-type]

    assert context(2).restore_first(range(4)) == [2, 0, 1, 3]
    assert context(0).restore_first({0: 1.0, 1: 2.0}) == [0, 1]
    assert context(3).restore_first([3]) == [3]
