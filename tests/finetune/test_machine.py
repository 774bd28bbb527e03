"""A run records the machine its losses come from (torch, transformers, processor, instruction set,
threads), and a run resumed on another kind of machine is told it may not end bit for bit as
before."""

import hashlib
import json
import warnings
from contextlib import contextmanager

import pytest
import torch
import transformers

from adamezo.finetune import ResumedElsewhereWarning
from adamezo.finetune.checkpoints import MANIFEST, STATE
from adamezo.finetune.machine import machine_changes, machine_fingerprint
from adamezo.finetune.records import StartRecord, from_json
from tests.finetune.helpers import Interrupt, config, stop_at_step, train

SETTINGS = dict(steps=6, eval_every=3, checkpoint_every=4)  # the last checkpoint is step 4


def test_the_cpu_fingerprint_names_torch_the_instruction_set_and_the_thread_count():
    found = machine_fingerprint("cpu")
    assert found["torch"] == torch.__version__
    assert found["instruction_set"] == torch.backends.cpu.get_cpu_capability()
    assert found["threads"] == torch.get_num_threads()
    assert found["processor"]
    assert json.loads(json.dumps(found)) == found  # what a log line and a checkpoint hold


def test_the_fingerprint_names_the_transformers_release_that_writes_the_forward_pass():
    assert machine_fingerprint("cpu")["transformers"] == transformers.__version__


def test_machine_changes_names_each_key_that_differs_and_nothing_else():
    before = {"torch": "2.13.0", "threads": 2}
    assert machine_changes(before, dict(before)) == []
    after = {"torch": "2.13.0", "threads": 1, "instruction_set": "AVX2"}
    assert machine_changes(before, after) == ["threads: 2 -> 1", "instruction_set: - -> AVX2"]


def test_a_zeroth_order_runs_start_record_holds_its_machine(tmp_path, tokenizer):
    run = train(config(tmp_path), tokenizer).run_dir
    start = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert start["type"] == "start"
    assert start["machine"] == machine_fingerprint("cpu")


def test_a_start_record_written_before_machines_were_recorded_reads_back_unchanged():
    older = {"type": "start", "step": 0, "replay_format": 1, "base_sha256": "ab", "passes": [1.0]}
    record = from_json(older)
    assert isinstance(record, StartRecord) and record.machine is None
    assert record.to_json() == older


def _interrupted(tmp_path, tokenizer):
    with pytest.raises(Interrupt):
        train(config(tmp_path, **SETTINGS), tokenizer, callbacks=[stop_at_step(5)])


@contextmanager
def one_more_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def test_resuming_with_another_thread_count_warns_naming_it_and_finishes(tmp_path, tokenizer):
    _interrupted(tmp_path, tokenizer)
    with one_more_thread() as threads:
        match = f"threads: {threads} -> {threads + 1}"
        with pytest.warns(ResumedElsewhereWarning, match=match):
            resumed = train(config(tmp_path, resume=True, **SETTINGS), tokenizer)
    assert resumed.metrics["steps"] == 6


def test_resuming_on_the_same_machine_does_not_warn(tmp_path, tokenizer):
    _interrupted(tmp_path, tokenizer)
    _resumes_without_a_warning(tmp_path, tokenizer)


def _rewrite_machine(checkpoint, change):
    """Apply ``change`` to the machine ``state.pt`` records and bring the manifest's sums up to
    date, as a checkpoint written elsewhere or by an older adamezo would be."""
    state = torch.load(checkpoint / STATE, weights_only=True)
    change(state)
    torch.save(state, checkpoint / STATE)
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    digest = hashlib.sha256((checkpoint / STATE).read_bytes()).hexdigest()
    size = (checkpoint / STATE).stat().st_size
    manifest["files"][STATE] = {"bytes": size, "sha256": digest}
    (checkpoint / MANIFEST).write_text(json.dumps(manifest))


def _resumes_without_a_warning(tmp_path, tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResumedElsewhereWarning)
        resumed = train(config(tmp_path, resume=True, **SETTINGS), tokenizer)
    assert resumed.metrics["steps"] == 6


def test_a_checkpoint_from_before_machines_were_recorded_resumes_without_a_warning(
    tmp_path, tokenizer
):
    _interrupted(tmp_path, tokenizer)
    _rewrite_machine(tmp_path / "run" / "checkpoint", lambda state: state.pop("machine"))
    with one_more_thread():  # nothing saved to compare it with
        _resumes_without_a_warning(tmp_path, tokenizer)


def test_a_checkpoint_that_records_no_transformers_release_resumes_without_a_warning(
    tmp_path, tokenizer
):
    _interrupted(tmp_path, tokenizer)
    _rewrite_machine(
        tmp_path / "run" / "checkpoint", lambda state: state["machine"].pop("transformers")
    )
    _resumes_without_a_warning(tmp_path, tokenizer)


def test_resuming_under_another_transformers_release_warns_naming_it(tmp_path, tokenizer):
    _interrupted(tmp_path, tokenizer)
    _rewrite_machine(
        tmp_path / "run" / "checkpoint",
        lambda state: state["machine"].update(transformers="5.0.0"),
    )
    match = f"transformers: 5.0.0 -> {transformers.__version__}"
    with pytest.warns(ResumedElsewhereWarning, match=match):
        resumed = train(config(tmp_path, resume=True, **SETTINGS), tokenizer)
    assert resumed.metrics["steps"] == 6
