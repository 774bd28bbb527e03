"""LOZO and LOZO-M: rank-r directions U Vᵀ per matrix, V kept for ν steps, momentum in a factor."""

import pytest
import torch

import adamezo
from adamezo.noise import normal, query_seed, step_seed, stream_base
from adamezo.optim.lozo import RIGHT_FACTOR_QUERY
from adamezo.replay import replay, step_record
from tests.zo_reference import MU, RecordingClosure, loss_of, params_of, snapshot

SHAPES = [(7,), (6, 5), (4, 2, 3)]
SEED = 3


def left(step, key, rows, rank):
    base = stream_base(step_seed(SEED, step), key)
    return normal(base, rows * rank).double().view(rows, rank)


def right(basis, key, cols, rank):
    base = stream_base(query_seed(step_seed(SEED, basis), RIGHT_FACTOR_QUERY), key)
    return normal(base, cols * rank).double().view(cols, rank)


class Reference:
    """LOZO / LOZO-M of docs/algorithms.md §11 in float64, state kept here."""

    def __init__(self, rank, interval, beta, lr, weight_decay):
        self.rank, self.interval, self.beta = rank, interval, beta
        self.lr, self.weight_decay = lr, weight_decay
        self.momentum, self.basis = {}, None

    def direction(self, step, key, theta):
        if theta.dim() < 2:
            return normal(stream_base(step_seed(SEED, step), key), theta.numel()).double()
        rows, cols = theta.shape[0], theta.numel() // theta.shape[0]
        u = left(step, key, rows, self.rank)
        return u @ right(step // self.interval, key, cols, self.rank).T

    def __call__(self, step, before, p):
        basis, out = step // self.interval, []
        for key, theta in enumerate(before):
            u_t = self.direction(step, key, theta).reshape(theta.shape[0], -1)
            u_t = self._momentum(step, key, theta, p, basis) if self.beta else p * u_t
            flat = theta.reshape(u_t.shape)
            out.append((flat - self.lr * (u_t + self.weight_decay * flat)).view(theta.shape))
        self.basis = basis
        return out

    def _momentum(self, step, key, theta, p, basis):
        beta = self.beta
        if theta.dim() < 2:
            g = p * self.direction(step, key, theta).reshape(theta.shape[0], -1)
            m = self.momentum.get(key)
            m = g if m is None else beta * m + (1 - beta) * g
            self.momentum[key] = m
            return m
        rows, cols = theta.shape[0], theta.numel() // theta.shape[0]
        u, v = left(step, key, rows, self.rank), right(basis, key, cols, self.rank)
        m = self.momentum.get(key)
        if m is None:
            m = p * u
        else:
            if basis != self.basis:
                m = m @ right(self.basis, key, cols, self.rank).T @ v / cols
            m = beta * m + (1 - beta) * p * u
        self.momentum[key] = m
        return m @ v.T


@pytest.mark.parametrize(
    ("dtype", "perturbation", "tolerance"),
    [
        (torch.float64, "exact", 1e-11),
        (torch.float64, "in_place", 1e-9),
        (torch.float32, "exact", 1e-4),
        (torch.float32, "in_place", 1e-4),
    ],
)
@pytest.mark.parametrize("beta", [0.0, 0.9])
@pytest.mark.parametrize("rank", [1, 3])
def test_each_update_equals_the_float64_formula(dtype, perturbation, tolerance, beta, rank):
    params = params_of(SHAPES, dtype)
    opt = adamezo.LOZO(
        params,
        lr=0.01,
        rank=rank,
        lazy_interval=2,
        momentum=beta,
        weight_decay=0.1,
        seed=SEED,
        perturbation=perturbation,
    )
    reference = Reference(rank, 2, beta, 0.01, 0.1)
    for step in range(5):  # V changes at steps 2 and 4
        before = snapshot(params)
        opt.step(lambda: loss_of(params))
        plus, minus = opt.last_losses
        expected = reference(step, before, (plus - minus) / (2 * opt.perturbation_scale))
        for actual, want, b in zip(params, expected, before, strict=True):
            assert (actual.double() - want).norm() / (want - b).norm() < tolerance
        # Set θ to the reference so float32 steps do not drift apart.
        with torch.no_grad():
            for p, want in zip(params, expected, strict=True):
                p.copy_(want)


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_an_update_of_a_matrix_has_rank_at_most_r(beta):
    weight = torch.nn.Parameter(torch.randn(12, 9, dtype=torch.float64))
    opt = adamezo.LOZO([weight], lr=0.5, rank=2, lazy_interval=2, momentum=beta)
    for _ in range(5):
        before = weight.detach().clone()
        opt.step(lambda: (weight - 1).pow(2).sum() + weight.sin().sum())
        singular = torch.linalg.svdvals(weight.detach() - before)
        assert singular[2] <= 1e-10 * singular[0]
        assert singular[1] > 1e-6 * singular[0]


def test_the_passes_move_a_matrix_along_mu_u_v_transpose():
    params = params_of([(6, 5)], torch.float64)
    closure = RecordingClosure(params)
    before = snapshot(params)
    adamezo.LOZO(params, rank=2, seed=SEED, perturbation_scale=MU).step(closure)
    direction = left(0, 0, 6, 2) @ right(0, 0, 5, 2).T
    torch.testing.assert_close(closure.seen[0][0], before[0] + MU * direction, rtol=0, atol=1e-15)
    torch.testing.assert_close(closure.seen[1][0], before[0] - MU * direction, rtol=0, atol=1e-15)


def test_lozo_m_keeps_an_m_by_r_factor_whose_saved_rank_wins_on_load():
    params = params_of(SHAPES, torch.float32)
    opt = adamezo.LOZO(params, rank=3, momentum=0.9, lazy_interval=2)
    for _ in range(3):
        opt.step(lambda: loss_of(params))
    shapes = [tuple(opt.state[p]["momentum"].shape) for p in params]
    assert shapes == [(7,), (6, 3), (4, 3)]
    state = opt.state_dict()
    other = adamezo.LOZO(params_of(SHAPES, torch.float32), rank=2, momentum=0.9)
    other.load_state_dict(state)
    assert other.rank == 3
    state["state"][1]["momentum"] = torch.zeros(6, 2)
    fresh = adamezo.LOZO(params_of(SHAPES, torch.float32), rank=2, momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        fresh.load_state_dict(state)
    assert fresh.rank == 2  # a refused state changes nothing


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_replay_from_the_logged_losses_is_bitwise(dtype, beta):
    params = params_of(SHAPES, dtype, seed=2)
    base = [p.detach().clone() for p in params]
    options = dict(lr=0.01, rank=2, lazy_interval=2, momentum=beta, seed=9)
    opt = adamezo.LOZO(params, **options)
    records = []
    for _ in range(6):
        opt.step(lambda: loss_of(params))
        records.append(step_record(opt))
    fresh = [torch.nn.Parameter(b.clone()) for b in base]
    replay(adamezo.LOZO(fresh, **options), records)
    assert all(torch.equal(a, b) for a, b in zip(params, fresh, strict=True))


@pytest.mark.parametrize("bad_pass", [0, 1])
def test_a_nan_loss_leaves_weights_and_momentum(bad_pass):
    params = params_of(SHAPES, torch.float32)
    opt = adamezo.LOZO(params, momentum=0.9, perturbation="exact")
    opt.step(lambda: loss_of(params))
    before = snapshot(params)
    momentum = [opt.state[p]["momentum"].clone() for p in params]
    calls = []

    def closure():
        calls.append(1)
        return loss_of(params) * (float("nan") if len(calls) - 1 == bad_pass else 1.0)

    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.step(closure)
    assert all(torch.equal(p.double(), b) for p, b in zip(params, before, strict=True))
    assert all(torch.equal(opt.state[p]["momentum"], m) for p, m in zip(params, momentum))


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("rank", 0, ValueError),
        ("lazy_interval", 0, ValueError),
        ("momentum", 1.0, ValueError),
        ("momentum", -0.1, ValueError),
        ("rank", 1.5, TypeError),
    ],
)
def test_bad_options_are_refused_naming_the_argument(option, value, error):
    with pytest.raises(error, match=option):
        adamezo.LOZO(params_of(SHAPES, torch.float32), **{option: value})


def test_the_registry_builds_lozo_m_with_the_papers_momentum():
    from adamezo.optim.registry import optimizer_entry

    opt = optimizer_entry("lozo-m").build(params_of(SHAPES, torch.float32), lr=1e-3)
    assert isinstance(opt, adamezo.LOZO) and opt.momentum == 0.9
    assert optimizer_entry("lozo").build(params_of(SHAPES, torch.float32), lr=1e-3).momentum == 0
