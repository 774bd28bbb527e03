"""A process of a 2-process run killed with SIGKILL mid-run: the other stops at once with an error
saying a peer is gone, and the job restarted with --resume ends bitwise where an uninterrupted one
would have (gloo, CPU, forked processes as in tests/multiprocess.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from tests.finetune.helpers import config, train, weights
from tests.multiprocess import run_group

pytestmark = pytest.mark.slow

SETTINGS = dict(
    batch_size=5, steps=6, eval_every=3, checkpoint_every=2, lr=1e-2, test=False, save_model=False
)
COLLECTIVE_TIMEOUT = 60.0


def _killed_worker(rank: int, folder: str, tokenizer: Any) -> None:
    """Rank 1 kills itself (SIGKILL) right after step 3; rank 0 writes what it raised."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/rendezvous",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=COLLECTIVE_TIMEOUT),
    )

    def kill_rank_1(record: dict[str, Any]) -> None:
        if rank == 1 and record["type"] == "train" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    started = time.monotonic()
    try:
        train(config(Path(folder) / "cut", **SETTINGS), tokenizer, callbacks=[kill_rank_1])
        outcome = "finished"
    except BaseException as error:
        outcome = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
    waited = time.monotonic() - started
    Path(folder, f"outcome-{rank}.txt").write_text(f"{waited:.1f}\n{outcome}")
    os._exit(0)


def _whole_or_resumed(rank: int, world_size: int, tokenizer: Any, folder: str, resume: bool):
    torch.set_num_threads(1)
    name = "cut" if resume else "whole"
    return weights(train(config(Path(folder) / name, resume=resume, **SETTINGS), tokenizer).model)


def test_a_killed_rank_stops_the_other_with_a_clear_error_and_resume_ends_bitwise(
    tmp_path, tokenizer
):
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_killed_worker, args=(rank, str(tmp_path), tokenizer))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, -signal.SIGKILL]
    waited, outcome = (tmp_path / "outcome-0.txt").read_text().split("\n", 1)
    assert outcome.startswith("PeerLostError: step 4: another process"), outcome
    assert "--resume" in outcome.splitlines()[0]
    assert float(waited) < COLLECTIVE_TIMEOUT  # noticed, not waited out

    whole = run_group(_whole_or_resumed, tokenizer, str(tmp_path), False)
    resumed = run_group(_whole_or_resumed, tokenizer, str(tmp_path), True)
    for a, b in zip(whole, resumed, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
