"""benchmarks/direction_alignment.py: the linearised-loss probe's arithmetic; a tiny-model run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from tests.finetune.helpers import write_sst2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import direction_alignment as da


def _problem(sizes=((40, 30), (30,), (500,), (25, 20)), seed=0, vector_gain=1.0):
    """A linearised loss over tensors of ``sizes``, the 1-D tensors' gradient ``vector_gain``
    times as large per element as the matrices'."""
    generator = torch.Generator().manual_seed(seed)
    origin = [torch.randn(s, generator=generator) for s in sizes]
    gains = [vector_gain if len(s) == 1 else 1.0 for s in sizes]
    grads = [torch.randn(s, generator=generator) * k for s, k in zip(sizes, gains, strict=True)]
    classes = [da.tensor_class(f"t{i}", t) for i, t in enumerate(origin)]
    return da.LinearisedLoss(origin, grads, 1.5), classes


def _probe(name, directions, lr=1e-4, vector_gain=1.0, **options):
    loss, classes = _problem(vector_gain=vector_gain)
    before = [p.detach().clone() for p in loss.params]
    args = argparse.Namespace(lr=lr, seed=0, mu=1e-3, min_steps=2)
    return da.run_probe(da.Probe(name, options), loss, before, classes, args, directions)


def _theory(result, vector_gain=1.0):
    loss, classes = _problem(vector_gain=vector_gain)
    return da.theory(result, da.gradient_facts(loss, classes))


def test_a_step_along_minus_g_has_cosine_one_and_the_loss_falls_by_its_first_order_term():
    loss, classes = _problem()
    sgd = torch.optim.SGD(loss.params, lr=0.01)

    def closure():
        sgd.zero_grad()
        value = loss()
        value.backward()
        return value

    sgd.step(closure)
    step = da.alignment(da.split(loss, loss.origin, classes), loss.grad_sq)
    assert abs(step["cos"] - 1.0) < 1e-12
    assert abs(step["decrease"] - 0.01 * loss.grad_sq) < 1e-9 * loss.grad_sq
    with torch.no_grad():
        assert abs(float(loss()) - (1.5 - step["decrease"])) < 1e-9


def test_the_shares_split_the_update_by_tensor_class():
    loss, classes = _problem()
    assert classes == ["matrices", "vectors", "vectors", "matrices"]
    with torch.no_grad():
        loss.params[1].add_(1.0)  # only a 30-element vector moves
    parts = da.split(loss, loss.origin, classes)
    assert parts["sq"] == {"matrices": 0.0, "vectors": 30.0}
    assert parts["decrease"]["vectors"] == -float(loss.grads[1].sum())


def test_mezo_cosine_squared_is_one_over_d_and_fzoo_gains_about_its_queries():
    d = 40 * 30 + 30 + 500 + 25 * 20
    mezo = _probe("mezo", 300)
    assert (mezo["steps"], mezo["passes_per_step"]) == (300, 2)
    assert abs(mezo["cos_sq_mean"] * (d + 2) - 1.0) < 0.3
    fzoo = _probe("fzoo", 480, queries=8)
    assert (fzoo["steps"], fzoo["passes_per_step"]) == (60, 9)
    assert abs(fzoo["cos_sq_mean"] * d / 8 - 1.0) < 0.3
    assert _theory(fzoo) == 16 / 9


def test_lozo_matches_its_closed_form_which_weights_the_vectors_less_at_higher_rank():
    # The 1-D tensors hold most of ‖g‖² on a quarter of the elements, so the rank shows.
    low = _probe("lozo", 300, rank=1, lazy_interval=1, vector_gain=5.0)
    high = _probe("lozo", 300, rank=8, vector_gain=5.0)
    d = 40 * 30 + 30 + 500 + 25 * 20
    for result in (low, high):
        predicted = _theory(result, vector_gain=5.0)
        assert abs(result["cos_sq_mean"] * (d + 2) / predicted - 1.0) < 0.3
    assert _theory(high, 5.0) < 0.5 * _theory(low, 5.0)


def test_the_directions_do_not_depend_on_the_learning_rate():
    small, large = _probe("adamezo", 5, lr=1e-6), _probe("adamezo", 5, lr=1e-2)
    assert max(abs(a - b) for a, b in zip(small["cos"], large["cos"], strict=True)) < 1e-9
    ratios = zip(small["norm_over_lr"], large["norm_over_lr"], strict=True)
    assert max(abs(a / b - 1) for a, b in ratios) < 1e-9


def test_a_run_on_a_tiny_model_probes_every_setting(tiny_model_dir, tmp_path):
    data = write_sst2(tmp_path / "data", n_train=40)
    out = tmp_path / "out"
    sizes = [
        "--batch-size",
        "4",
        "--directions",
        "3",
        "--sweep-directions",
        "2",
        "--min-steps",
        "2",
    ]
    da.main(["--model", str(tiny_model_dir), "--data-dir", str(data), *sizes, "--out", str(out)])
    result = json.loads((out / "direction_alignment.json").read_text())
    rows = {r["label"]: r for r in result["probes"]}
    assert len(rows) == len(da.probes())
    assert all(v > 0 for r in rows.values() for v in r["per_pass_over_mezo"].values())
    assert rows["zo-muon (rank 8, queries 16)"]["passes_per_step"] == 17
    assert all(0 < r["cos_mean"] <= 1 for r in rows.values())
    assert "| lozo (rank 32, lazy_interval 1) |" in (out / "direction_alignment.md").read_text()
