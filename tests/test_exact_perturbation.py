"""Exact perturbation (the default): the closure sees round(θ + cμz) from the unperturbed θ, the
weights after a step are round(θ − η u) from the unperturbed θ, and θ is never written during the
passes, so steps at lr 0 leave it bitwise unchanged in every dtype."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import adamezo
from adamezo import perturbation as exact
from adamezo.noise import normal, step_seed, stream_base
from tests.zo_reference import OPTIMIZERS, build

HALF = [torch.bfloat16, torch.float16]


class TiedNet(nn.Module):
    """Embedding and output share one weight; the output layer is applied by the parent with
    F.linear (a parameter used outside its own module's forward), and a bare parameter is read
    through ``.data``."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(40, 16)
        self.hidden = nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 16))
        self.out = nn.Linear(16, 40, bias=False)
        self.out.weight = self.embed.weight
        self.scale = nn.Parameter(torch.ones(16))
        self.to(dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.embed(ids)) * self.scale.data
        return F.linear(h, self.out.weight).float().logsumexp(-1).mean()


def weights_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def bits(tensors: list[torch.Tensor]) -> list[bytes]:
    return [bytes(t.detach().contiguous().view(-1).view(torch.uint8).tolist()) for t in tensors]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_a_thousand_adamezo_steps_at_lr_0_leave_half_precision_weights_bitwise_unchanged(dtype):
    model = TiedNet(dtype)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    before = bits(list(model.parameters()))
    opt = adamezo.AdaMeZO(model.parameters(), lr=0.0, weight_decay=0.1)
    for _ in range(1000):
        opt.step(lambda: model(ids))
    assert bits(list(model.parameters())) == before
    assert opt.metrics()["updates"] == 1000


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [torch.float32, *HALF], ids=str)
def test_every_optimizer_at_lr_0_leaves_the_weights_bitwise_unchanged(name, dtype):
    model = TiedNet(dtype)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    before = bits(list(model.parameters()))
    opt = build(name, model.parameters(), lr=0.0, perturbation="exact")
    for _ in range(20):
        opt.step(lambda: model(ids))
    assert bits(list(model.parameters())) == before


@pytest.mark.parametrize(
    ("dtype", "unchanged"), [(torch.bfloat16, True), (torch.float16, True), (torch.float32, False)]
)
def test_auto_is_exact_for_half_precision_and_in_place_for_float32(dtype, unchanged):
    model = TiedNet(dtype)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    before = bits(list(model.parameters()))
    opt = adamezo.AdaMeZO(model.parameters(), lr=0.0)
    for _ in range(20):
        opt.step(lambda: model(ids))
    assert (bits(list(model.parameters())) == before) is unchanged


def test_the_in_place_path_still_drifts_which_is_why_half_precision_is_exact():
    model = TiedNet(torch.bfloat16)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    before = bits(list(model.parameters()))
    opt = adamezo.AdaMeZO(model.parameters(), lr=0.0, perturbation="in_place")
    for _ in range(20):
        opt.step(lambda: model(ids))
    assert bits(list(model.parameters())) != before


def perturbed_reference(theta: torch.Tensor, z: torch.Tensor, scale: float) -> torch.Tensor:
    """round(θ + scale·z) as the kernels compute it: in float32, scale rounded once."""
    scale32 = torch.tensor(scale, dtype=torch.float64).float()
    return (theta.float() + z * scale32).to(theta.dtype)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_each_step_matches_a_float64_reference_from_the_unperturbed_weights(dtype):
    """MeZO with weight decay: the closure sees round(θ ± μz) exactly, and θ_{t+1} is within
    one rounding of θ_t − η (p z + λ θ_t) computed in float64 from the same θ_t."""
    torch.manual_seed(0)
    params = [nn.Parameter((torch.randn(33) * 0.05).to(dtype)), nn.Parameter(torch.randn(4, 5))]
    params[1].data = params[1].data.to(dtype)
    lr, wd, mu, seed = 1e-3, 0.5, 1e-2, 7
    opt = adamezo.MeZO(params, lr=lr, weight_decay=wd, perturbation_scale=mu, seed=seed)
    seen = []

    def closure():
        seen.append([p.detach().clone() for p in params])
        return sum((torch.sin(p.float() * 3) + p.float() ** 2).sum() for p in params)

    for step in range(20):
        before = [p.detach().clone() for p in params]
        seen.clear()
        opt.step(closure)
        g = opt.metrics()["projected_grad"]
        for key, (theta, after) in enumerate(zip(before, params, strict=True)):
            z = normal(stream_base(step_seed(seed, step), key), theta.numel(), 0, "cpu").view(
                theta.shape
            )
            assert torch.equal(seen[0][key], perturbed_reference(theta, z, mu))
            assert torch.equal(seen[1][key], perturbed_reference(theta, z, -mu))
            t64 = theta.double()
            expected = t64 - lr * (g * z.double() + wd * t64)
            ulp = torch.ldexp(
                torch.full_like(expected, torch.finfo(dtype).eps),
                torch.frexp(expected.to(dtype).double()).exponent - 1,
            ).clamp(min=torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps)
            error = (after.detach().double() - expected).abs()
            assert bool((error <= 0.5 * ulp * (1 + 2**-14) + 2**-22 * expected.abs()).all()), (
                step,
                key,
                float((error / ulp).max()),
            )


def first_pass_loss(mode: str, dtype: torch.dtype) -> float:
    model = TiedNet(dtype)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    losses = []
    opt = adamezo.MeZO(model.parameters(), lr=1e-2, perturbation=mode)
    opt.step(lambda: losses.append(model(ids)) or losses[-1])
    return float(losses[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_the_first_pass_sees_what_the_in_place_path_sees_tied_and_outside_uses_included(dtype):
    """round(θ + μz) is the same value both ways, so if any use of a parameter (the tied
    weight's second use after the cache dropped it, F.linear in the parent, ``.data``) missed its
    perturbation, the losses would differ."""
    assert first_pass_loss("exact", dtype) == first_pass_loss("in_place", dtype)


def test_a_parameter_missed_by_the_substitution_would_change_the_loss():
    """The check above has teeth: the loss does depend on the tied weight's perturbation."""
    model = TiedNet(torch.float32)
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        clean = float(model(ids))
    opt = adamezo.MeZO([model.embed.weight], lr=1e-2, perturbation="exact")
    losses = []
    opt.step(lambda: losses.append(model(ids)) or losses[-1])
    assert float(losses[0]) != clean


def test_plain_tensors_in_a_closure_are_substituted_too():
    theta = torch.randn(10, requires_grad=True)
    before = theta.detach().clone()
    seen = []
    opt = adamezo.MeZO([theta], lr=0.0, perturbation_scale=0.5, perturbation="exact")
    opt.step(lambda: seen.append(theta.detach().clone()) or (theta**2).sum())
    assert not torch.equal(seen[0], before) and not torch.equal(seen[1], before)
    torch.testing.assert_close(seen[0] - before, before - seen[1])
    assert torch.equal(theta.detach(), before)


def test_at_most_the_cache_size_of_perturbed_copies_are_kept(monkeypatch):
    most = []
    original = exact.ExactPerturbation.perturbed

    def perturbed(self, index):
        copy = original(self, index)
        most.append(len(self._cache))
        return copy

    monkeypatch.setattr(exact.ExactPerturbation, "perturbed", perturbed)
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(6)])
    opt = adamezo.MeZO(model.parameters(), lr=1e-3, perturbation="exact")
    opt.step(lambda: model(torch.ones(2, 8)).sum())
    assert len(most) >= 2 * 12 and max(most) <= exact.CACHE_SIZE


def test_metadata_reads_make_no_copy(monkeypatch):
    made = []
    original = exact.ExactPerturbation.perturbed
    monkeypatch.setattr(
        exact.ExactPerturbation, "perturbed", lambda self, i: made.append(i) or original(self, i)
    )
    theta = torch.randn(3, 4, requires_grad=True)
    opt = adamezo.MeZO([theta], lr=1e-3, perturbation="exact")
    opt.step(lambda: torch.tensor(float(theta.shape[0] + theta.size(1) + theta.dim())))
    assert made == []


def test_same_seed_gives_the_same_half_precision_weights_bit_for_bit():
    def run():
        model = TiedNet(torch.bfloat16)
        ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
        opt = adamezo.AdaMeZO(model.parameters(), lr=1e-3, seed=3)
        for _ in range(10):
            opt.step(lambda: model(ids))
        return bits(list(model.parameters()))

    assert run() == run()


def test_perturbation_must_be_a_known_choice():
    with pytest.raises(ValueError, match="perturbation"):
        adamezo.MeZO([torch.zeros(2, requires_grad=True)], perturbation="copy")


@pytest.mark.parametrize("mode", ["lora", "prefix"])
def test_peft_adapters_see_the_same_first_pass_as_in_place(mode):
    """LoRA and prefix weights reach the forward through PEFT's own modules and caches."""
    pytest.importorskip("peft")
    from adamezo.finetune.tuning import prepare_tuning
    from tests.finetune.helpers import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    ids = torch.tensor([tokenizer("the film was great").input_ids])
    losses = {}
    for perturbation in ("exact", "in_place"):
        torch.manual_seed(0)
        tuned = prepare_tuning(tiny_llama(tokenizer, dtype=torch.float32), mode)
        seen = []

        def closure(tuned=tuned, seen=seen):
            seen.append(tuned.wrapped(input_ids=ids, labels=ids).loss)
            return seen[-1]

        with torch.no_grad():
            clean = float(tuned.wrapped(input_ids=ids, labels=ids).loss)
        params = tuned.trainable_parameters()
        adamezo.MeZO(params, lr=1e-2, perturbation=perturbation, perturbation_scale=1e-2).step(
            closure
        )
        losses[perturbation] = float(seen[0])
        assert losses[perturbation] != clean  # the adapters' perturbation reached the loss
    assert losses["exact"] == losses["in_place"]


def test_a_half_precision_run_resumed_from_state_dict_ends_bitwise_identical():
    ids = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))

    def run(split: bool) -> list[bytes]:
        model = TiedNet(torch.bfloat16)
        opt = adamezo.AdaMeZO(model.parameters(), lr=1e-3, seed=3, horizon=4)
        for _ in range(3):
            opt.step(lambda: model(ids))
        if split:
            state = {k: v.clone() for k, v in model.state_dict().items()}
            saved = opt.state_dict()
            model = TiedNet(torch.bfloat16)
            model.load_state_dict(state)
            opt = adamezo.AdaMeZO(model.parameters(), lr=1e-3, seed=99)
            opt.load_state_dict(saved)
        for _ in range(3):
            opt.step(lambda: model(ids))
        return bits(list(model.parameters()))

    assert run(split=True) == run(split=False)
