"""A run records the machine its losses come from (torch, processor, instruction set, threads),
and a run resumed on another kind of machine is told it may not end bit for bit as before."""

import hashlib
import json
import warnings
from contextlib import contextmanager

import pytest
import torch

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
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResumedElsewhereWarning)
        train(config(tmp_path, resume=True, **SETTINGS), tokenizer)


def _as_written_before_machines_were_recorded(checkpoint):
    """Drop the machine from ``state.pt`` and bring the manifest's sums up to date."""
    state = torch.load(checkpoint / STATE, weights_only=True)
    del state["machine"]
    torch.save(state, checkpoint / STATE)
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    digest = hashlib.sha256((checkpoint / STATE).read_bytes()).hexdigest()
    size = (checkpoint / STATE).stat().st_size
    manifest["files"][STATE] = {"bytes": size, "sha256": digest}
    (checkpoint / MANIFEST).write_text(json.dumps(manifest))


def test_a_checkpoint_from_before_machines_were_recorded_resumes_without_a_warning(
    tmp_path, tokenizer
):
    _interrupted(tmp_path, tokenizer)
    _as_written_before_machines_were_recorded(tmp_path / "run" / "checkpoint")
    with one_more_thread(), warnings.catch_warnings():  # nothing saved to compare it with
        warnings.simplefilter("error", ResumedElsewhereWarning)
        resumed = train(config(tmp_path, resume=True, **SETTINGS), tokenizer)
    assert resumed.metrics["steps"] == 6
