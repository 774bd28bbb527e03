"""Failures in the middle of a step lose nothing; the same seed gives the same weights."""

import copy
import signal
import warnings

import pytest
import torch

import adamezo
from adamezo.kernels.reference import TorchKernel
from tests.zo_reference import OPTIMIZERS, build, loss_of, make_params, snapshot


class FailingClosure:
    """Returns the loss, except on call number ``fail_at`` (0-based), where it raises."""

    def __init__(self, params, fail_at, error):
        self.params, self.fail_at, self.error, self.calls = params, fail_at, error, 0

    def __call__(self):
        call, self.calls = self.calls, self.calls + 1
        torch.rand(1)  # consume random state, as dropout would
        if call == self.fail_at:
            raise self.error
        return loss_of(self.params)


def assert_restored(params, before, dtype=torch.float64):
    # The restore θ + μz − μz is exact up to one rounding per pass.
    tolerance = 4 * torch.finfo(dtype).eps * max(float(b.abs().max()) for b in before)
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach().double(), b, rtol=0, atol=tolerance)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"]
)
def test_an_exception_in_any_pass_restores_weights_state_and_rng(name, error):
    passes = len(build(name, make_params()).passes)
    for fail_at in range(passes):
        params = make_params()
        opt = build(name, params)
        opt.step(lambda params=params: loss_of(params))  # so there is state to protect
        before, state = snapshot(params), copy.deepcopy(opt.state_dict())
        rng = torch.get_rng_state()
        with pytest.raises(type(error)):
            opt.step(FailingClosure(params, fail_at, error))
        assert_restored(params, before)
        assert torch.equal(torch.get_rng_state(), rng)
        after = opt.state_dict()
        assert after["zo"] == state["zo"]
        for key, buffers in state["state"].items():
            for name_, value in buffers.items():
                assert torch.equal(after["state"][key][name_], value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_loss_skips_the_step_by_default(bad):
    params = make_params()
    opt = adamezo.AdaMeZO(params)
    opt.step(lambda: loss_of(params))
    before, history = snapshot(params), opt.history
    calls = []

    def closure():
        calls.append(1)
        return loss_of(params) * (bad if len(calls) == 2 else 1.0)

    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.step(closure)
    assert_restored(params, before)
    assert opt.history == history
    assert (opt.skipped_steps, opt.num_updates, opt.num_steps) == (1, 1, 2)


def test_non_finite_losses_are_warned_about_once_and_all_counted():
    params = make_params()
    opt = adamezo.MeZO(params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            opt.step(lambda: torch.tensor(float("nan")))
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert opt.skipped_steps == 3


def test_a_skipped_step_draws_a_fresh_direction_next_time():
    params = make_params()
    opt = adamezo.MeZO(params)
    seen = []

    def closure():
        seen.append(snapshot(params))
        return torch.tensor(float("nan")) if len(seen) <= 2 else loss_of(params)

    with pytest.warns(RuntimeWarning):
        opt.step(closure)
    opt.step(closure)
    assert not torch.equal(seen[0][0], seen[2][0])


def test_nonfinite_raise_restores_weights_then_raises():
    params = make_params()
    opt = adamezo.MeZO(params, nonfinite="raise")
    before = snapshot(params)
    with pytest.raises(adamezo.NonFiniteLossError, match="restored"):
        opt.step(lambda: torch.tensor(float("nan")))
    assert_restored(params, before)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_seed_gives_bitwise_identical_weights(name):
    runs = []
    for _ in range(2):
        params = make_params(dtype=torch.float32)
        opt = build(name, params, seed=11)
        for _ in range(5):
            opt.step(lambda params=params: loss_of(params))
        runs.append(params)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_different_seeds_give_different_weights():
    runs = []
    for seed in (0, 1):
        params = make_params()
        opt = adamezo.AdaMeZO(params, seed=seed)
        opt.step(lambda params=params: loss_of(params))
        runs.append(params)
    assert not torch.equal(runs[0][0], runs[1][0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_parameters_train(dtype):
    torch.manual_seed(0)
    target = torch.randn(64)
    param = torch.nn.Parameter(torch.zeros(64, dtype=dtype))
    opt = adamezo.AdaMeZO([param], lr=2e-2, perturbation_scale=1e-2)

    def closure():
        return (param.float() - target).square().mean()

    start = closure().item()
    for _ in range(300):
        opt.step(closure)
    assert param.dtype == dtype
    assert closure().item() < 0.5 * start


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_restore_round_off_in_low_precision_is_within_two_ulps(dtype):
    """The documented cost of restoring in place: θ + μz − 2μz + μz is rounded three times."""
    torch.manual_seed(0)
    values = torch.randn(4096).to(dtype)
    param = torch.nn.Parameter(values.clone())
    adamezo.MeZO([param], lr=0.0).step(lambda: param.float().sum())
    ulp = torch.finfo(dtype).eps * values.float().abs().clamp_min(1e-3) * 2
    assert ((param.float() - values.float()).abs() <= ulp).all()


def test_mixed_dtype_parameters_in_one_optimizer():
    params = [
        torch.nn.Parameter(torch.ones(5, dtype=d))
        for d in (torch.float32, torch.bfloat16, torch.float16, torch.float64)
    ]
    opt = adamezo.AdaMeZO(params, lr=1e-2)
    for _ in range(3):
        opt.step(lambda: sum(p.double().square().sum() for p in params))
    assert [p.dtype for p in params] == [
        torch.float32,
        torch.bfloat16,
        torch.float16,
        torch.float64,
    ]
    assert all(torch.isfinite(p).all() for p in params)


# ------------------------------------------- failures outside the closure: between tensors, ctrl-c

KERNEL_OPTIMIZERS = ["MeZO", "AdaMeZO", "MEAZO", "MeZOSwitch"]
"""The optimizers whose perturbation and update both run through the kernel."""


class TrippingKernel(TorchKernel):
    """The plain-torch kernel, except that call number ``at`` (0-based) of ``method`` first runs
    ``trip``: raise an error, or send this process a SIGINT as a ctrl-c would."""

    def __init__(self, method, at, trip):
        super().__init__()
        self.method, self.at, self.trip, self.calls = method, at, trip, 0

    def _count(self, method):
        if method == self.method:
            call, self.calls = self.calls, self.calls + 1
            if call == self.at:
                self.trip()

    def add_noise(self, *args, **kwargs):
        self._count("add_noise")
        return super().add_noise(*args, **kwargs)

    def fused_update_deferred(self, *args, **kwargs):
        # The optimizers call the deferred form (fused_update goes through it too).
        self._count("fused_update")
        return super().fused_update_deferred(*args, **kwargs)


def fail():
    raise MemoryError("out of memory")


def ctrl_c():
    signal.raise_signal(signal.SIGINT)


@pytest.fixture(autouse=True)
def ctrl_c_interrupts():
    """SIGINT raises KeyboardInterrupt, as in a terminal, however pytest was started: a job a
    non-interactive shell puts in the background inherits SIGINT ignored (as CI may run it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def stepped(name, kernel=None):
    """Parameters and an optimizer after one ordinary step, so there is state to protect."""
    params = make_params()
    opt = build(name, params, **({"kernel": kernel} if kernel else {}))
    opt.step(lambda: loss_of(params))
    return params, opt


@pytest.mark.parametrize("name", KERNEL_OPTIMIZERS)
@pytest.mark.parametrize("trip", [fail, ctrl_c], ids=["error", "ctrl-c"])
def test_a_failure_while_perturbing_restores_every_tensor(name, trip):
    tensors = len(make_params())
    # A step moves each tensor to +μz, then each to −μz: trip before each of these calls in the
    # second step (the first step's calls pass).
    for at in range(2 * tensors):
        kernel = TrippingKernel("add_noise", 2 * tensors + at, trip)
        params, opt = stepped(name, kernel)
        before, state = snapshot(params), copy.deepcopy(opt.state_dict())
        with pytest.raises((MemoryError, KeyboardInterrupt)):
            opt.step(lambda params=params: loss_of(params))
        assert_restored(params, before)
        assert opt.state_dict()["zo"] == state["zo"]


@pytest.mark.parametrize("name", KERNEL_OPTIMIZERS)
def test_a_failure_before_the_update_writes_anything_leaves_weights_and_state(name):
    params, opt = stepped(name, TrippingKernel("fused_update", len(make_params()), fail))
    before, state = snapshot(params), copy.deepcopy(opt.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was half-done, so nothing to warn about
        with pytest.raises(MemoryError):
            opt.step(lambda: loss_of(params))
    assert_restored(params, before)
    assert opt.state_dict()["zo"] == state["zo"]


@pytest.mark.parametrize("name", KERNEL_OPTIMIZERS)
def test_a_failure_between_tensors_of_the_update_restores_the_rest_and_says_so(name):
    tensors = len(make_params())
    params, opt = stepped(name, TrippingKernel("fused_update", tensors + 1, fail))
    before, state = snapshot(params), copy.deepcopy(opt.state_dict())
    warning = f"rewriting 1 of {tensors} trainable tensors"
    with pytest.warns(RuntimeWarning, match=warning), pytest.raises(MemoryError):
        opt.step(lambda: loss_of(params))
    assert not torch.equal(params[0].detach(), before[0])  # updated before the failure
    assert_restored(params[1:], before[1:])
    assert opt.state_dict()["zo"] == state["zo"]


@pytest.mark.parametrize("name", KERNEL_OPTIMIZERS)
def test_ctrl_c_during_the_update_lets_the_step_finish_then_interrupts(name):
    tensors = len(make_params())
    params, opt = stepped(name, TrippingKernel("fused_update", tensors, ctrl_c))
    reference_params, reference = stepped(name)
    reference.step(lambda: loss_of(reference_params))
    with pytest.raises(KeyboardInterrupt):
        opt.step(lambda: loss_of(params))
    for p, q in zip(params, reference_params):
        assert torch.equal(p, q)
    assert opt.state_dict()["zo"] == reference.state_dict()["zo"]


def test_an_error_in_the_update_rule_leaves_weights_and_state_as_they_were():
    params = make_params()
    calls = []

    def schedule(t):  # asked once before the passes and once by the update
        calls.append(t)
        if len(calls) == 4:
            raise ArithmeticError("schedule failed")
        return 0.01

    opt = adamezo.MeZOSwitch(params, schedule, lr=1e-2)
    opt.step(lambda: loss_of(params))
    before, state = snapshot(params), copy.deepcopy(opt.state_dict())
    with pytest.raises(ArithmeticError):
        opt.step(lambda: loss_of(params))
    assert_restored(params, before)
    assert opt.state_dict()["zo"] == state["zo"]
