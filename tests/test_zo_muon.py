"""ZO-Muon: one-sided queries in a column-orthonormal subspace P per matrix, the subspace
estimate orthogonalised by Newton-Schulz and lifted back by P."""

import pytest
import torch

import adamezo
from adamezo.noise import normal, query_seed, step_seed, stream_base
from adamezo.optim.base import TensorSlot
from adamezo.optim.zo_muon import PROJECTION_QUERY, orthogonalise
from adamezo.replay import replay, step_record
from tests.zo_reference import MU, RecordingClosure, loss_of, params_of, snapshot

SHAPES = [(7,), (6, 5), (4, 2, 3)]
SEED = 5


def projection(window, key, rows, rank):
    base = stream_base(query_seed(step_seed(SEED, window), PROJECTION_QUERY), key)
    q, r = torch.linalg.qr(normal(base, rows * rank).double().view(rows, rank))
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).double()


def newton_schulz(g):
    """Muon's quintic iteration, written out in float64."""
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / (x.norm() + 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
    return x.T if g.shape[0] > g.shape[1] else x


def noise(step, query, key, count):
    return normal(stream_base(query_seed(step_seed(SEED, step), query), key), count).double()


def reference(step, before, losses, rank, interval, lr, weight_decay, vector_scale):
    clean, queried = losses[0], losses[1:]
    q = len(queried)
    p = [(loss - clean) / MU for loss in queried]
    out = []
    for key, theta in enumerate(before):
        if theta.dim() < 2:
            u = sum(p[j] / q * noise(step, j, key, theta.numel()) for j in range(q))
            out.append(theta - lr * vector_scale * (u + weight_decay * theta))
            continue
        rows, cols = theta.shape[0], theta.numel() // theta.shape[0]
        r = min(rank, rows)
        big_p = projection(step // interval, key, rows, r)
        psis = [noise(step, j, key, cols * r).view(cols, r).T for j in range(q)]
        g = sum(p[j] / q * psis[j] for j in range(q))
        flat = theta.reshape(rows, cols)
        new = flat - lr * (big_p @ newton_schulz(g) + weight_decay * flat)
        out.append(new.view(theta.shape))
    return out


@pytest.mark.parametrize(
    ("dtype", "perturbation", "tolerance"),
    [
        (torch.float64, "exact", 1e-10),
        (torch.float64, "in_place", 1e-8),
        (torch.float32, "exact", 1e-4),
    ],
)
@pytest.mark.parametrize(("rank", "queries"), [(2, 1), (3, 4), (64, 2)])
def test_each_update_equals_the_float64_formula(dtype, perturbation, tolerance, rank, queries):
    params = params_of(SHAPES, dtype)
    settings = dict(lr=0.05, weight_decay=0.1, vector_lr_scale=0.5)
    opt = adamezo.ZOMuon(
        params,
        rank=rank,
        queries=queries,
        resample_interval=2,
        seed=SEED,
        perturbation_scale=MU,
        perturbation=perturbation,
        **settings,
    )
    for step in range(4):  # P redrawn at steps 2
        before = snapshot(params)
        opt.step(lambda: loss_of(params))
        expected = reference(step, before, opt.last_losses, rank, 2, 0.05, 0.1, 0.5)
        for actual, want, b in zip(params, expected, before, strict=True):
            assert (actual.double() - want).norm() / (want - b).norm() < tolerance
        with torch.no_grad():
            for p, want in zip(params, expected, strict=True):
                p.copy_(want)


def test_the_projection_is_column_orthonormal_and_kept_for_its_interval():
    params = params_of([(9, 4)], torch.float64)
    opt = adamezo.ZOMuon(params, rank=3, resample_interval=3, seed=SEED)
    slot = TensorSlot(0, params[0], params[0].detach(), opt.param_groups[0])
    first = opt.projection(slot, 0)
    torch.testing.assert_close(first.T @ first, torch.eye(3, dtype=torch.float64))
    assert torch.equal(opt.projection(slot, 2), first)
    assert not torch.equal(opt.projection(slot, 3), first)


def test_a_matrix_update_lies_in_the_span_of_p_with_rank_at_most_r():
    weight = torch.nn.Parameter(torch.randn(12, 9, dtype=torch.float64))
    opt = adamezo.ZOMuon([weight], lr=0.3, rank=2, queries=3, resample_interval=100)
    before = weight.detach().clone()
    opt.step(lambda: (weight - 1).pow(2).sum() + weight.sin().sum())
    delta = weight.detach() - before
    big_p = opt.projection(TensorSlot(0, weight, weight.detach(), opt.param_groups[0]), 0)
    torch.testing.assert_close(big_p @ (big_p.T @ delta), delta, rtol=0, atol=1e-12)
    singular = torch.linalg.svdvals(delta)
    assert singular[2] <= 1e-10 * singular[0]
    # Orthogonalised: the two singular values of the step are close to each other (Muon's
    # iteration leaves them in about [0.7, 1.2] · lr), unlike a raw gradient estimate's.
    assert 0.5 < float(singular[1] / singular[0]) <= 1.0


def test_the_passes_are_theta_then_mu_p_psi_per_query():
    params = params_of([(6, 5)], torch.float64)
    closure = RecordingClosure(params)
    before = snapshot(params)
    adamezo.ZOMuon(params, rank=2, queries=3, seed=SEED, perturbation_scale=MU).step(closure)
    assert len(closure.seen) == 4
    assert torch.equal(closure.seen[0][0], before[0])
    big_p = projection(0, 0, 6, 2)
    for j in range(3):
        direction = big_p @ noise(0, j, 0, 10).view(5, 2).T
        torch.testing.assert_close(closure.seen[1 + j][0], before[0] + MU * direction)


def test_orthogonalise_matches_the_float64_iteration_and_handles_tall_and_zero():
    g = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(orthogonalise(g), newton_schulz(g))
    torch.testing.assert_close(orthogonalise(g.T), newton_schulz(g.T))
    assert torch.equal(orthogonalise(torch.zeros(2, 4)), torch.zeros(2, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_replay_from_the_logged_losses_is_bitwise(dtype):
    params = params_of(SHAPES, dtype, seed=2)
    base = [p.detach().clone() for p in params]
    options = dict(lr=0.01, rank=2, queries=3, resample_interval=2, seed=9)
    opt = adamezo.ZOMuon(params, **options)
    records = []
    for _ in range(5):
        opt.step(lambda: loss_of(params))
        records.append(step_record(opt))
        assert len(records[-1]["losses"]) == 4
    fresh = [torch.nn.Parameter(b.clone()) for b in base]
    replay(adamezo.ZOMuon(fresh, **options), records)
    assert all(torch.equal(a, b) for a, b in zip(params, fresh, strict=True))


@pytest.mark.parametrize("bad_pass", [0, 2, 4])
@pytest.mark.parametrize("perturbation", ["exact", "in_place"])
def test_a_nan_loss_in_any_pass_leaves_the_weights(bad_pass, perturbation):
    params = params_of(SHAPES, torch.float64)
    opt = adamezo.ZOMuon(params, rank=2, perturbation=perturbation)
    opt.step(lambda: loss_of(params))
    before = snapshot(params)
    calls = []

    def closure():
        calls.append(1)
        return loss_of(params) * (float("nan") if len(calls) - 1 == bad_pass else 1.0)

    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.step(closure)
    for p, b in zip(params, before, strict=True):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=1e-15)
    assert (opt.skipped_steps, opt.num_updates) == (1, 1)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("rank", 0, ValueError),
        ("queries", 0, ValueError),
        ("resample_interval", 0, ValueError),
        ("vector_lr_scale", -1.0, ValueError),
        ("queries", 2.0, TypeError),
    ],
)
def test_bad_options_are_refused_naming_the_argument(option, value, error):
    with pytest.raises(error, match=option):
        adamezo.ZOMuon(params_of(SHAPES, torch.float32), **{option: value})
