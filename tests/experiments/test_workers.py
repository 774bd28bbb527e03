"""Cells run by workers sharing an Optuna study (tiny model): each cell is a published run
directory, finished cells are skipped, a cell another worker holds is left to it, an interrupted
or killed worker's cell is resumed bit for bit, and two worker processes never run a cell twice."""

import json
from dataclasses import asdict, replace

import optuna
import pytest
import torch
from optuna.trial import TrialState
from safetensors.torch import load_file

from adamezo.experiments.cells import ZERO_SHOT, Cell, cell_to_json
from adamezo.experiments.runner import finetune_config
from adamezo.experiments.workers import CellPlan, run_cells
from adamezo.finetune import loop
from adamezo.finetune.trial_queue import open_study
from tests.experiments.helpers import (
    ADAMEZO,
    MEZO,
    log_records,
    metrics,
    place_in,
    published,
    run,
    train_records,
)
from tests.finetune.helpers import (
    KILL_AT_STEP_3,
    Interrupt,
    python_worker,
    rendezvous,
    stop_at_step,
    untimed_log,
)


def test_each_cell_is_a_run_directory_with_its_files_published(protocol, tmp_path):
    assert run([MEZO, ADAMEZO], protocol, tmp_path) == [MEZO, ADAMEZO]
    for cell in (MEZO, ADAMEZO):
        files = {p.name for p in published(tmp_path, cell).parent.iterdir()}
        assert files >= {"cell.json", "config.json", "log.jsonl", "metrics.json"}
        assert metrics(tmp_path, cell)["steps"] == 6  # 12 forward passes at 2 a step
        assert not (tmp_path / "runs" / cell.id / "checkpoint").exists()  # weights dropped
    assert not list((tmp_path / "runs").glob("*.lock"))


def test_each_cell_is_a_complete_trial_valued_by_its_best_dev_loss(protocol, tmp_path):
    run([MEZO], protocol, tmp_path)
    study = optuna.load_study(study_name="study", storage=place_in(tmp_path).storage_url())
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["cell_id"] == MEZO.id
    log = log_records(tmp_path, MEZO)
    dev = [r["dev_loss"] for r in log if r["type"] == "eval" and r["step"] > 0]
    assert trial.value == min(dev)


def test_finished_cells_are_skipped(protocol, tmp_path):
    assert run([MEZO], protocol, tmp_path) == [MEZO]
    before = published(tmp_path, MEZO).stat().st_mtime_ns
    assert run([MEZO, ADAMEZO], protocol, tmp_path) == [ADAMEZO]
    assert published(tmp_path, MEZO).stat().st_mtime_ns == before


def test_a_cell_published_before_the_study_existed_is_not_run(protocol, tmp_path):
    run([MEZO], protocol, tmp_path)
    (tmp_path / "runs" / "study.db").unlink()  # a study that has never seen the cell
    assert run([MEZO], protocol, tmp_path) == []


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_cell_a_running_trial_holds_is_left_to_its_worker(protocol, tmp_path):
    place = place_in(tmp_path)
    place.runs.mkdir(parents=True)
    study = open_study(place.address(protocol))
    CellPlan(lambda: [], protocol, place).enqueue(study, MEZO)
    study.ask()  # another worker took it (and sends no heartbeat, so it never goes stale)
    assert run([MEZO, ADAMEZO], protocol, tmp_path, max_cells=1) == [ADAMEZO]
    assert not published(tmp_path, MEZO).exists()


def test_two_protocols_cannot_share_one_study(protocol, tmp_path):
    run([MEZO], protocol, tmp_path)
    with pytest.raises(ValueError, match=r"other settings .*n_dev: 8 -> 4"):
        run([ADAMEZO], replace(protocol, n_dev=4), tmp_path)


def interrupt_after_step(monkeypatch, step):
    """Runs raise Interrupt once ``step`` is trained, as a crash would; the real run_finetune."""
    real = loop.run_finetune
    monkeypatch.setattr(
        loop, "run_finetune", lambda c, **k: real(c, callbacks=[stop_at_step(step)], **k)
    )
    return real


def test_an_interrupted_cell_resumes_to_the_same_log(protocol, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run([ADAMEZO], protocol, whole)
    real = interrupt_after_step(monkeypatch, 3)
    cut = tmp_path / "cut"
    with pytest.raises(Interrupt):
        run([ADAMEZO], protocol, cut)
    assert not published(cut, ADAMEZO).exists()
    resumed_steps = []

    def watched(config, **kwargs):
        assert config.resume
        return real(config, callbacks=[lambda r: resumed_steps.append(r["step"])], **kwargs)

    monkeypatch.setattr(loop, "run_finetune", watched)
    assert run([ADAMEZO], protocol, cut) == [ADAMEZO]  # the failed trial's cell, again
    assert resumed_steps[0] == 3  # went on from the checkpoint of step 2, not from the start
    assert train_records(cut, ADAMEZO) == train_records(whole, ADAMEZO)
    assert len(train_records(cut, ADAMEZO)) == 6


def test_a_cell_stopped_before_its_first_checkpoint_starts_over(protocol, tmp_path, monkeypatch):
    real = interrupt_after_step(monkeypatch, 1)
    with pytest.raises(Interrupt):
        run([MEZO], protocol, tmp_path)
    monkeypatch.setattr(loop, "run_finetune", real)
    assert run([MEZO], protocol, tmp_path) == [MEZO]
    assert metrics(tmp_path, MEZO)["steps"] == 6


def test_zero_shot_cell_records_dev_and_test(protocol, tmp_path):
    cell = Cell("sst2", ZERO_SHOT, 0, tags=("main",))
    run([cell], protocol, tmp_path)
    scores = metrics(tmp_path, cell)
    assert 0.0 <= scores["test"]["test_accuracy"] <= 1.0
    assert scores["dev"]["dev_loss"] > 0


def test_mezo_switch_waits_for_the_adamezo_run_it_follows_then_uses_its_norms(protocol, tmp_path):
    switch = Cell("sst2", "mezo-switch", 12, lr=1e-3, tags=("main",), follows=ADAMEZO.id)
    assert run([switch], protocol, tmp_path) == []  # AdaMeZO's log is not there yet
    assert run([ADAMEZO, switch], protocol, tmp_path) == [ADAMEZO, switch]
    config = json.loads(published(tmp_path, switch, "config.json").read_text())
    assert config["norm_schedule"] == str(published(tmp_path, ADAMEZO, "log.jsonl"))
    assert metrics(tmp_path, switch)["steps"] == 6


def test_a_finished_cell_another_table_plans_is_tagged_with_that_table(protocol, tmp_path):
    run([MEZO], protocol, tmp_path)
    planned = [replace(MEZO, tags=("betas",))]
    assert run_cells(lambda: planned, protocol, place_in(tmp_path)) == []
    cell_json = json.loads(published(tmp_path, MEZO, "cell.json").read_text())
    assert cell_json["tags"] == ["betas", "main"]


def test_preset_mu_and_mixed_precision_reach_the_run_config(protocol, tmp_path):
    cell = Cell("sst2", "adamezo", 12, 1e-5, preset="reference", perturbation_scale=1e-2)
    config = finetune_config(cell, protocol, tmp_path / "run", tmp_path)
    assert (config.preset, config.perturbation_scale) == ("reference", 1e-2)
    assert config.mixed_precision == "no" and not config.resume and not config.overwrite
    mixed = finetune_config(replace(MEZO, mixed_precision="bf16"), protocol, tmp_path, tmp_path)
    assert mixed.mixed_precision == "bf16"


def test_a_mixed_precision_cell_trains_under_it(protocol, tmp_path):
    bf16 = replace(MEZO, mixed_precision="bf16", tags=("precision",))
    run([bf16], protocol, tmp_path)
    assert json.loads(published(tmp_path, bf16, "config.json").read_text())["mixed_precision"] == (
        "bf16"
    )


# ----------------------------------------------------------------------- worker processes

WORKER = """
import json
from pathlib import Path
from adamezo.experiments.cells import Protocol, cell_from_json
from adamezo.experiments.workers import Place, run_cells
protocol = Protocol(**json.loads(sys.argv[1]))
cells = [cell_from_json(c) for c in json.loads(sys.argv[2])]
place = Place(Path(sys.argv[3]), Path(sys.argv[4]), heartbeat_interval=1, grace_period=2)
ran = run_cells(lambda: cells, protocol, place, keep_weights=True)
print("ran:", json.dumps([c.id for c in ran]))
"""
TINY_TABLE = [
    Cell("sst2", optimizer, 12, lr, tags=("tiny",))
    for lr in (1e-4, 1e-3, 1e-2)
    for optimizer in ("mezo", "adamezo")
]


def worker(protocol, cells, root, prelude=""):
    table = json.dumps([cell_to_json(c) for c in cells])
    args = [json.dumps(asdict(protocol)), table, root / "runs", root / "results"]
    return python_worker(WORKER, args, prelude)


def ran(output):
    return json.loads(output.rsplit("ran:", 1)[1])


@pytest.mark.slow
def test_two_worker_processes_share_a_table_without_running_a_cell_twice(protocol, tmp_path):
    started = rendezvous(tmp_path / "started")
    workers = [worker(protocol, TINY_TABLE, tmp_path, started) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    mine, theirs = (ran(output) for output in outputs)
    assert not set(mine) & set(theirs), outputs
    assert sorted(mine + theirs) == sorted(c.id for c in TINY_TABLE)
    assert mine and theirs, outputs  # started together, both took part
    study = optuna.load_study(study_name="study", storage=place_in(tmp_path).storage_url())
    complete = [t.user_attrs["cell_id"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.id for c in TINY_TABLE)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for cell in TINY_TABLE:
        assert metrics(tmp_path, cell)["steps"] == 6


@pytest.mark.slow
def test_a_killed_workers_cell_is_resumed_by_another_bit_for_bit(protocol, tmp_path, monkeypatch):
    killed = worker(protocol, [ADAMEZO], tmp_path / "killed", KILL_AT_STEP_3)
    output = killed.communicate(timeout=600)[0]
    assert killed.returncode == -9, output
    place = place_in(tmp_path / "killed", heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="study", storage=place.storage_url())
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # its worker is gone
    assert not published(tmp_path / "killed", ADAMEZO).exists()

    resumed = []
    real = loop.run_finetune
    monkeypatch.setattr(loop, "run_finetune", lambda c, **k: resumed.append(c.resume) or real(c))
    # waits out the grace period, then takes the cell over
    assert run_cells(lambda: [ADAMEZO], protocol, place, keep_weights=True) == [ADAMEZO]
    assert resumed == [True]
    study = optuna.load_study(study_name="study", storage=place.storage_url())
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    monkeypatch.setattr(loop, "run_finetune", real)
    reference = place_in(tmp_path / "reference")
    run_cells(lambda: [ADAMEZO], protocol, reference, keep_weights=True)
    mine, theirs = (p.runs / ADAMEZO.id for p in (place, reference))
    for name in ("checkpoint/trainable.safetensors", "best.safetensors"):
        a, b = load_file(mine / name), load_file(theirs / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name

    assert untimed_log(mine) == untimed_log(theirs)
