"""A cell's id (the name of its published directory: its format never changes), its cell.json
and the slices of a table."""

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from adamezo.experiments.cells import (
    ZERO_SHOT,
    Cell,
    Protocol,
    cell_from_json,
    cell_to_json,
    passes_per_step,
    selected,
)
from adamezo.experiments.store import all_known_cells, finished, remember
from adamezo.optim.registry import OPTIMIZERS

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "benchmarks" / "results" / "study"
MEZO = Cell("sst2", "mezo", budget=12, lr=1e-3, tags=("main",))
ADAMEZO = Cell("sst2", "adamezo", budget=12, lr=1e-3)


def published_cells():
    return sorted((PUBLISHED / "cells").glob("*/cell.json"))


@pytest.mark.skipif(not published_cells(), reason="no published study cells in this checkout")
def test_every_published_cell_keeps_its_id_and_a_finished_one_stays_finished():
    cells = all_known_cells(PUBLISHED)
    assert [c.id for c in cells] == [path.parent.name for path in published_cells()]
    done = {path.parent.name for path in (PUBLISHED / "cells").glob("*/metrics.json")}
    assert {c.id for c in cells if finished(PUBLISHED, c)} == done
    assert len(done) > 100


def test_id_names_each_setting_only_where_set_in_a_fixed_order():
    assert MEZO.id == "sst2-mezo-full-lr0.001-constant-fp12-s0"
    cell = Cell(
        **{"task": "trec", "optimizer": "adamezo", "budget": 300, "lr": 1e-5, "seed": 2},
        **{"lr_schedule": "linear", "tuning": "lora", "betas": (0.5, 0.99), "horizon": 20},
        **{"preset": "reference", "perturbation_scale": 1e-4, "eval_every": 6, "test": False},
        mixed_precision="bf16",
    )
    assert cell.id == (
        "trec-adamezo-lora-lr1e-05-linear-b0.5,0.99-K20-reference-mu0.0001-ev6-bf16-fp300-s2-notest"
    )


def test_a_zero_shot_id_names_only_task_and_seed():
    assert Cell("cb", ZERO_SHOT, 0, seed=1).id == "cb-zero-shot-s1"


def test_tags_and_follows_are_not_part_of_the_identity():
    other = Cell("sst2", "mezo", budget=12, lr=1e-3, tags=("betas",))
    assert other == MEZO and other.id == MEZO.id


def test_steps_split_the_budget_by_passes_per_step():
    assert Cell("sst2", "hizoo", 300, 1e-3).steps == 100
    assert Cell("sst2", "mezo", 300, 1e-3).steps == 150
    assert Cell("sst2", "fzoo", 300, 1e-3).steps == 33
    assert Cell("sst2", "zo-muon", 300, 1e-3).steps == 60


def test_passes_per_step_are_the_registrys():
    for name, entry in OPTIMIZERS.items():
        assert passes_per_step(name) == entry.passes_per_step
    assert passes_per_step(ZERO_SHOT) == 2
    with pytest.raises(ValueError, match="optimizer must be one of"):
        passes_per_step("fzo")


def test_cell_json_leaves_out_unset_optional_fields_and_reads_back():
    data = cell_to_json(MEZO)
    assert "preset" not in data and "mixed_precision" not in data and data["tags"] == ["main"]
    mixed = Cell("sst2", "adamezo", 12, 1e-3, betas=(0.9, 0.99), mixed_precision="bf16")
    assert cell_from_json(json.loads(json.dumps(cell_to_json(mixed)))) == mixed
    assert cell_from_json(cell_to_json(mixed)).betas == (0.9, 0.99)


def test_remember_joins_the_tags_of_every_table_and_leaves_an_unchanged_file(tmp_path):
    remember(MEZO, tmp_path)
    path = tmp_path / "cells" / MEZO.id / "cell.json"
    before = path.stat().st_mtime_ns
    remember(MEZO, tmp_path)
    assert path.stat().st_mtime_ns == before
    remember(Cell("sst2", "mezo", budget=12, lr=1e-3, tags=("betas",)), tmp_path)
    assert json.loads(path.read_text())["tags"] == ["betas", "main"]
    assert all_known_cells(tmp_path) == [MEZO]


def test_only_keeps_the_cells_matching_a_pattern_in_table_order():
    adamezo = Cell("sst2", "adamezo", budget=12, lr=1e-3)
    cells = [MEZO, adamezo, Cell("trec", "mezo", budget=12, lr=1e-3)]
    assert selected(cells, ["sst2-*"]) == [MEZO, adamezo]
    assert selected(cells, ["*-adamezo-*", "trec-*"]) == cells[1:]
    assert selected(cells, []) == cells


def test_workers_must_agree_on_the_protocol_but_device_and_data_dir():
    identity = Protocol(device="cuda", data_dir="/elsewhere").identity()
    assert identity == Protocol().identity()
    assert set(identity) == set(asdict(Protocol())) - {"device", "data_dir"}


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"task": 3}, TypeError, "task must be a str"),
        ({"task": ""}, ValueError, "task must be a non-empty str"),
        ({"optimizer": "adam"}, ValueError, "optimizer must be one of"),
        ({"budget": -1}, ValueError, "budget must be an int >= 0"),
        ({"budget": 12.0}, TypeError, "budget must be an int"),
        ({"budget": 1}, ValueError, "budget must be >= 2 forward passes"),
        ({"optimizer": "fzoo", "budget": 8}, ValueError, "budget must be >= 9 forward passes"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"lr": -1e-3}, ValueError, "lr must be > 0"),
        ({"lr": math.nan}, ValueError, "lr must be finite"),
        ({"lr": "1e-3"}, TypeError, "lr must be a real number"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"seed": True}, TypeError, "seed must be an int"),
        ({"lr_schedule": "step"}, ValueError, "lr_schedule must be one of 'constant', 'cosine'"),
        ({"tuning": "adapter"}, ValueError, "tuning must be one of"),
        ({"eval_every": 0}, ValueError, "eval_every must be an int >= 1"),
        ({"horizon": 0}, ValueError, "horizon must be an int >= 1"),
        ({"perturbation_scale": 0.0}, ValueError, "perturbation_scale must be > 0"),
        ({"preset": "paper"}, ValueError, "preset must be one of"),
        ({"mixed_precision": "no"}, ValueError, "mixed_precision must be one of 'bf16', 'fp16'"),
        ({"test": 1}, TypeError, "test must be a bool"),
        ({"tags": ["main"]}, TypeError, "tags must be a tuple of str"),
        ({"betas": [0.9, 0.99]}, TypeError, "betas must be a tuple"),
        ({"betas": (0.9, 1.5)}, ValueError, r"betas\[1\] must be in \[0, 1\]"),
        ({"optimizer": "mezo", "betas": (0.9, 0.99)}, ValueError, "mezo' takes no betas"),
        ({"optimizer": "mezo", "horizon": 5}, ValueError, "mezo' takes no horizon"),
        ({"optimizer": "mezo", "preset": "reference"}, ValueError, "mezo' takes no preset"),
        ({"follows": "sst2-adamezo"}, ValueError, "follows must be None for a cell of adamezo"),
        ({"optimizer": "mezo-switch"}, ValueError, "follows must name the AdaMeZO cell"),
    ],
)
def test_a_cell_no_run_can_carry_out_is_refused_naming_the_field(changes, error, message):
    with pytest.raises(error, match=message):
        replace(ADAMEZO, **changes)


def test_a_zero_shot_cell_takes_no_budget_and_no_lr():
    assert Cell("sst2", ZERO_SHOT, 0).steps == 1  # evaluated, never stepped
    with pytest.raises(ValueError, match="budget must be 0 for a zero-shot cell"):
        Cell("sst2", ZERO_SHOT, 300)
    with pytest.raises(ValueError, match="lr must be 0 for a zero-shot cell"):
        Cell("sst2", ZERO_SHOT, 0, lr=1e-3)


def test_the_smallest_budgets_buy_one_step():
    assert Cell("sst2", "fzoo", 9, 1e-3).steps == Cell("sst2", "mezo", 2, 1e-3).steps == 1
    switch = Cell("sst2", "mezo-switch", 12, 1e-3, follows=ADAMEZO.id)
    assert switch.id == "sst2-mezo-switch-full-lr0.001-constant-fp12-s0"
