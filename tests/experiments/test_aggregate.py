"""Results over seeds: the test metric, values per seed, the claim rule for paired differences
and the comparison with the seeds' spread."""

import pytest

from adamezo.experiments.aggregate import (
    by_seed,
    claim,
    mean_std,
    metric_on_test,
    paired,
    reached,
    summary,
    within_spread,
)


def test_the_metric_on_test_is_accuracy_else_f1_else_none():
    assert metric_on_test({"test": {"test_f1": 0.4, "test_accuracy": 0.7}}) == ("accuracy", 0.7)
    assert metric_on_test({"test": {"test_f1": 0.4}}) == ("f1", 0.4)
    assert metric_on_test({"dev": {"dev_accuracy": 0.7}}) is None


def _record(optimizer, seed, test, tags=("main",)):
    return {
        "task": "sst2",
        "optimizer": optimizer,
        "seed": seed,
        "lr": 1e-3,
        "lr_schedule": "constant",
        "budget": 300,
        "tags": list(tags),
        "metrics": {"test": {"test_accuracy": test}},
    }


def test_by_seed_gathers_a_value_per_seed_in_seed_order():
    records = [_record("mezo", 2, 0.72), _record("mezo", 0, 0.70), _record("mezo", 1, 0.71)]
    entry = by_seed(records, "main")["sst2"]["mezo"]
    assert entry["seeds"] == [0, 1, 2] and entry["test"] == [0.70, 0.71, 0.72]
    assert (entry["metric"], entry["lr"], entry["forward_passes"]) == ("accuracy", 1e-3, 300)


def test_by_seed_leaves_out_other_tables_and_untested_cells():
    untested = _record("mezo", 1, 0.7) | {"metrics": {"dev": {}}}
    other = _record("mezo", 2, 0.7, tags=("lr",))
    table = by_seed([_record("mezo", 0, 0.7), untested, other], "main")
    assert table["sst2"]["mezo"]["seeds"] == [0]


def test_a_zero_shot_entry_has_no_lr():
    entry = by_seed([_record("zero-shot", 0, 0.5)], "main")["sst2"]["zero-shot"]
    assert entry["lr"] is None and entry["lr_schedule"] is None


def test_claim_needs_three_seeds_one_sign_and_a_mean_beyond_two_standard_errors():
    assert claim([0.10, 0.11, 0.11]) == 1
    assert claim([-0.10, -0.11, -0.11]) == -1
    assert claim([0.10, 0.11]) == 0  # too few seeds
    assert claim([0.10, -0.10, 0.01]) == 0  # signs disagree
    assert claim([0.01, 0.01, 0.30]) == 0  # one sign, but the mean is within 2 SE (0.19)
    assert claim([0.02, 0.02, 0.02]) == 1  # no spread at all: any consistent gap


def test_paired_differences_pair_by_seed_and_give_the_verdict():
    def table(ada, mezo, mezo_seeds=(0, 1, 2)):
        return {
            "sst2": {
                "adamezo": {"seeds": [0, 1, 2], "test": ada},
                "mezo": {"seeds": list(mezo_seeds), "test": mezo},
            }
        }

    clear = paired(table([0.80, 0.81, 0.82], [0.70, 0.70, 0.71]))["sst2"]
    assert clear["verdict"] == "adamezo higher"
    assert clear["differences"] == pytest.approx([0.10, 0.11, 0.11])
    assert paired(table([0.80, 0.70, 0.75], [0.70, 0.80, 0.74]))["sst2"]["verdict"] == "no claim"
    lower = paired(table([0.60, 0.61, 0.62], [0.70, 0.70, 0.71]))["sst2"]
    assert lower["verdict"] == "mezo higher"
    shifted = paired(table([0.80, 0.81, 0.82], [0.70, 0.70], mezo_seeds=(1, 2)))["sst2"]
    assert shifted["seeds"] == [1, 2] and shifted["verdict"] == "no claim"


def test_paired_leaves_out_a_seed_either_method_has_no_test_metric_for():
    table = {
        "sst2": {
            "fzoo": {"seeds": [0, 1, 2], "test": [0.80, None, 0.82]},
            "mezo": {"seeds": [0, 1, 2], "test": [0.70, 0.70, None]},
        }
    }
    entry = paired(table, "fzoo", "mezo")["sst2"]
    assert entry["seeds"] == [0]
    assert entry["differences"] == pytest.approx([0.10])


def test_within_spread_compares_the_mean_difference_with_the_larger_std():
    base = summary([0.80, 0.81, 0.82])
    near, far = summary([0.80, 0.81, 0.83]), summary([0.5, 0.5, 0.5])
    within_spread(near, base, "float32")
    within_spread(far, base, "float32")
    assert near["within_seed_spread"] is True
    assert near["difference_to_float32"] == pytest.approx(1 / 300)
    assert far["within_seed_spread"] is False
    lone = summary([0.5])
    within_spread(lone, summary([0.6]), "float32")
    assert "within_seed_spread" not in lone  # no std on either side: nothing to compare


def test_summary_and_mean_std_leave_out_missing_values():
    assert summary([1.0, None, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert mean_std([0.6, None]) == "0.600"
    assert mean_std([0.7, 0.9]) == "0.800 (0.141)"
    assert mean_std([None]) == "-"


def test_reached_is_the_first_point_at_or_below_the_target():
    curve = [(0, 0.9), (100, 0.6), (200, 0.5), (300, 0.4)]
    assert reached(curve, 0.5) == 200
    assert reached(curve, 0.1) is None
