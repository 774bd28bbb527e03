"""FZOO: a clean pass, N one-sided Rademacher queries, the step divided by the losses' spread."""

import math

import pytest
import torch

import adamezo
from adamezo.noise import normal, query_seed, rademacher, step_seed, stream_base
from adamezo.replay import replay, step_record
from tests.zo_reference import MU, RecordingClosure, loss_of, make_params, params_of, snapshot

SHAPES = [(7,), (3, 5), (4, 2, 3)]


def signs(seed, step, query, key, numel):
    base = stream_base(query_seed(step_seed(seed, step), query), key)
    return rademacher(base, numel).double()


def reference(before, losses, seed, step, lr, weight_decay):
    """θ − η (Σ_j (ℓ_j − ℓ⁰)/(N σ) r_j + λ θ) in float64, σ the population std of ℓ_1 … ℓ_N."""
    clean, queried = losses[0], losses[1:]
    n = len(queried)
    mean = sum(queried) / n
    sigma = math.sqrt(sum((q - mean) ** 2 for q in queried) / n)
    out = []
    for key, theta in enumerate(before):
        u = sum(
            (q - clean) / (n * sigma) * signs(seed, step, j, key, theta.numel())
            for j, q in enumerate(queried)
        ).view(theta.shape)
        out.append(theta - lr * (u + weight_decay * theta))
    return out


@pytest.mark.parametrize(
    ("dtype", "perturbation", "tolerance"),
    [
        (torch.float64, "exact", 1e-12),
        (torch.float64, "in_place", 1e-9),
        (torch.float32, "exact", 1e-5),
        (torch.float32, "in_place", 1e-4),
    ],
)
@pytest.mark.parametrize("queries", [2, 5])
def test_each_update_equals_the_float64_formula(dtype, perturbation, tolerance, queries):
    params = params_of(SHAPES, dtype)
    opt = adamezo.FZOO(
        params, lr=0.05, queries=queries, weight_decay=0.1, seed=3, perturbation=perturbation
    )
    for step in range(4):
        before = snapshot(params)
        opt.step(lambda: loss_of(params))
        expected = reference(before, opt.last_losses, 3, step, 0.05, 0.1)
        for actual, want, b in zip(params, expected, before, strict=True):
            err = (actual.double() - want).norm() / (want - b).norm()
            assert err < tolerance


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_a_half_precision_update_is_the_formula_rounded_once(dtype):
    params = params_of(SHAPES, dtype)
    opt = adamezo.FZOO(params, lr=0.05, queries=4, seed=1, perturbation="exact")
    before = snapshot(params)
    opt.step(lambda: loss_of(params))
    expected = reference(before, opt.last_losses, 1, 0, 0.05, 0.0)
    for actual, want in zip(params, expected, strict=True):
        # round(t − lr·u) with t, u exact in float32: within half an ulp of the float64 value,
        # plus float32 rounding of the update.
        ulp = torch.finfo(dtype).eps * want.abs().clamp_min(torch.finfo(dtype).tiny)
        assert bool(((actual.double() - want).abs() <= ulp).all())


def test_the_passes_are_theta_then_one_plus_mu_r_per_query():
    params = make_params()
    closure = RecordingClosure(params)
    before = snapshot(params)
    opt = adamezo.FZOO(params, queries=3, perturbation_scale=MU, perturbation="exact")
    opt.step(closure)
    assert len(closure.seen) == 4 == len(opt.passes)
    assert all(torch.equal(a, b) for a, b in zip(closure.seen[0], before, strict=True))
    directions = []
    for seen in closure.seen[1:]:
        r = torch.cat([((s - b) / MU).flatten() for s, b in zip(seen, before, strict=True)])
        assert torch.allclose(r.abs(), torch.ones_like(r), atol=1e-9)
        directions.append(r.sign())
    assert not torch.equal(directions[0], directions[1])
    assert not torch.equal(directions[1], directions[2])


def test_equal_query_losses_give_no_step():
    params = make_params(dtype=torch.float32)
    before = snapshot(params)
    opt = adamezo.FZOO(params, lr=1.0, perturbation="exact")
    for _ in range(3):
        opt.step(lambda: torch.tensor(2.0))
    assert all(torch.equal(p.double(), b) for p, b in zip(params, before, strict=True))
    assert opt.num_updates == 3


@pytest.mark.parametrize("perturbation", ["exact", "in_place"])
@pytest.mark.parametrize("bad_pass", [0, 1, 4, 8])
def test_a_nan_loss_in_any_pass_leaves_the_weights(perturbation, bad_pass):
    params = make_params(dtype=torch.float32)
    opt = adamezo.FZOO(params, perturbation=perturbation)
    opt.step(lambda: loss_of(params))
    before = snapshot(params)
    calls = []

    def closure():
        calls.append(1)
        return loss_of(params) * (math.nan if len(calls) - 1 == bad_pass else 1.0)

    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.step(closure)
    if perturbation == "exact":
        assert all(torch.equal(p.double(), b) for p, b in zip(params, before, strict=True))
    else:  # θ + μr − μr: one rounding per move
        for p, b in zip(params, before, strict=True):
            torch.testing.assert_close(p.double(), b, rtol=0, atol=4e-7 * float(b.abs().max()))
    assert (opt.skipped_steps, opt.num_updates) == (1, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_replay_from_the_logged_losses_is_bitwise(dtype):
    params = params_of(SHAPES, dtype, seed=2)
    base = [p.detach().clone() for p in params]
    opt = adamezo.FZOO(params, lr=0.02, queries=4, seed=9)
    records = []
    for i in range(6):
        for group in opt.param_groups:
            group["lr"] = 0.02 / (i + 1)
        opt.step(lambda: loss_of(params))
        records.append(step_record(opt))
        assert len(records[-1]["losses"]) == 5
    fresh = [torch.nn.Parameter(b.clone()) for b in base]
    replay(adamezo.FZOO(fresh, lr=0.02, queries=4, seed=9), records)
    assert all(torch.equal(a, b) for a, b in zip(params, fresh, strict=True))


@pytest.mark.parametrize(("value", "error"), [(1, ValueError), (0, ValueError), (2.5, TypeError)])
def test_queries_below_two_are_refused_naming_the_argument(value, error):
    with pytest.raises(error, match="queries"):
        adamezo.FZOO(make_params(), queries=value)


def test_rademacher_noise_is_the_sign_of_the_gaussian_stream_and_balanced():
    base = stream_base(step_seed(5, 0), 1)
    values = rademacher(base, 1000, offset=37)
    assert torch.equal(values, torch.sign(normal(base, 1000, offset=37)))
    assert torch.equal(rademacher(base, 1037)[37:], values)
    assert set(values.tolist()) == {-1.0, 1.0}
    draws = rademacher(base, 1_000_000)
    assert abs(draws.mean().item()) < 5e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_the_compiled_rademacher_twin_equals_the_torch_passes_bitwise(dtype):
    pytest.importorskip("numba")
    from adamezo.kernels import FusedUpdate, TorchKernel, rademacher_twin
    from adamezo.kernels.numba_cpu import NumbaKernel

    compiled = rademacher_twin(NumbaKernel())
    reference = rademacher_twin(TorchKernel(chunk_size=1000))
    assert compiled.name == "numba-rademacher" and reference.name == "rademacher"
    theta = torch.randn(5003, generator=torch.Generator().manual_seed(0)).to(dtype)
    bases = [stream_base(step_seed(2, 0), k) for k in range(3)]
    a, b = theta.clone(), theta.clone()
    compiled.add_noise(a, bases[0], 0.01, offset=7)
    reference.add_noise(b, bases[0], 0.01, offset=7)
    assert torch.equal(a, b)
    update = FusedUpdate(
        restore=-0.01,
        m_coefs=(0.3, -0.2, 0.1),
        v_coefs=None,
        gain=1.0,
        eps=0.0,
        lr=0.05,
        weight_decay=0.01,
    )
    sq_a = compiled.fused_update(a, bases, update, offset=7)
    sq_b = reference.fused_update(b, bases, update, offset=7)
    assert torch.equal(a, b)
    assert sq_a == pytest.approx(sq_b, rel=1e-12)


def test_fzoo_gives_the_same_weights_with_the_compiled_and_the_torch_kernel():
    runs = []
    for kernel in ("numba", "torch"):
        params = params_of(SHAPES, torch.float32)
        opt = adamezo.FZOO(params, lr=0.05, queries=3, kernel=kernel)
        for _ in range(3):
            opt.step(lambda params=params: loss_of(params))
        runs.append(params)
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_query_zero_is_the_steps_own_seed():
    seed = step_seed(1, 4)
    assert query_seed(seed, 0) == seed
    assert len({query_seed(seed, j) for j in range(50)}) == 50
