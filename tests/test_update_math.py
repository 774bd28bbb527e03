"""Every optimizer against SPEC §1–4, written out in float64 in the test, to 1e-9 of the update.

The closure records θ at each pass, so z_t is recovered from what the model actually saw
(θ + μ z_t), and each step's expected θ_{t+1} is computed from θ_t with the SPEC formula.
"""

import math

import pytest
import torch

import adamezo
from tests.zo_reference import (
    MU,
    RecordingClosure,
    direction_from,
    loss_of,
    make_params,
    relative_error,
    snapshot,
    weights,
)

STEPS = 6
TOLERANCE = 1e-9


def check_against_reference(opt, params, reference, steps=STEPS, passes=2):
    """Run ``steps`` steps; after each, compare θ with ``reference(before, seen, p)``."""
    closure = RecordingClosure(params)
    for _ in range(steps):
        before = snapshot(params)
        first = len(closure.seen)
        opt.step(closure)
        assert len(closure.seen) - first == passes
        seen = closure.seen[first:]
        plus, minus = seen[-2], seen[-1]
        p = (loss_of(plus).item() - loss_of(minus).item()) / (2 * MU)
        expected = reference(before, seen, p)
        assert relative_error(snapshot(params), expected, before) < TOLERANCE


class SgdReference:
    def __init__(self, lrs, weight_decays=None):
        self.lrs = lrs
        self.weight_decays = weight_decays or [0.0] * len(lrs)

    def __call__(self, before, seen, p):
        z = direction_from(before, seen[0])
        return [
            b - lr * (p * zi + wd * b)
            for b, zi, lr, wd in zip(before, z, self.lrs, self.weight_decays, strict=True)
        ]


class AdaMeZOReference:
    """SPEC §3 with the history kept in the test: (z, p) pairs, newest first."""

    def __init__(
        self,
        lrs,
        betas,
        horizon,
        *,
        normalize=True,
        gain=1.0,
        eps=1e-8,
        weight_decays=None,
        warmup=0,
    ):
        self.lrs, self.betas, self.horizon = lrs, betas, horizon
        self.normalize, self.gain, self.eps, self.warmup = normalize, gain, eps, warmup
        self.weight_decays = weight_decays or [0.0] * len(lrs)
        self.history = []
        self.t = 0

    def __call__(self, before, seen, p):
        z = direction_from(before, seen[0])
        self.history = [(z, p), *self.history][: self.horizon]
        warming = self.t < self.warmup
        self.t += 1
        out = []
        for i, (b, lr, wd) in enumerate(zip(before, self.lrs, self.weight_decays, strict=True)):
            betas = self.betas[i] if isinstance(self.betas, list) else self.betas
            if warming:
                u = p * z[i]
            else:
                n = len(self.history)
                a = weights(betas[0], n, self.normalize)
                m = sum(a[k] * pk * zk[i] for k, (zk, pk) in enumerate(self.history))
                if betas[1] == 0:
                    u = self.gain * m
                else:
                    bw = weights(betas[1], n, self.normalize)
                    v = sum(bw[k] * (pk * zk[i]) ** 2 for k, (zk, pk) in enumerate(self.history))
                    u = self.gain * m / (v.sqrt() + self.eps)
            out.append(b - lr * (u + wd * b))
        return out


def test_mezo_matches_spec():
    params = make_params()
    opt = adamezo.MeZO(params, lr=1e-2, perturbation_scale=MU, seed=3)
    check_against_reference(opt, params, SgdReference([1e-2, 1e-2]))


def test_mezo_with_weight_decay_matches_spec():
    params = make_params()
    opt = adamezo.MeZO(params, lr=1e-2, weight_decay=0.5, perturbation_scale=MU)
    check_against_reference(opt, params, SgdReference([1e-2, 1e-2], [0.5, 0.5]))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"betas": (0.5, 0.8), "eps": 1e-3, "gain": 2.0},
        {"normalize": False},
        {"normalize": False, "betas": (0.9, 0.99), "gain": 3.0},
        {"betas": (1.0, 1.0)},
        {"betas": (0.7, 0.0)},
        {"betas": (0.7, 0.0), "normalize": False},
        {"weight_decay": 0.3},
        {"warmup_steps": 2},
    ],
    ids=[
        "defaults",
        "other-betas-eps-gain",
        "raw-weights",
        "raw-weights-gain",
        "beta-one-uniform",
        "momentum-only",
        "momentum-only-raw",
        "weight-decay",
        "warmup",
    ],
)
def test_adamezo_matches_spec(options):
    params = make_params()
    horizon = 3
    opt = adamezo.AdaMeZO(
        params, lr=1e-2, horizon=horizon, perturbation_scale=MU, seed=1, **options
    )
    reference = AdaMeZOReference(
        [1e-2, 1e-2],
        options.get("betas", (0.7, 0.9)),
        horizon,
        normalize=options.get("normalize", True),
        gain=options.get("gain", 1.0),
        eps=options.get("eps", 1e-8),
        weight_decays=[options.get("weight_decay", 0.0)] * 2,
        warmup=options.get("warmup_steps", 0),
    )
    check_against_reference(opt, params, reference, steps=7)


def test_adamezo_reference_preset_matches_spec():
    params = make_params()
    opt = adamezo.AdaMeZO(params, lr=1e-3, horizon=2, preset="reference", perturbation_scale=MU)
    reference = AdaMeZOReference(
        [1e-3, 1e-3], (0.7, 0.9), 2, normalize=False, gain=100.0, eps=1e-5, warmup=3
    )
    check_against_reference(opt, params, reference, steps=7)


def test_adamezo_per_group_hyperparameters_match_spec():
    params = make_params()
    opt = adamezo.AdaMeZO(
        [
            {"params": [params[0]], "lr": 1e-2, "weight_decay": 0.1},
            {"params": [params[1]], "lr": 3e-3, "betas": (0.5, 0.0)},
        ],
        lr=5e-3,
        horizon=3,
        perturbation_scale=MU,
    )
    reference = AdaMeZOReference(
        [1e-2, 3e-3], [(0.7, 0.9), (0.5, 0.0)], 3, weight_decays=[0.1, 0.0]
    )
    check_against_reference(opt, params, reference)


def test_adamezo_with_zero_betas_is_exactly_mezo():
    a, b = make_params(), make_params()
    ada = adamezo.AdaMeZO(a, lr=1e-2, betas=(0.0, 0.0), seed=4)
    mezo = adamezo.MeZO(b, lr=1e-2, seed=4)
    for _ in range(5):
        ada.step(lambda: loss_of(a))
        mezo.step(lambda: loss_of(b))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_explicit_arguments_win_over_the_reference_preset():
    opt = adamezo.AdaMeZO(make_params(), preset="reference", gain=3.0, warmup_steps=0)
    group = opt.param_groups[0]
    assert (group["gain"], group["eps"], group["normalize"]) == (3.0, 1e-5, False)
    assert opt.warmup_steps == 0
    assert adamezo.AdaMeZO(make_params(), preset="reference", horizon=4).warmup_steps == 5


@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_zo_adam_matches_spec(kernel):
    params = make_params()
    betas, eps, lr, wd = (0.8, 0.95), 1e-6, 1e-2, 0.05
    opt = adamezo.ZOAdam(
        params, lr=lr, betas=betas, eps=eps, weight_decay=wd, perturbation_scale=MU, kernel=kernel
    )
    state = {"m": None, "v": None, "t": 0}

    def reference(before, seen, p):
        z = direction_from(before, seen[0])
        g = [p * zi for zi in z]
        if state["m"] is None:
            state["m"] = [torch.zeros_like(gi) for gi in g]
            state["v"] = [torch.zeros_like(gi) for gi in g]
        state["m"] = [betas[0] * m + (1 - betas[0]) * gi for m, gi in zip(state["m"], g)]
        state["v"] = [betas[1] * v + (1 - betas[1]) * gi**2 for v, gi in zip(state["v"], g)]
        t = state["t"]
        state["t"] += 1
        out = []
        for b, m, v in zip(before, state["m"], state["v"], strict=True):
            m_hat, v_hat = m / (1 - betas[0] ** (t + 1)), v / (1 - betas[1] ** (t + 1))
            out.append(b - lr * (m_hat / (v_hat.sqrt() + eps) + wd * b))
        return out

    check_against_reference(opt, params, reference)


@pytest.mark.parametrize("wd", [0.0, 0.2], ids=["plain", "weight-decay"])
def test_meazo_matches_spec(wd):
    params = make_params()
    beta, eps, lr = 0.9, 1e-6, 1e-2
    opt = adamezo.MEAZO(params, lr=lr, beta=beta, eps=eps, weight_decay=wd, perturbation_scale=MU)
    state = {"v": 0.0, "t": 0}

    def reference(before, seen, p):
        z = direction_from(before, seen[0])
        state["v"] = beta * state["v"] + (1 - beta) * p * p
        v_hat = state["v"] / (1 - beta ** (state["t"] + 1))
        state["t"] += 1
        return [b - lr * (p * zi / (math.sqrt(v_hat) + eps) + wd * b) for b, zi in zip(before, z)]

    check_against_reference(opt, params, reference)


@pytest.mark.parametrize("kernel", ["torch", "numba"])
@pytest.mark.parametrize("wd", [0.0, 0.2], ids=["plain", "weight-decay"])
def test_hizoo_matches_spec_and_evaluates_at_theta_then_preconditioned_pair(wd, kernel):
    params = make_params()
    alpha, lr = 0.3, 1e-2
    opt = adamezo.HiZOO(
        params,
        lr=lr,
        hessian_smoothing=alpha,
        weight_decay=wd,
        perturbation_scale=MU,
        kernel=kernel,
    )
    hessian = [torch.ones_like(b) for b in snapshot(params)]

    def reference(before, seen, p):
        center, plus, minus = seen
        assert all(torch.equal(c, b) for c, b in zip(center, before))
        # plus = θ + μ H^{-1/2} z, so z = (plus − θ) √H / μ; minus mirrors plus.
        z = [(pl - b) * h.sqrt() / MU for pl, b, h in zip(plus, before, hessian)]
        for mi, b, zi, h in zip(minus, before, z, hessian):
            torch.testing.assert_close(mi, b - MU * zi / h.sqrt(), rtol=0, atol=1e-12)
        l0, lp, lm = (loss_of(x).item() for x in seen)
        curvature = abs(lp + lm - 2 * l0) / (2 * MU * MU)
        out = []
        for i, (b, zi) in enumerate(zip(before, z)):
            estimate = curvature * hessian[i] * zi * zi
            hessian[i] = (1 - alpha) * hessian[i] + alpha * estimate
            out.append(b - lr * (p * zi / hessian[i].sqrt() + wd * b))
        return out

    check_against_reference(opt, params, reference, passes=3)


@pytest.mark.parametrize("wd", [0.0, 0.2], ids=["plain", "weight-decay"])
def test_mezo_switch_moves_by_the_scheduled_norm_along_sign_p_z(wd):
    params = make_params()
    schedule = [0.01, 0.02, 0.005, 0.03, 0.01, 0.02]
    lr = 1e-2
    opt = adamezo.MeZOSwitch(params, schedule, lr=lr, weight_decay=wd, perturbation_scale=MU)
    state = {"t": 0}

    def reference(before, seen, p):
        z = direction_from(before, seen[0])
        z_norm = math.sqrt(sum(float(zi.square().sum()) for zi in z))
        target = schedule[state["t"]]
        state["t"] += 1
        # The schedule sets the norm of the direction step η·u_t; decay is added on top (SPEC §1).
        return [
            b - math.copysign(1.0, p) * target * zi / z_norm - lr * wd * b
            for b, zi in zip(before, z)
        ]

    check_against_reference(opt, params, reference)
    if not wd:
        assert opt.last_update_norm == pytest.approx(schedule[STEPS - 1], rel=1e-9)


def test_mezo_switch_refuses_a_step_past_its_schedule_before_any_forward_pass():
    params = make_params()
    opt = adamezo.MeZOSwitch(params, [0.01])
    closure = RecordingClosure(params)
    opt.step(closure)
    with pytest.raises(ValueError, match="norm_schedule has 1 entries"):
        opt.step(closure)
    assert len(closure.seen) == 2
