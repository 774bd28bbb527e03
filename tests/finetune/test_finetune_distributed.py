"""The fine-tuning loop on 2 processes (gloo, CPU, forked: see tests/multiprocess.py): the run
directory is checked, claimed, written and resumed safely, and every process takes the same
decisions. The batch of 5 splits 3 + 2, so the shards are uneven."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from adamezo.collectives import DistributedStepError
from adamezo.finetune.objective import EvalResult, TaskObjective
from adamezo.finetune.rundir import CONFIG, RunDirectory
from tests.finetune.helpers import (
    Interrupt,
    config,
    stop_at_step,
    tiny_llama,
    train,
    untimed_log,
    weights,
)
from tests.multiprocess import run_group

pytestmark = pytest.mark.slow

SETTINGS = dict(
    batch_size=5, steps=6, eval_every=3, checkpoint_every=2, lr=1e-2, test=False, save_model=False
)


STOP = 5
"""The step a run is interrupted at in these tests: its last checkpoint is step 4."""


def _resume_worker(rank: int, world_size: int, tokenizer: Any, folder: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    whole = train(config(Path(folder) / "whole", **SETTINGS), tokenizer)
    with contextlib.suppress(Interrupt):
        train(config(Path(folder) / "cut", **SETTINGS), tokenizer, callbacks=[stop_at_step(STOP)])
    resumed = train(config(Path(folder) / "cut", resume=True, **SETTINGS), tokenizer)
    return {"whole": weights(whole.model), "resumed": weights(resumed.model)}


def test_a_resumed_two_process_run_ends_bitwise_identical_to_an_uninterrupted_one(
    tmp_path, tokenizer
):
    from safetensors.torch import load_file

    results = run_group(_resume_worker, tokenizer, str(tmp_path))
    for r in results:
        whole, resumed = r["whole"], r["resumed"]
        assert whole.keys() == resumed.keys()
        assert all(torch.equal(whole[k], resumed[k]) for k in whole)
        assert all(torch.equal(whole[k], results[0]["whole"][k]) for k in whole)
    # The last checkpoints (before keep-best restores the best weights) agree and have trained.
    last = [
        load_file(tmp_path / run / "run" / "checkpoint" / "trainable.safetensors")
        for run in ("whole", "cut")
    ]
    start = weights(tiny_llama(tokenizer, dtype=torch.float32))
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])
    assert any(not torch.equal(start[k], last[0][k]) for k in last[0])
    assert untimed_log(tmp_path / "cut" / "run") == untimed_log(tmp_path / "whole" / "run")


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(path.relative_to(folder)): (
            path.stat().st_ino,
            path.stat().st_mtime_ns,
            path.stat().st_size,
        )
        for path in [folder, *folder.rglob("*")]
    }


def test_a_process_other_than_rank_0_resumes_without_writing_to_the_run_directory(
    tmp_path, tokenizer, monkeypatch
):
    cfg = config(tmp_path, **SETTINGS)
    with pytest.raises(Interrupt):
        train(cfg, tokenizer, callbacks=[stop_at_step(STOP)])
    assert (tmp_path / "run" / "checkpoint" / "best.safetensors").is_file()
    before = _snapshot(tmp_path / "run")
    # Rank 1 of 2 (no process group: its steps do not communicate).
    monkeypatch.setattr("adamezo.distributed.rank", lambda: 1)
    monkeypatch.setattr("adamezo.distributed.world_size", lambda: 2)
    result = train(config(tmp_path, resume=True, **SETTINGS), tokenizer)
    assert result.metrics["steps"] == SETTINGS["steps"]
    assert _snapshot(tmp_path / "run") == before


def _local_disk_worker(rank: int, world_size: int, tokenizer: Any, folder: str) -> str:
    torch.set_num_threads(1)
    # Rank 1's machine does not see rank 0's disk: its copy of the directory is empty.
    cfg = config(Path(folder) / ("shared" if rank == 0 else "local"), resume=True, **SETTINGS)
    with pytest.raises(DistributedStepError) as error:
        train(cfg, tokenizer)
    return str(error.value)


def test_resuming_where_only_rank_0_sees_the_checkpoint_fails_on_every_process(tmp_path, tokenizer):
    with pytest.raises(Interrupt):
        train(config(tmp_path / "shared", **SETTINGS), tokenizer, callbacks=[stop_at_step(STOP)])
    errors = run_group(_local_disk_worker, tokenizer, str(tmp_path), collective_timeout=20.0)
    assert all("step resumed from" in e and "filesystem" in e for e in errors)


def _slow_check_worker(rank: int, world_size: int, tokenizer: Any, folder: str) -> int:
    torch.set_num_threads(1)
    cfg = config(Path(folder), **{**SETTINGS, "steps": 2})
    if rank == 1:
        check = RunDirectory.check

        def slow_check(self: RunDirectory, *args: Any, **kwargs: Any) -> None:
            # Lag behind rank 0 until it claims the directory (it must not) or 3 s pass.
            deadline = time.monotonic() + 3.0
            while not (self / CONFIG).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            check(self, *args, **kwargs)

        RunDirectory.check = slow_check  # a forked process: nothing leaks into the tests
    return train(cfg, tokenizer).metrics["steps"]


def test_rank_0_claims_the_run_directory_only_after_every_process_checked_it(tmp_path, tokenizer):
    results = run_group(_slow_check_worker, tokenizer, str(tmp_path), collective_timeout=20.0)
    assert results == [2, 2]


def _disagreeing_dev_worker(rank: int, world_size: int, tokenizer: Any, folder: str) -> Any:
    torch.set_num_threads(1)
    if rank == 1:
        evaluate = TaskObjective.evaluate
        calls = []

        def improving(self: TaskObjective, *args: Any, **kwargs: Any) -> EvalResult:
            # As if this process's hardware summed differently: a lower dev loss every time.
            result = evaluate(self, *args, **kwargs)
            calls.append(None)
            result.loss -= 1e-3 * len(calls)
            return result

        TaskObjective.evaluate = improving
    # lr 0 keeps rank 0's dev loss constant: it stops after `patience` evaluations.
    # Exact steps at lr 0 keep each rank's dev loss bitwise constant.
    overrides = {"lr": 0.0, "eval_every": 1, "patience": 2, "perturbation": "exact"}
    cfg = config(Path(folder), **{**SETTINGS, **overrides})
    metrics = train(cfg, tokenizer).metrics
    return metrics["steps"], metrics["stopped_early"], metrics["best_step"], metrics["dev"]


def test_early_stopping_and_the_best_step_follow_rank_0_when_dev_losses_differ(tmp_path, tokenizer):
    results = run_group(_disagreeing_dev_worker, tokenizer, str(tmp_path), collective_timeout=20.0)
    assert results[0][:3] == (2, True, 0)
    assert results[1] == results[0]
