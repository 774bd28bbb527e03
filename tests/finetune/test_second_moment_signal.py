"""benchmarks/second_moment_signal.py: its direction statistics, and a run on a tiny model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from tests.finetune.helpers import write_sst2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import second_moment_signal as sms


def test_chunked_cosine_matches_a_double_precision_cosine(monkeypatch):
    monkeypatch.setattr(sms, "CHUNK", 7)
    a, b = torch.randn(50), torch.randn(50)
    expected = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0)
    assert abs(sms.cosine(a, b) - float(expected)) < 1e-12


def test_a_uniform_second_moment_makes_the_adaptive_step_the_flat_one():
    g, m = torch.randn(1000), torch.randn(1000)
    signal = sms.coordinate_signal(g, m, torch.full((1000,), 4.0))
    assert abs(signal["cos_adaptive_flat"] - 1.0) < 1e-6
    assert abs(signal["cos_adaptive_g"] - signal["cos_flat_g"]) < 1e-6
    assert math.isnan(signal["corr_v_g2"])  # v has no spread to correlate


def test_a_second_moment_that_follows_g_squared_correlates_with_it():
    g = torch.randn(1000)
    signal = sms.coordinate_signal(g, g.clone(), g.square() * 3)
    assert signal["corr_v_g2"] > 0.999
    assert signal["cos_adaptive_g"] < signal["cos_flat_g"]  # sign(g) is further from g than g


def test_expected_share_is_two_g_squared_over_the_squared_norm():
    share = sms.expected_share(torch.tensor([3.0, 4.0]))
    assert abs(share["max"] - 2 * 16 / 25) < 1e-6
    assert share["fraction_over_1pct"] == 1.0


def test_a_run_on_a_tiny_model_estimates_projections_that_match_the_true_gradient(
    tiny_model_dir, tmp_path
):
    data = write_sst2(tmp_path / "data", n_train=40)
    model, out = str(tiny_model_dir), str(tmp_path / "out")
    sizes = ["--batch-size", "4", "--directions", "4", "--horizons", "2", "4"]
    sms.main(["--model", model, "--data-dir", str(data), *sizes, "--out", out])
    result = json.loads((tmp_path / "out" / "second_moment_signal.json").read_text())
    assert result["corr_p_g_dot_z"] > 0.99
    assert [len(result["windows"][k]) for k in ("2", "4")] == [2, 1]
    assert (tmp_path / "out" / "second_moment_signal.md").exists()
