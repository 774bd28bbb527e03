"""log.jsonl's format has one owner (adamezo.finetune.records): logs written before it read back,
and every record is written again byte for byte."""

import json

import pytest

from adamezo.finetune.files import RunFileError
from adamezo.finetune.records import (
    EvalRecord,
    StartRecord,
    TrainRecord,
    from_json,
    read_log,
    to_line,
)
from tests.finetune.golden_runs import CASES, GOLDEN


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_log_written_before_the_records_module_reads_back_and_rewrites_byte_for_byte(name):
    path = GOLDEN / name / "log.jsonl"  # committed before the log format had its own module
    records = read_log(path)
    assert "".join(to_line(r) for r in records) == path.read_text()
    kinds = {type(r) for r in records}
    assert kinds >= {TrainRecord, EvalRecord}
    assert (StartRecord in kinds) == (CASES[name]["optimizer"] != "fo-adam")


def test_train_records_know_zeroth_order_fields_and_older_logs_without_later_keys():
    old = {"type": "train", "step": 1, "epoch": 0.5, "loss": 0.7, "lr": 0.1}
    old |= {"projected_grad": 1.5, "update_norm": None, "skipped_steps": 0, "forward_passes": 2}
    record = from_json({**old, "time": 1.0})
    assert record.zeroth_order and record.losses is None and record.step_seconds is None
    assert json.loads(to_line(record)) == {**old, "time": 1.0}
    first_order = from_json({"type": "train", "step": 1, "epoch": 1, "loss": 0.7, "lr": 0.1,
                             "forward_passes": 1, "time": 1.0})  # fmt: skip
    assert not first_order.zeroth_order and "skipped_steps" not in first_order.to_json()


def test_unknown_keys_are_kept_and_written_back():
    line = '{"type": "eval", "step": 2, "dev_loss": 0.5, "dev_f1": 0.1, "best_step": null, '
    line += '"evals_without_improvement": 1, "time": 3.0, "note": "x"}\n'
    record = from_json(json.loads(line))
    assert record.scores == {"dev_loss": 0.5, "dev_f1": 0.1, "note": "x"}
    assert record.best_step is None and record.evals_without_improvement == 1
    assert json.loads(to_line(record)) == json.loads(line)


def test_a_non_finite_loss_is_written_as_null():
    record = TrainRecord(step=1, epoch=1.0, loss=float("nan"), lr=0.1, forward_passes=2, time=0.0)
    assert json.loads(to_line(record))["loss"] is None


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "train", "step": 1}',  # lacks the step's numbers
        '{"type": "lap", "step": 1}',  # an unknown kind
        '{"step": 1}',
        "[1, 2]",
    ],
)
def test_a_line_that_is_no_record_is_named_by_file_and_line(tmp_path, line):
    path = tmp_path / "log.jsonl"
    path.write_text(to_line(StartRecord("ab", [1.0, -1.0])) + line + "\n")
    with pytest.raises(RunFileError, match=r"log\.jsonl:2: bad record"):
        read_log(path)
