"""The study (benchmarks/study.py and study_report.py, thin scripts over adamezo.experiments):
the cells each table plans from the finished ones (grids grown past an edge best, seeds, Table 3,
the ablations, the long budgets) and the report built from published run directories alone."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from adamezo.experiments.store import remember
from adamezo.finetune import loop
from adamezo.finetune.lr_grid import centred_grid, step_lr
from tests.experiments.helpers import ADAMEZO, MEZO, published, run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import study
import study_report


def test_report_builds_table3_from_run_directories_alone(protocol, tmp_path):
    zero = study.Cell("sst2", study.ZERO_SHOT, 0, tags=("main",))
    run([zero, MEZO, ADAMEZO], protocol, tmp_path)
    outputs = study_report.report(tmp_path / "results", tmp_path / "docs", plots=True)
    table = json.loads((tmp_path / "results" / "table3.json").read_text())
    assert table == outputs["table3"]
    assert set(table["sst2"]) == {study.ZERO_SHOT, "mezo", "adamezo"}
    entry = table["sst2"]["adamezo"]
    assert entry["metric"] == "accuracy" and len(entry["test"]) == 1
    assert entry["lr"] == 1e-3 and entry["forward_passes"] == 12
    assert "| adamezo |" in (tmp_path / "docs" / "results.md").read_text()
    assert (tmp_path / "docs" / "results" / "sst2_dev_loss.png").stat().st_size > 0


def _grid_record(lr, loss, optimizer="mezo", task="sst2", schedule="constant"):
    return {
        "task": task,
        "optimizer": optimizer,
        "lr_schedule": schedule,
        "lr": lr,
        "budget": 300,
        "best_dev_loss": loss,
        "tags": ["lr"],
        "finished": True,
    }


def test_lr_grid_grows_past_an_edge_best():
    grid = study.LR_GRIDS["mezo"]
    records = [_grid_record(lr, 1.0 - i * 0.1) for i, lr in enumerate(grid)]  # best at the top
    choice = study.lr_choice(records)
    assert choice.best("sst2", "mezo", "constant") == grid[-1]
    (extension,) = study.extensions(choice, 300)
    assert extension.lr == pytest.approx(grid[-1] * 3)


def test_lr_grid_with_an_interior_best_does_not_grow():
    grid = study.LR_GRIDS["mezo"]
    losses = [1.0, 0.5, 0.7, 0.9]
    choice = study.lr_choice([_grid_record(lr, loss) for lr, loss in zip(grid, losses)])
    assert study.extensions(choice, 300) == []
    assert choice.lr("trec", "mezo", "constant") == grid[1]  # a task without a grid takes SST-2's
    assert choice.lr("sst2", "hizoo", "constant") == grid[1]  # HiZOO takes MeZO's


def test_extra_seeds_wait_for_a_complete_grid_with_an_interior_best():
    grid = study.LR_GRIDS["mezo"]
    partial = study.lr_choice([_grid_record(lr, 1.0) for lr in grid[:3]])
    assert study.seeds_table(partial) == []
    losses = [1.0, 0.5, 0.7, 0.9]
    settled = study.lr_choice([_grid_record(lr, loss) for lr, loss in zip(grid, losses)])
    cells = study.seeds_table(settled)
    assert [(c.optimizer, c.lr, c.seed, c.test) for c in cells] == [
        ("mezo", grid[1], 1, False),
        ("mezo", grid[1], 2, False),
    ]


def test_decaying_grids_wait_for_the_constant_choice_and_centre_on_it():
    grid = study.LR_GRIDS["adamezo"]
    partial = study.lr_choice([_grid_record(lr, 1.0, "adamezo") for lr in grid[:3]])
    assert study.schedule_table(partial) == []
    losses = [0.9, 0.5, 0.7, 0.8]
    records = [_grid_record(lr, loss, "adamezo") for lr, loss in zip(grid, losses)]
    cells = study.schedule_table(study.lr_choice(records))
    assert [c.lr for c in cells] == list(centred_grid(grid[1]))
    assert {(c.lr_schedule, c.test) for c in cells} == {("linear", False)}
    linear = [
        _grid_record(lr, loss, "adamezo", schedule="linear")
        for lr, loss in zip(centred_grid(grid[1]), [0.9, 0.4, 0.6, 0.7])
    ]
    settled = study.lr_choice(records + linear)
    assert settled.settled("sst2", "adamezo", "linear") == grid[1]
    seeds = [c for c in study.schedule_table(settled) if "seeds" in c.tags]
    assert [(c.lr, c.seed, c.lr_schedule) for c in seeds] == [
        (grid[1], 1, "linear"),
        (grid[1], 2, "linear"),
    ]


def test_table3_leaves_out_a_grid_task_until_its_grid_settles():
    grid = study.LR_GRIDS["mezo"]
    sst2 = [
        _grid_record(lr, loss, optimizer)
        for optimizer in ("mezo", "adamezo")
        for lr, loss in zip(study.LR_GRIDS[optimizer], [1.0, 0.5, 0.7, 0.9], strict=True)
    ]
    trec = [_grid_record(lr, 1.0 - i * 0.1, task="trec") for i, lr in enumerate(grid)]
    cells = study.main_table(study.lr_choice(sst2 + trec))
    mezo = {(c.task, c.seed) for c in cells if c.optimizer == "mezo"}
    assert ("sst2", 2) in mezo and ("sst5", 0) in mezo  # SST-5 takes SST-2's choice
    assert not any(task == "trec" for task, _ in mezo)  # TREC's best is still at an edge
    assert {c.budget for c in cells if c.optimizer == "mezo"} == {300}


def test_table3_points_mezo_switch_at_the_adamezo_cell_of_its_task():
    grid = study.LR_GRIDS
    settled = [
        _grid_record(lr, loss, optimizer)
        for optimizer in ("mezo", "adamezo")
        for lr, loss in zip(grid[optimizer], [1.0, 0.5, 0.7, 0.9], strict=True)
    ]
    cells = study.main_table(study.lr_choice(settled))
    switch = [c for c in cells if c.optimizer == "mezo-switch"]
    adamezo_ids = {c.id for c in cells if c.optimizer == "adamezo" and c.seed == 0}
    assert switch and all(c.follows in adamezo_ids for c in switch)


def _record(task, optimizer, seed=0, test=0.5, dev=1.0, tags=("main",)):
    return {
        "task": task,
        "optimizer": optimizer,
        "seed": seed,
        "tags": list(tags),
        "metrics": {"test": {"test_accuracy": test}},
        "best_dev_loss": dev,
    }


def test_adaptive_methods_side_by_side_take_seed_0_of_table3_and_their_memory(tmp_path):
    memory = tmp_path / "memory.json"
    peaks = {"ZOAdam": 1.7, "MEAZO": 0.96, "MeZO": 1.0}
    memory.write_text(
        json.dumps({"results": [{"optimizer": k, "peak_vs_mezo": v} for k, v in peaks.items()]})
    )
    records = [
        _record("sst2", "meazo", test=0.7, dev=0.6),
        _record("sst2", "meazo", seed=1, test=0.1),
        _record("sst2", "mezo"),
        _record("sst2", "zo-adam", tags=("lr",)),
    ]
    reach = {"sst2": {"0": {"passes": {"meazo": 200}}}}
    side = study_report.adaptive_side_by_side(records, reach, memory)
    meazo = {"test": 0.7, "best_dev_loss": 0.6, "passes_to_mezo_best": 200}
    assert side["tasks"] == {"sst2": {"meazo": meazo}}
    assert side["peak_memory_vs_mezo"] == {"zo-adam": 1.7, "meazo": 0.96}


def _adamezo_grid_record(betas=None, horizon=None, best_dev_loss=0.5, dev_accuracy=0.5):
    return {
        "task": "sst2",
        "tags": ["betas"],
        "betas": betas,
        "horizon": horizon,
        "lr": 1e-3,
        "best_dev_loss": best_dev_loss,
        "metrics": {"dev": {"dev_accuracy": dev_accuracy}},
    }


def test_betas_grid_is_a_table_with_beta1_rows_and_beta2_columns():
    records = [
        _adamezo_grid_record(betas=[b1, b2], best_dev_loss=b1 + b2, dev_accuracy=b2)
        for b1 in (0.0, 0.5)
        for b2 in (0.0, 0.9)
    ]
    out = study_report.grids(records)
    lines = study_report.grids_markdown(out["betas"], out["horizon"])
    assert "| 0 | 0.000 (0.000) | 0.900 (0.900) |" in lines
    assert "| 0.5 | 0.500 (0.000) | 1.400 (0.900) |" in lines


def test_a_one_seed_grid_states_the_defaults_seed_spread_for_scale():
    out = study_report.grids([_adamezo_grid_record(betas=[0.0, 0.0], best_dev_loss=0.6)])
    seeds = {
        "sst2/adamezo/constant": {
            "seeds": {"0": {"best_dev_loss": 0.5}, "1": {"best_dev_loss": 0.7}}
        }
    }
    lines = study_report.grids_markdown(out["betas"], out["horizon"], seeds)
    assert lines[-1].endswith("over seeds 0,1: best dev loss 0.600 (0.141).")


def test_grid_plots_are_written_per_task(tmp_path):
    records = [_adamezo_grid_record(betas=[b1, 0.9], horizon=k) for b1, k in ((0.0, 1), (0.9, 40))]
    out = study_report.grids([r | {"tags": ["betas", "horizon"]} for r in records])
    seeds = {
        "sst2/adamezo/constant": {
            "seeds": {"0": {"best_dev_loss": 0.5}, "1": {"best_dev_loss": 0.6}}
        }
    }
    paths = study_report.plot_grids(out["betas"], out["horizon"], tmp_path, seeds)
    assert sorted(p.name for p in paths) == ["sst2_betas.png", "sst2_horizon.png"]
    assert all(p.stat().st_size > 0 for p in paths)


class _FixedLr:
    def lr(self, task, optimizer, schedule):
        return 1e-3


def test_the_grids_run_adamezos_defaults_as_the_lr_grids_cell_not_a_second_time():
    lr_grid_cell = study.Cell("sst2", "adamezo", 300, 1e-3, test=False)
    for table in (study.betas_table, study.horizon_table):
        ids = [cell.id for cell in table(_FixedLr())]
        assert ids.count(lr_grid_cell.id) == 1
        assert len(set(ids)) == len(ids)


class _MethodLr:
    def lr(self, task, optimizer, schedule):
        return {"mezo": 3e-5, "adamezo": 1e-3}[optimizer]


def test_betas_without_a_second_moment_run_at_mezos_lr_after_the_adaptive_cells():
    cells = study.betas_table(_MethodLr())
    lrs = [(c.betas or (0.7, 0.9), c.lr) for c in cells]
    assert all(lr == (3e-5 if betas[1] == 0 else 1e-3) for betas, lr in lrs)
    assert [lr for _, lr in lrs] == sorted((lr for _, lr in lrs), reverse=True)
    assert len(cells) == 16


def test_the_defaults_cell_takes_its_place_in_both_grids():
    default = {"task": "sst2", "tags": ["betas", "horizon", "lr"], "betas": None, "horizon": None}
    out = study_report.grids([default | {"lr": 1e-3, "best_dev_loss": 0.5, "metrics": {}}])
    assert out["betas"]["sst2"]["b1=0.7 b2=0.9"]["best_dev_loss"] == 0.5
    assert out["horizon"]["sst2"]["K=10"]["horizon"] == 10


def test_passes_table_says_never_for_a_method_that_never_reaches_mezo():
    reach = {"sst2": {"0": {"mezo_best_dev_loss": 0.6, "passes": {"mezo": 300, "hizoo": None}}}}
    lines = study_report.passes_markdown(reach)
    assert lines[-1] == "| sst2 | 0 | 0.600 | hizoo: never, mezo: 300 |"


def test_table3_averages_every_method_over_the_tasks_all_of_them_ran():
    table = {
        "cb": {"mezo": {"test": [0.6]}},
        "sst2": {"mezo": {"test": [0.7, 0.9]}, "hizoo": {"test": [0.6]}},
        "trec": {"mezo": {"test": [0.3]}, "hizoo": {"test": [0.4]}},
    }
    lines = study_report.table3_markdown(table)
    assert lines[0].endswith("| average | average of sst2, trec |")
    assert lines[2] == "| mezo | 0.600 n=1 | 0.800 (0.141) n=2 | 0.300 n=1 | 0.567 | 0.550 |"
    assert lines[3] == "| hizoo |  | 0.600 n=1 | 0.400 n=1 |  | 0.500 |"


def test_horizon_grid_orders_k_numerically():
    records = [
        _adamezo_grid_record(horizon=k, best_dev_loss=k / 10) | {"tags": ["horizon"]}
        for k in (10, 2, 40)
    ]
    out = study_report.grids(records)
    lines = study_report.grids_markdown(out["betas"], out["horizon"])
    assert "| K | 2 | 10 | 40 |" in lines
    assert "| best dev loss | 0.200 (0.500) | 1.000 (0.500) | 4.000 (0.500) |" in lines


def test_step_sizes_compare_the_first_and_last_third_of_the_update_norms():
    shrinking = _record("sst2", "mezo") | {"update_norms": [(t, 6.0 - t) for t in range(1, 7)]}
    level = _record("sst2", "adamezo") | {"update_norms": [(t, 2.0) for t in range(1, 7)]}
    table = study_report.step_sizes([shrinking, level])
    assert table["sst2"]["mezo"]["first_third"] == 4.5  # steps 1-2: 5 and 4
    assert table["sst2"]["mezo"]["last_over_first"] == pytest.approx(0.5 / 4.5)
    assert table["sst2"]["adamezo"]["last_over_first"] == 1.0


def test_long_budget_step_sizes_keep_each_lr_and_schedule_apart():
    norms = {"update_norms": [(t, 2.0) for t in range(1, 7)]}
    records = [_long_record("fzoo", lr, 0.5) | norms for lr in (1e-2, 3e-3)]
    records.append(_long_record("fzoo", 3e-3, 0.5, schedule="linear") | norms)
    table = study_report.step_sizes(records, "long")
    labels = {"fzoo lr 0.01 constant", "fzoo lr 0.003 constant", "fzoo lr 0.003 linear"}
    assert set(table["sst2"]) == labels


# --------------------------------------------------------------------------------- ablation


def _reference_record(lr, loss):
    return {"task": "sst2", "tags": ["ablation"], "preset": "reference", "finished": True} | {
        "lr": lr,
        "best_dev_loss": loss,
    }


def test_ablation_plans_the_published_update_over_its_grid_then_mu_for_both():
    cells = study.ablation_table(_FixedLr(), records=[])
    reference = [c for c in cells if c.preset == "reference"]
    assert [c.lr for c in reference] == list(study.REFERENCE_LRS)
    mus = {(c.optimizer, c.perturbation_scale) for c in cells if c.perturbation_scale}
    assert mus == {(m, mu) for m in ("mezo", "adamezo") for mu in study.ABLATION_MUS}
    assert cells[: len(reference)] == reference  # the published update first


def test_ablation_reference_grid_grows_past_an_edge_best():
    records = [_reference_record(lr, 1.0 - lr) for lr in study.REFERENCE_LRS]  # best at the top
    lrs = [c.lr for c in study.ablation_table(_FixedLr(), records) if c.preset]
    assert lrs == [*study.REFERENCE_LRS, 1e-4]


def test_ablation_reference_grid_with_an_interior_best_does_not_grow():
    losses = dict(zip(study.REFERENCE_LRS, (0.7, 0.6, 0.65), strict=True))
    records = [_reference_record(lr, loss) for lr, loss in losses.items()]
    lrs = [c.lr for c in study.ablation_table(_FixedLr(), records) if c.preset]
    assert lrs == list(study.REFERENCE_LRS)


def test_cell_id_names_the_preset_and_mu():
    cell = study.Cell("sst2", "adamezo", 300, 1e-5, preset="reference", perturbation_scale=1e-4)
    assert cell.id == "sst2-adamezo-full-lr1e-05-constant-reference-mu0.0001-fp300-s0"


def test_ablation_report_puts_each_setting_beside_the_optimizers_default():
    grid = [
        _grid_record(lr, loss, optimizer="adamezo") | {"seed": 0, "metrics": {}}
        for lr, loss in zip(study.LR_GRIDS["adamezo"], (0.9, 0.6, 0.7, 0.8), strict=True)
    ]
    reference = _reference_record(1e-5, 0.65) | {
        "optimizer": "adamezo",
        "metrics": {"dev": {"dev_accuracy": 0.7}},
    }
    rows = study_report.ablation([*grid, reference])
    assert [(r["setting"], r["lr"], r["best_dev_loss"]) for r in rows] == [
        ("defaults", study.LR_GRIDS["adamezo"][1], 0.6),
        ("preset=reference", 1e-5, 0.65),
    ]
    assert study_report.ablation_markdown(rows)[-1] == (
        "| sst2 | adamezo | preset=reference | 1e-05 | 0.650 (0.700) |"
    )


def _long_record(optimizer, lr, loss, seed=0, schedule="constant", curve=()):
    every = study.steps_between(optimizer, study.LONG_EVAL_PASSES)
    cell = study.Cell("sst2", optimizer, 2000, lr, schedule, seed, eval_every=every, tags=("long",))
    return {
        "id": cell.id,
        **dataclasses.asdict(cell),
        "finished": True,
        "best_dev_loss": loss,
        "curve": list(curve),
        "metrics": {"test": {"test_accuracy": 0.5 + seed / 100, "test_loss": loss + 0.1}},
    }


def test_long_table_runs_seeds_and_decay_only_at_the_better_of_the_two_lrs():
    tuned = study.lr_choice([])
    first = study.long_table(tuned, [])
    assert {c.seed for c in first} == {0} and all(c.budget == 2000 for c in first)
    mezo = sorted(c.lr for c in first if c.optimizer == "mezo" and c.task == "sst2")
    assert mezo[1] == pytest.approx(3 * mezo[0], rel=0.01)
    finished = [_long_record("mezo", mezo[0], 0.5), _long_record("mezo", mezo[1], 0.6)]
    cells = study.long_table(tuned, finished)
    extra = [c for c in cells if c.optimizer == "mezo" and (c.seed or c.lr_schedule != "constant")]
    assert {(c.lr, c.seed, c.lr_schedule) for c in extra if c.task == "sst2"} == {
        (mezo[0], 1, "constant"),
        (mezo[0], 2, "constant"),
        (mezo[0], 0, "linear"),
    }
    # SST-2 whole before TREC
    tasks = [c.task for c in cells]
    assert tasks == sorted(tasks, key=lambda t: t != "sst2")


def test_long_budget_report_counts_passes_to_mezos_best_of_the_same_seed():
    records = [
        _long_record("mezo", 1e-5, 0.50, curve=[(0, 0.9), (100, 0.6), (2000, 0.50)]),
        _long_record("mezo", 3e-5, 0.55, curve=[(0, 0.9), (2000, 0.55)]),
        _long_record("adamezo", 1e-3, 0.45, curve=[(0, 0.9), (400, 0.49), (2000, 0.45)]),
        _long_record("adamezo", 1e-3, 0.52, seed=1, curve=[(0, 0.9), (2000, 0.52)]),
        _long_record("mezo", 1e-5, 0.51, seed=1, curve=[(0, 0.9), (1000, 0.51)]),
    ]
    table = study_report.long_budget(records)["sst2"]
    assert table["mezo"]["lr"] == 1e-5
    assert table["mezo"]["best_dev_loss"] == [0.50, 0.51]
    assert table["adamezo"]["passes_to_mezo_best"] == [400, None]
    assert table["mezo"]["passes_to_mezo_best"] == [2000, 1000]
    assert table["mezo"]["seed0_candidates"] == {"1e-05": 0.50, "3e-05": 0.55}
    assert table["mezo"]["test_loss"] == pytest.approx([0.60, 0.61])


def test_the_long_budget_plot_has_a_panel_per_seed_with_mezos_best_and_clips_a_divergence():
    records = [
        _long_record("mezo", 1e-5, 0.50, curve=[(0, 0.9), (1000, 0.5)]),
        _long_record("mezo", 3e-5, 0.55, curve=[(0, 0.9), (1000, 0.55)]),
        _long_record("mezo", 1e-5, 0.52, seed=1, curve=[(0, 0.9), (1000, 0.52)]),
        _long_record("mezo", 1e-5, 0.48, schedule="linear", curve=[(0, 0.9), (1000, 0.48)]),
        _long_record("fzoo", 3e-3, 0.45, curve=[(0, 0.9), (990, 0.45), (1980, 0.6)]),
        _long_record("fzoo", 1e-2, 0.70, curve=[(0, 0.9), (990, 0.7), (1980, 5.0)]),
    ]
    table = study_report.long_budget(records)
    panels, (low, high) = study_report.long_panels(records, table)[("sst2", 2000)]
    assert [p.title for p in panels] == ["seed 0", "seed 1"]
    styles = {c.label: c.style for c in panels[0].curves}
    assert styles == {
        "fzoo lr 0.003": "-",
        "fzoo lr 0.01": "--",
        "mezo lr 1e-05": "-",
        "mezo lr 3e-05": "--",
        "mezo lr 1e-05 linear": ":",
    }
    assert [c.label for c in panels[1].curves] == ["mezo lr 1e-05"]
    assert [p.reference[1] for p in panels] == [0.50, 0.52]
    assert low < 0.45 and 0.6 < high < 0.7  # the chosen curves fit; fzoo's 1e-2 runs off the top


def test_the_dev_loss_plot_has_a_panel_per_round_one_curve_per_method_in_one_colour():
    def main_cell(optimizer, seed, last):
        trains = optimizer != study.ZERO_SHOT
        cell = study.Cell("sst5", optimizer, 300 * trains, 1e-3 * trains, seed=seed, tags=("main",))
        curve = [(0, 1.6), (150, 1.5), (300, last)]
        return {**dataclasses.asdict(cell), "tags": ["main"], "curve": curve, "finished": True}

    records = [main_cell(m, 0, 1.4) for m in ("mezo", "hizoo", "adamezo", "fzoo", study.ZERO_SHOT)]
    records.append(main_cell("mezo", 1, 1.3))  # seed 0 only
    records[0]["curve"][-1] = (300, 1.45)
    targets = study_report.passes_to_mezo(records)
    one, two = study_report.dev_loss_panels(records, targets)["sst5"]
    assert [c.label.split()[0] for c in one.curves] == ["mezo", "hizoo", "adamezo"]
    assert [c.label.split()[0] for c in two.curves] == ["mezo", "adamezo", "fzoo"]
    colours = {c.label: c.color for c in (*one.curves, *two.curves)}
    assert len(set(colours.values())) == 4  # mezo and adamezo alike in both panels
    assert one.reference == two.reference == ("MeZO's best (1.450)", 1.45)


BF16_MEZO = replace(MEZO, mixed_precision="bf16", tags=("precision",))


def test_the_precision_table_plans_bf16_twins_of_table3s_mezo_and_adamezo_seeds():
    records = [
        _grid_record(lr, loss) for lr, loss in zip(study.LR_GRIDS["mezo"], [1, 0.5, 0.7, 0.9])
    ]
    records += [
        _grid_record(lr, loss, optimizer="adamezo")
        for lr, loss in zip(study.LR_GRIDS["adamezo"], [1, 0.9, 0.5, 0.7])
    ]
    tuned = study.lr_choice(records)
    cells = study.precision_table(tuned, 300)
    assert {c.mixed_precision for c in cells} == {"bf16"}
    assert {(c.optimizer, c.lr) for c in cells} == {
        ("mezo", study.LR_GRIDS["mezo"][1]),
        ("adamezo", study.LR_GRIDS["adamezo"][2]),
    }
    twins = {replace(c, mixed_precision=None, tags=()).id for c in cells}
    main = {c.id for c in study.main_table(tuned, 300) if c.task == "sst2" and c.lr}
    assert len(twins) == 6 and twins <= main  # seeds 0-2 of each, whose float32 runs exist


def _precision_record(optimizer, seed, test, dev, mixed=None):
    record = _record(
        "sst2", optimizer, seed, test, dev, tags=("precision",) if mixed else ("main",)
    )
    cell = study.Cell("sst2", optimizer, 300, 1e-3, seed=seed, mixed_precision=mixed)
    return {**dataclasses.asdict(cell), **record, "tags": list(record["tags"])}


def test_the_report_compares_bf16_with_its_float32_twins_and_keeps_it_out_of_table3():
    fp32 = [_precision_record("mezo", s, 0.80 + 0.01 * s, 0.50 + 0.01 * s) for s in (0, 1, 2)]
    bf16 = [_precision_record("mezo", s, 0.80 + 0.01 * s, 0.51, "bf16") for s in (0, 1, 2)]
    far = [_precision_record("adamezo", s, 0.5, 0.9, "bf16") for s in (0, 1, 2)]
    far += [_precision_record("adamezo", s, 0.8 + 0.01 * s, 0.5) for s in (0, 1, 2)]
    table = study_report.precision(fp32 + bf16 + far)
    mezo = table["sst2/mezo/lr0.001"]
    assert set(mezo["precisions"]) == {"float32", "bf16"}
    assert mezo["precisions"]["bf16"]["1"] == {
        "best_dev_loss": 0.51,
        "test_metric": "accuracy",
        "test": 0.81,
    }
    assert mezo["summary"]["bf16"]["test"]["within_seed_spread"] is True
    assert mezo["summary"]["bf16"]["best_dev_loss"]["within_seed_spread"] is True
    assert table["sst2/adamezo/lr0.001"]["summary"]["bf16"]["test"]["within_seed_spread"] is False
    lines = study_report.precision_markdown(table)
    assert any("| sst2/mezo/lr0.001 | bf16 | 0,1,2 |" in line for line in lines)
    assert study_report.precision([*fp32]) == {}  # no mixed-precision cell: nothing to compare
    plain = [r for r in fp32 + bf16 if study_report.precision_of(r) == "float32"]
    assert study_report.table3(plain)["sst2"]["mezo"]["seeds"] == [0, 1, 2]


def test_methods_table_runs_every_new_method_at_its_default_first_on_sst2():
    cells = study.methods_table(study.lr_choice([]))
    first = cells[: len(study.NEW_METHODS)]
    assert [c.optimizer for c in first] == list(study.NEW_METHODS)
    assert all(c.task == "sst2" and c.lr == study.NEW_METHOD_GRIDS[c.optimizer][1] for c in first)
    assert [c.task for c in cells] == sorted((c.task for c in cells), key=lambda t: t != "sst2")


def test_new_methods_evaluate_about_every_fifty_forward_passes():
    for method in study.NEW_METHODS:
        cell = study.Cell("sst2", method, 300, 1e-3, eval_every=study.new_method_eval_every(method))
        every = cell.eval_every or 25
        assert abs(every * study.passes_per_step(method) - 50) <= 5
    # the methods that ran before keep their cell ids
    assert study.new_method_eval_every("hizoo") is None


def test_a_new_methods_grid_grows_past_an_edge_best_in_its_own_table():
    grid = study.NEW_METHOD_GRIDS["fzoo"]
    records = [
        _grid_record(lr, loss, optimizer="fzoo") | {"tags": ["lr", "methods"]}
        for lr, loss in zip(grid, (0.6, 0.5, 0.4, 0.3), strict=True)
    ]
    planned = study.methods_table(study.lr_choice(records))
    grown = [c for c in planned if c.optimizer == "fzoo" and c.lr not in grid]
    assert [(c.optimizer, c.lr, c.eval_every) for c in grown] == [("fzoo", 3e-2, 6)]


def _fzoo_records(losses):
    return [
        _grid_record(lr, loss, optimizer="fzoo") | {"tags": ["lr", "methods"]}
        for lr, loss in losses.items()
    ]


def test_a_loss_still_falling_into_the_grids_edge_grows_it_before_the_far_end_runs():
    records = _fzoo_records({1e-3: 0.64, 3e-3: 0.61, 1e-2: 0.58})  # 3e-4 not run yet
    planned = study.methods_table(study.lr_choice(records))
    assert (planned[0].optimizer, planned[0].lr) == ("fzoo", 3e-2)
    to_run = [c.lr for c in planned if c.optimizer == "fzoo" and c.task == "sst2"]
    assert [lr for lr in to_run if lr not in (1e-3, 3e-3, 1e-2)] == [3e-2, 3e-4]


def test_no_early_growth_while_the_edge_is_worse_than_its_neighbour_or_inside_the_plan():
    assert study.trend_past_the_edge({1e-3: 0.5, 3e-3: 0.61, 1e-2: 0.58}, (3e-4, 1e-2)) is None
    assert study.trend_past_the_edge({3e-3: 0.61, 1e-2: 0.58}, (3e-4, 3e-2)) is None
    assert study.trend_past_the_edge({3e-4: 0.5, 1e-3: 0.6}, (3e-4, 1e-2)) == 1e-4
    assert study.trend_past_the_edge({1e-2: float("nan")}, (3e-4, 1e-2)) is None


def test_the_early_and_the_regular_growth_plan_one_cell():
    grid = study.NEW_METHOD_GRIDS["fzoo"]
    records = _fzoo_records(dict(zip(grid, (0.6, 0.5, 0.4, 0.3), strict=True)))
    planned = study.methods_table(study.lr_choice(records))
    assert [c.lr for c in planned if c.optimizer == "fzoo" and c.lr not in grid] == [3e-2]


def test_the_gpu_long_table_is_reported_apart_from_the_cpu_long_budget():
    cells = study.gpu_long_table(study.lr_choice([]))
    assert {c.steps for c in cells} == {10000} and [c.optimizer for c in cells[:2]] == [
        "mezo",
        "adamezo",
    ]
    records = [_long_record("mezo", 1e-5, 0.5, curve=[(0, 0.9), (2000, 0.5)])]
    gpu = dict(records[0], budget=20000, tags=["gpu-long"], id="gpu")
    assert study_report.long_budget([*records, gpu])["sst2"]["mezo"]["forward_passes"] == 2000
    assert study_report.long_budget([gpu], "gpu-long")["sst2"]["mezo"]["forward_passes"] == 20000


# ------------------------------------------------------------ the new methods in Table 3 and long


def _settled_grid(optimizer, task="sst2", best=0.5, at=1):
    """The records of a complete constant-lr grid whose best, ``best``, is its ``at``-th value."""
    grid = study.GRIDS.grids[optimizer]
    losses = [best + 0.2 + 0.1 * abs(i - at) for i in range(len(grid))]
    losses[at] = best
    tags = ["lr", "methods"] if optimizer in study.NEW_METHODS else ["lr"]
    return [
        _grid_record(lr, loss, optimizer, task) | {"tags": tags}
        for lr, loss in zip(grid, losses, strict=True)
    ]


def _all_settled(best="lozo", trec_at=2):
    """MeZO's and every new method's grids settled on SST-2 (at their second value) and TREC
    (``trec_at``); ``best`` has the lowest loss ratio to MeZO on both."""
    records = [r for t in study.LR_TASKS for r in _settled_grid("mezo", t, best=1.0)]
    for method in study.NEW_METHODS:
        loss = 0.9 if method == best else 1.1
        records += _settled_grid(method, "sst2", best=loss)
        records += _settled_grid(method, "trec", best=loss, at=trec_at)
    return records


def _without(records, optimizer, task):
    """The records less the first grid value of ``optimizer`` on ``task``."""
    first = study.GRIDS.grids[optimizer][0]
    return [r for r in records if (r["optimizer"], r["task"], r["lr"]) != (optimizer, task, first)]


def test_no_new_method_runs_in_table3_before_its_grid_settles():
    assert study.new_methods_main(study.lr_choice([])) == []
    records = _all_settled()
    cells = study.new_methods_main(study.lr_choice(_without(records, "fzoo", "sst2")))
    assert {c.task for c in cells if c.optimizer == "fzoo"} == {"trec"}  # on TREC's own grid
    cells = study.new_methods_main(study.lr_choice(_without(records, "fzoo", "trec")))
    fzoo = {c.task for c in cells if c.optimizer == "fzoo"}
    assert fzoo == set(study.MAIN_TASKS) - {"trec"}  # the others wait for SST-2's grid only


def test_new_methods_run_in_table3_at_their_settled_lr_on_all_six_tasks():
    cells = study.new_methods_main(study.lr_choice(_all_settled()), 300)
    seed0 = {(c.task, c.optimizer): c for c in cells if c.seed == 0}
    assert set(seed0) == {(t, m) for t in study.MAIN_TASKS for m in study.NEW_METHODS}
    for (task, method), cell in seed0.items():
        grid = study.NEW_METHOD_GRIDS[method]
        assert cell.lr == (grid[2] if task == "trec" else grid[1])  # TREC's own, else SST-2's
        assert (cell.budget, cell.test, cell.tags) == (300, True, ("main",))
        assert cell.eval_every == study.new_method_eval_every(method)  # as the grids evaluate


def test_only_the_best_new_method_runs_seeds_1_and_2_after_seed_0_on_the_cheap_tasks():
    cells = study.new_methods_main(study.lr_choice(_all_settled(best="zo-muon")))
    seeds = {(c.optimizer, c.seed) for c in cells}
    assert seeds == {(m, 0) for m in study.NEW_METHODS} | {("zo-muon", 1), ("zo-muon", 2)}
    assert all(len([c for c in cells if c.seed == s]) == 6 for s in (1, 2))  # all six tasks
    cheap = 4 * len(study.ALL_METHOD_TASKS)
    assert {(c.task, c.seed) for c in cells[:cheap]} == {(t, 0) for t in study.ALL_METHOD_TASKS}
    assert {c.optimizer for c in cells[cheap : cheap + 14]} == {"zo-muon"}  # CB, RTE, seeds
    assert {c.task for c in cells[cheap + 14 :]} == {"cb", "rte"}


def test_a_new_methods_table3_cell_on_a_grid_task_is_its_grid_run_tested():
    tuned = study.lr_choice(_all_settled())
    grid_cells = set(study.methods_table(tuned))
    on_grids = [c for c in study.new_methods_main(tuned) if c.task in study.LR_TASKS and not c.seed]
    assert len(on_grids) == 2 * len(study.NEW_METHODS)
    assert all(replace(c, test=False) in grid_cells for c in on_grids)


def _publish(results, cell, loss):
    """A finished cell in ``results`` whose log holds one evaluation, at dev loss ``loss``."""
    remember(cell, results)
    evaluation = {"type": "eval", "step": 1, "dev_loss": loss, "time": 0.0}
    (results / "cells" / cell.id / "log.jsonl").write_text(json.dumps(evaluation) + "\n")
    (results / "cells" / cell.id / "metrics.json").write_text("{}")


def test_the_methods_table_replays_its_settled_grid_runs_into_table3_first(tmp_path):
    results = tmp_path / "results"
    for r in _all_settled():
        every = study.new_method_eval_every(r["optimizer"])
        cell = study.Cell(r["task"], r["optimizer"], 300, r["lr"], test=False, eval_every=every)
        _publish(results, replace(cell, tags=tuple(r["tags"])), r["best_dev_loss"])
    budgets = {"lr": 300, "main": 300}
    cells = study.table_cells("methods", results, budgets)
    replays = [c for c in cells if study.by_replay(c, results)]
    assert len(replays) == 2 * len(study.NEW_METHODS) and cells[: len(replays)] == replays
    lines = study.plan("methods", results, budgets, 2.0).splitlines()
    assert lines[0].endswith("~0 min (replay + test)")
    # the 32 grid cells are done; to do: every method on six tasks, the best's seeds 1-2
    assert sum(line.startswith("to do") for line in lines) == 4 * 6 + 2 * 6


@pytest.mark.parametrize("method", study.NEW_METHODS)
def test_a_new_methods_table3_cell_is_completed_by_replaying_its_grid_run(
    method, protocol, tmp_path, monkeypatch
):
    tuned = study.lr_choice(_all_settled())
    cell = next(c for c in study.new_methods_main(tuned, 54) if c.optimizer == method)
    twin = next(c for c in study.methods_table(tuned, 54) if c == replace(cell, test=False))
    run([twin], protocol, tmp_path)
    trained = []
    monkeypatch.setattr(loop, "run_finetune", lambda *a, **k: trained.append(a))
    assert run([cell], protocol, tmp_path) == [cell]
    assert trained == []  # nothing trained twice
    tested = json.loads(published(tmp_path, cell).read_text())
    assert tested["tested_by_replay"]["run"] == twin.id
    assert 0.0 <= tested["test"]["test_accuracy"] <= 1.0


def test_the_best_new_method_has_the_lowest_mean_loss_ratio_to_mezo():
    mezo = {"sst2": 0.6, "trec": 1.5}
    losses = {  # fzoo: ratios 0.8 and 1.2 (mean 1.0); lozo: 1.1 and 0.95 (1.025), lower losses
        "fzoo": {"sst2": 0.48, "trec": 1.8},
        "lozo": {"sst2": 0.66, "trec": 1.425},
        "lozo-m": {"sst2": 0.9, "trec": 2.0},
        "zo-muon": {"sst2": 0.9, "trec": 2.0},
    }
    records = [r for t, loss in mezo.items() for r in _settled_grid("mezo", t, best=loss)]
    for method, by_task in losses.items():
        records += [r for t, loss in by_task.items() for r in _settled_grid(method, t, best=loss)]
    assert study.best_new_method(study.lr_choice(records)) == "fzoo"


def test_no_best_new_method_until_every_new_grid_and_mezos_has_settled():
    records = _all_settled(best="lozo")
    assert study.best_new_method(study.lr_choice(records)) == "lozo"
    for optimizer in ("zo-muon", "mezo"):
        partial = study.lr_choice(_without(records, optimizer, "trec"))
        assert study.best_new_method(partial) is None


def test_the_long_table_adds_the_best_new_method_at_mezos_resolution_in_passes():
    records = _all_settled(best="fzoo")
    without = study.long_table(study.lr_choice(_without(records, "lozo", "trec")), [])
    cells = study.long_table(study.lr_choice(records), [])
    fzoo = [c for c in cells if c.optimizer == "fzoo"]
    assert {(c.task, c.lr) for c in fzoo} == {
        ("sst2", 1e-3),
        ("sst2", 3e-4),
        ("trec", 3e-3),
        ("trec", 1e-3),
    }  # the tuned lr and a third of it
    assert {c.eval_every * study.passes_per_step("fzoo") for c in fzoo} == {99}  # MeZO: 100
    assert [c.id for c in cells if c.optimizer != "fzoo"] == [c.id for c in without]
    assert "sst2-mezo-full-lr1e-06-constant-ev50-fp2000-s0" in {c.id for c in without}


def test_the_best_new_methods_long_seeds_run_at_its_better_lr():
    tuned = study.lr_choice(_all_settled(best="lozo"))
    seed0 = [_long_record("lozo", lr, loss) for lr, loss in ((1e-5, 0.6), (3e-6, 0.5))]
    cells = study.long_table(tuned, seed0)
    extra = {
        (c.lr, c.seed, c.lr_schedule) for c in cells if c.optimizer == "lozo" and c.task == "sst2"
    }
    assert extra == {
        (1e-5, 0, "constant"),
        (3e-6, 0, "constant"),
        (3e-6, 1, "constant"),
        (3e-6, 2, "constant"),
        (3e-6, 0, "linear"),
    }


def _table3_record(task, optimizer, seed, test):
    every = study.new_method_eval_every(optimizer)
    cell = study.Cell(task, optimizer, 300, 1e-3, seed=seed, eval_every=every, tags=("main",))
    return {**dataclasses.asdict(cell), **_record(task, optimizer, seed, test), "tags": ["main"]}


def test_the_report_puts_the_new_methods_in_table3_and_the_long_budget():
    tasks = ("sst2", "trec", "sst5", "snli")
    records = [_table3_record(t, m, 0, 0.6) for t in tasks for m in ("mezo", *study.NEW_METHODS)]
    records += [_table3_record("sst2", "lozo", s, 0.7) for s in (1, 2)]
    table = study_report.table3(records)
    assert all(set(table[t]) == {"mezo", *study.NEW_METHODS} for t in tasks)
    assert table["sst2"]["lozo"]["seeds"] == [0, 1, 2]
    rows = {line.split(" | ")[0] for line in study_report.table3_markdown(table)[2:]}
    assert rows == {f"| {m}" for m in ("mezo", *study.NEW_METHODS)}
    long = [
        _long_record("mezo", 1e-5, 0.5, seed=s, curve=[(0, 0.9), (1000, 0.5)]) for s in (0, 1, 2)
    ]
    long += [
        _long_record("lozo", 1e-5, 0.45, seed=s, curve=[(0, 0.9), (200 * (s + 1), 0.48)])
        for s in (0, 1, 2)
    ]
    entry = study_report.long_budget(long)["sst2"]["lozo"]
    assert entry["seeds"] == [0, 1, 2] and entry["passes_to_mezo_best"] == [200, 400, 600]
    assert any(
        line.startswith("| sst2 | lozo |")
        for line in study_report.long_budget_markdown({"sst2": {"lozo": entry}})
    )


def test_the_report_pairs_adamezo_and_the_best_new_method_with_mezo_by_seed():
    records = [_table3_record("sst2", m, s, 0.7) for m in ("mezo", "adamezo") for s in (0, 1, 2)]
    records += [_table3_record("sst2", "fzoo", s, 0.8 + s / 100) for s in (0, 1, 2)]
    pairs = study_report.against_mezo(study_report.table3(records), ("adamezo", "fzoo", None))
    assert pairs["fzoo"]["sst2"]["differences"] == pytest.approx([0.10, 0.11, 0.12])
    assert pairs["fzoo"]["sst2"]["verdict"] == "fzoo higher"
    assert pairs["adamezo"]["sst2"]["verdict"] == "no claim"
    rows = study_report.paired_markdown(pairs)[2:]
    assert [row.split(" | ")[1] for row in rows] == ["adamezo", "fzoo"]


def test_the_long_budget_pairs_each_method_with_mezo_by_seed():
    long = [_long_record("mezo", 3e-5, 0.5, seed=s, curve=[(0, 0.9), (2000, 0.5)]) for s in (0, 1)]
    long += [_long_record("adamezo", 3e-4, 0.6, seed=s, curve=[(0, 0.9)]) for s in (0, 1)]
    pairs = study_report.against_mezo(study_report.long_budget(long), ("adamezo", "mezo"))
    assert set(pairs) == {"adamezo"}
    assert pairs["adamezo"]["sst2"]["seeds"] == [0, 1]
    assert pairs["adamezo"]["sst2"]["differences"] == pytest.approx([0.0, 0.0])


def _curved(record, curve, seed=0):
    """A grid record with a dev-loss curve, its best dev loss the curve's lowest."""
    return record | {
        "seed": seed,
        "curve": curve,
        "best_dev_loss": min(loss for _, loss in curve),
        "metrics": {"dev": {"dev_accuracy": 0.6}},
    }


def test_the_new_methods_table_sets_each_lr_beside_mezos_and_adamezos_tuned_seed_0_cells():
    mezo = study.LR_GRIDS["mezo"]  # tuned at mezo[1], interior
    records = [
        _curved(_grid_record(lr, 0, "mezo"), [(0, 0.9), (100, loss), (300, loss + 0.01)])
        for lr, loss in zip(mezo, (0.7, 0.5, 0.6, 0.8), strict=True)
    ]
    records.insert(0, _curved(_grid_record(mezo[1], 0, "mezo"), [(0, 0.9), (300, 0.1)], seed=1))
    adamezo = study.LR_GRIDS["adamezo"]  # its grid not complete: no tuned cell yet
    records.append(_curved(_grid_record(adamezo[1], 0, "adamezo"), [(0, 0.9), (300, 0.4)]))
    fzoo = [(1e-3, [(0, 0.9), (108, 0.55), (297, 0.45)]), (3e-3, [(0, 0.9), (297, 0.6)])]
    records += [
        _curved(_grid_record(lr, 0, "fzoo") | {"tags": ["lr", "methods"]}, curve)
        for lr, curve in fzoo
    ]
    records.append(
        _curved(_grid_record(1e-2, 0, "fzoo") | {"tags": ["lr", "methods"]}, [(0, 0.3)], seed=1)
    )
    table = study_report.new_methods(records)
    assert list(table) == ["sst2"]
    reference = table["sst2"]["reference"]
    assert list(reference) == ["mezo"]  # seed 0 at the settled lr, not seed 1's 0.1
    assert reference["mezo"]["lr"] == mezo[1] and reference["mezo"]["best_dev_loss"] == 0.5
    assert reference["mezo"]["passes_at_best"] == 100
    method = table["sst2"]["methods"]["fzoo"]
    assert set(method["lrs"]) == {"0.001", "0.003"} and method["best_lr"] == "0.001"
    assert method["lrs"]["0.001"]["passes_to_mezo_best"] == 297  # first point <= 0.5
    assert method["lrs"]["0.003"]["passes_to_mezo_best"] is None
    lines = study_report.new_methods_markdown(table)
    assert "| sst2 | fzoo | 0.001 (best so far) | 0.450 (0.600) | 297 | 297 |" in lines


def test_a_diverged_new_method_shows_its_best_dev_loss_after_training_began_not_step_0s():
    diverged = [(0, 1.1), (100, 2.4), (300, 3.0)]
    records = [
        _curved(_grid_record(1e-4, 0, "lozo-m") | {"tags": ["lr", "methods"]}, diverged),
        _curved(
            _grid_record(1e-5, 0, "lozo-m") | {"tags": ["lr", "methods"]}, [(0, 1.1), (300, 0.7)]
        ),
    ]
    lrs = study_report.new_methods(records)["sst2"]["methods"]["lozo-m"]["lrs"]
    assert (lrs["0.0001"]["best_dev_loss"], lrs["0.0001"]["passes_at_best"]) == (2.4, 100)


def test_the_new_methods_plot_takes_each_curve_at_the_budget_its_entry_names(monkeypatch):
    def grid_cell(optimizer, lr, budget):
        curve = [(0, 1.0), (budget, 0.5 if budget == 600 else 0.9)]
        cell = {"tags": ["lr", "methods"], "task": "sst2", "optimizer": optimizer, "lr": lr}
        return cell | {"seed": 0, "lr_schedule": "constant", "budget": budget, "curve": curve}

    lrs = (("mezo", 1e-6), ("fzoo", 1e-3))
    records = [grid_cell(m, lr, budget) for m, lr in lrs for budget in (300, 600)]
    table = {
        "sst2": {
            "reference": {"mezo": {"lr": 1e-6, "budget": 600}},
            "methods": {"fzoo": {"best_lr": "0.001", "lrs": {"0.001": {"budget": 600}}}},
        }
    }
    plotted = []
    monkeypatch.setattr(study_report, "line_plot", lambda path, curves, *a: plotted.append(curves))
    study_report.plot_new_methods(records, table, Path("unused"))
    assert plotted == [
        [("fzoo (lr 0.001)", [(0, 1.0), (600, 0.5)]), ("mezo (lr 1e-06)", [(0, 1.0), (600, 0.5)])]
    ]


# -------------------------------------------------------------------- the first round's holes


def _borrowed_settled():
    """MeZO's and AdaMeZO's SST-2 grids settled at their second value (1e-6 and 1e-5)."""
    return [r for m in ("mezo", "adamezo") for r in _settled_grid(m)]


def _hole_record(cell, loss, accuracy=0.6):
    """A finished cell's record as the store reads it."""
    return {
        **dataclasses.asdict(cell),
        "id": cell.id,
        "tags": list(cell.tags),
        "finished": True,
        "best_dev_loss": loss,
        "metrics": {"dev": {"dev_accuracy": accuracy}},
    }


def _hole_grid(method, records):
    return [
        c for c in study.holes_table(study.lr_choice(records), records) if c.optimizer == method
    ]


def test_holes_grids_are_centred_on_the_borrowed_lr_whose_cell_is_table3s():
    records = _borrowed_settled()
    tuned = study.lr_choice(records)
    table3 = set(study.main_table(tuned))
    for method in study.HOLE_METHODS:
        borrowed = tuned.lr("sst2", method, "constant")
        cells = _hole_grid(method, records)
        assert [c.lr for c in cells if c.lr == borrowed] == [borrowed]
        assert sorted(c.lr for c in cells) == list(centred_grid(borrowed))
        (centre,) = [c for c in cells if c.test]
        assert centre.lr == borrowed and centre in table3  # Table 3's run, not a second one
        assert {(c.task, c.seed, c.budget, c.tags) for c in cells} == {("sst2", 0, 300, ("holes",))}
    assert "mezo-switch" not in {c.optimizer for c in study.holes_table(tuned, records)}


def test_holes_wait_for_the_grid_they_borrow_from_to_settle():
    records = [r for r in _borrowed_settled() if r["optimizer"] == "mezo"]
    planned = {c.optimizer for c in study.holes_table(study.lr_choice(records), records)}
    assert {"hizoo"} <= planned and not {"zo-adam", "meazo"} & planned


def test_holes_run_each_borrowed_lrs_neighbours_before_the_far_ends():
    records = _borrowed_settled()
    tuned = study.lr_choice(records)
    cells = [c for c in study.holes_table(tuned, records) if "holes" in c.tags]
    per_method = len(study.HOLE_METHODS)
    for rank, cells_at in enumerate(zip(*[iter(cells)] * per_method)):
        for cell in cells_at:
            c = tuned.lr("sst2", cell.optimizer, "constant")
            expected = (c, step_lr(c, -1), step_lr(c, 1), step_lr(step_lr(c, 1), 1))[rank]
            assert cell.lr == pytest.approx(expected)


def test_a_holes_grid_grows_past_an_edge_best_without_touching_the_studys_lr():
    records = _borrowed_settled()
    tuned = study.lr_choice(records)
    hizoo = _hole_grid("hizoo", records)
    losses = {c.lr: 1.0 - 0.1 * i for i, c in enumerate(sorted(hizoo, key=lambda c: c.lr))}
    finished = records + [_hole_record(c, losses[c.lr]) for c in hizoo]
    grown = [c for c in _hole_grid("hizoo", finished) if c.lr not in losses]
    assert [(c.lr, c.test, c.tags) for c in grown] == [(step_lr(max(losses), 1), False, ("holes",))]
    assert study.lr_choice(finished).lr("sst2", "hizoo", "constant") == tuned.lr(
        "sst2", "hizoo", "constant"
    )  # still MeZO's, though HiZOO's own best is 10x larger


def test_holes_cells_change_no_other_tables_plan(tmp_path):
    results = tmp_path / "results"
    grids = [r for t in study.LR_TASKS for m in study.LR_GRIDS for r in _settled_grid(m, t)]
    for r in grids:
        cell = study.Cell(r["task"], r["optimizer"], 300, r["lr"], test=False, tags=("lr",))
        _publish(results, cell, r["best_dev_loss"])
    budgets = {"lr": 300, "main": 300}
    others = [t for t in study.TABLES if t != "holes"]

    def plans():
        return {t: study.plan(t, results, budgets, 2.0) for t in others}

    before = plans()
    planned = study.table_cells("holes", results, budgets)
    new = [c for c in planned if c.tags == ("holes",) and not c.test]  # the others' are theirs
    assert len(new) == 3 * len(study.HOLE_METHODS)
    for i, cell in enumerate(new):
        _publish(results, cell, 0.1 + 0.01 * i)  # every grid's best far from the borrowed lr
    assert plans() == before


def test_holes_plan_the_betas_and_mu_holes_as_their_own_tables_do():
    records = _borrowed_settled()
    tuned = study.lr_choice(records)
    cells = study.holes_table(tuned, records)
    betas = [c for c in cells if c.betas is not None]
    mus = [c for c in cells if c.perturbation_scale is not None]
    assert {c.betas for c in betas} == {(0.7, 0.0), (0.9, 0.0)}
    assert {(c.optimizer, c.perturbation_scale) for c in mus} == {
        (m, mu) for m in ("mezo", "adamezo") for mu in study.ABLATION_MUS
    }
    assert set(betas) <= set(study.betas_table(tuned))
    assert set(mus) <= set(study.ablation_table(tuned, records))
    assert [c.tags for c in betas + mus] == [("betas",)] * 2 + [("ablation",)] * 4


def test_the_holes_report_puts_each_own_grid_beside_the_borrowed_lr():
    records = _borrowed_settled()
    tuned = study.lr_choice(records)
    for method, best_at in (("hizoo", 2), ("zo-adam", 1)):  # 3c for HiZOO, the borrowed lr
        cells = sorted(_hole_grid(method, records), key=lambda c: c.lr)
        records += [
            _hole_record(c, 0.5 + 0.1 * abs(i - best_at), accuracy=0.7) for i, c in enumerate(cells)
        ]
    borrowed = tuned.lr("sst2", "hizoo", "constant")
    other_run = study.Cell("sst2", "hizoo", 300, borrowed, seed=1, tags=("main",))
    records.append(_hole_record(other_run, 0.1))
    table = study_report.holes(records)["sst2"]
    hizoo, zo_adam = table["hizoo"], table["zo-adam"]
    assert (hizoo["borrowed_from"], hizoo["borrowed_lr"]) == ("mezo", borrowed)
    assert hizoo["lrs"][f"{borrowed:g}"] == {"best_dev_loss": 0.6, "dev_accuracy_at_best": 0.7}
    assert len(hizoo["lrs"]) == 4  # seed 1's run is no grid point
    assert (hizoo["best_lr"], hizoo["settled"], hizoo["differs"]) == (
        step_lr(borrowed, 1),
        True,
        True,
    )
    assert (zo_adam["settled"], zo_adam["differs"]) == (True, False)
    assert (table["meazo"]["lrs"], table["meazo"]["differs"]) == ({}, None)
    lines = study_report.holes_markdown({"sst2": table})
    assert lines[2].startswith(f"| sst2 | hizoo | {borrowed:g} (mezo) |")
    assert lines[2].endswith("| yes |") and lines[4].endswith("| - |")
