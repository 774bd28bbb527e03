"""What a published cell says: finished or not, its best dev loss after training began, and the
curves the report plots."""

import json

import pytest

from adamezo.experiments.cells import Cell
from adamezo.experiments.store import (
    cell_record,
    finished,
    finished_records,
    matching,
    remember,
)

CELL = Cell("sst2", "hizoo", budget=12, lr=1e-3, tags=("main",))


def _publish(results, records, metrics=True):
    remember(CELL, results)
    folder = results / "cells" / CELL.id
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if metrics:
        (folder / "metrics.json").write_text(json.dumps({"dev": {"dev_loss": 0.4}}))
    return folder


def _train(step, norm):
    record = {"type": "train", "step": step, "epoch": 0.0, "loss": 0.7, "lr": 1e-3}
    zeroth_order = {"projected_grad": 1.0, "update_norm": norm, "skipped_steps": 0}
    return record | zeroth_order | {"forward_passes": 3 * step, "time": 0.0}


def _eval(step, loss):
    return {"type": "eval", "step": step, "dev_loss": loss, "time": 0.0}


LOG = [_eval(0, 0.1), _train(1, 2.0), _eval(1, 0.5), _train(2, 1.0), _eval(2, 0.4)]


def test_a_cell_without_metrics_is_unfinished_whatever_its_log(tmp_path):
    folder = _publish(tmp_path, LOG, metrics=False)
    assert not finished(tmp_path, CELL)
    record = cell_record(CELL, folder)
    assert record["id"] == CELL.id and record["finished"] is False
    assert "best_dev_loss" not in record and "metrics" not in record


def test_the_best_dev_loss_leaves_out_the_zero_shot_evaluation(tmp_path):
    folder = _publish(tmp_path, LOG)
    assert finished(tmp_path, CELL) and finished(tmp_path, CELL.id)
    record = cell_record(CELL, folder)
    assert record["finished"] and record["best_dev_loss"] == 0.4  # not step 0's 0.1
    assert record["steps"] == 4 and record["metrics"] == {"dev": {"dev_loss": 0.4}}


def test_finished_records_carry_the_dev_curve_in_forward_passes_and_the_update_norms(tmp_path):
    _publish(tmp_path, LOG)
    (record,) = finished_records(tmp_path)
    assert record["curve"] == [(0, 0.1), (3, 0.5), (6, 0.4)]  # HiZOO: 3 passes a step
    assert record["update_norms"] == [(1, 2.0), (2, 1.0)]


RECORDS = [
    {"id": "a", "task": "sst2", "seed": 0, "lr": 1e-3, "tags": ["lr"], "finished": True},
    {"id": "b", "task": "trec", "seed": 0, "lr": 1e-3, "tags": ["lr", "main"], "finished": True},
    {"id": "c", "task": "sst2", "seed": 1, "lr": 1e-3, "tags": ["main"], "finished": False},
    {"id": "d", "task": "sst2", "seed": 0, "lr": 1e-3, "finished": True, "preset": "reference"},
]


def _ids(records):
    return [r["id"] for r in records]


def test_matching_keeps_the_order_and_ands_the_tag_with_every_field():
    assert _ids(matching(RECORDS)) == ["a", "b", "c", "d"]
    assert _ids(matching(RECORDS, tag="main")) == ["b", "c"]
    assert _ids(matching(RECORDS, task="sst2", seed=0)) == ["a", "d"]
    assert _ids(matching(RECORDS, tag="lr", task="sst2", seed=0)) == ["a"]
    assert _ids(matching(RECORDS, tag="main", finished=True)) == ["b"]
    assert matching(RECORDS, tag="seeds") == []


def test_matching_counts_a_left_out_optional_field_as_none():
    assert _ids(matching(RECORDS, preset="reference")) == ["d"]
    assert _ids(matching(RECORDS, preset=None)) == ["a", "b", "c"]


def test_matching_refuses_a_field_no_record_has():
    with pytest.raises(TypeError, match="unknown record fields \\['schedule'\\]"):
        matching(RECORDS, schedule="constant")  # the field is lr_schedule
    with pytest.raises(TypeError, match="tags"):
        matching(RECORDS, tags=["lr"])  # tag= takes one tag
