"""Short runs on a tiny random model equal, bit for bit, the golden copies made before the
fine-tuning package was restructured (tests/finetune/golden_runs.py makes them)."""

import json
import math

import pytest

from adamezo.finetune.config import ADDED_SETTINGS
from tests.finetune.golden_runs import (
    CASES,
    GOLDEN,
    environment,
    log_records,
    run_case,
    without_timing,
)


def golden(name, key):
    text = (GOLDEN / name / f"{key}.json").read_text()
    return json.loads(text)


def close(a, b, rel=1e-4):
    """Equal structure, numbers within ``rel``: for a machine whose float arithmetic differs."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(close, a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_short_run_reproduces_its_golden_log_metrics_and_weights(tmp_path, name):
    out = run_case(name, tmp_path)
    # Settings added after the golden copies were made hold the value an older run meant.
    config = golden(name, "config")
    later = {k: v for k, v in ADDED_SETTINGS.items() if k not in config}
    assert out["config"] == {**config, **later}
    expected_log = log_records((GOLDEN / name / "log.jsonl").read_text())
    got_log = log_records(out["log"])
    expected_metrics = without_timing(golden(name, "metrics"))
    got_metrics = without_timing(out["metrics"])
    expected_weights = golden(name, "weights")
    if environment() == json.loads((GOLDEN / "environment.json").read_text()):
        assert got_log == expected_log
        assert got_metrics == expected_metrics
        assert out["weights"] == expected_weights
    else:  # another torch or CPU: float rounding may differ, the run must not
        assert close(got_log, expected_log)
        assert close(got_metrics, expected_metrics)
        assert close(out["weights"]["tensors"], expected_weights["tensors"])


def test_the_golden_comparisons_see_a_changed_loss():
    expected = log_records((GOLDEN / "adamezo-full" / "log.jsonl").read_text())
    one_bit, one_percent = ([dict(r) for r in expected] for _ in range(2))
    index = next(i for i, r in enumerate(expected) if r["type"] == "train")
    one_bit[index]["loss"] = math.nextafter(expected[index]["loss"], math.inf)
    one_percent[index]["loss"] = expected[index]["loss"] * 1.01
    assert one_bit != expected  # the bitwise comparison
    assert close(one_bit, expected) and not close(one_percent, expected)  # the tolerant one
