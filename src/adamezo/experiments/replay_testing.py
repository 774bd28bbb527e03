"""Complete a finished run made without a test evaluation by replay: its kept weights rebuilt
bitwise from its log (``adamezo replay``), checked against the dev loss it logged, then tested,
so that a tested cell whose untested twin has run trains nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from adamezo.experiments.cells import ZERO_SHOT, Cell
from adamezo.experiments.store import METRICS, finished
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.evaluate import evaluate_model
from adamezo.finetune.replay import replay_run
from adamezo.optim.registry import optimizer_entry

DEV_LOSS_TOLERANCE = 1e-5
"""How far the replayed weights' dev loss may be from the logged one (relative): evaluation
batches are the same, so only summation order inside the kernels can differ."""


def untested_twin(cell: Cell) -> Cell:
    """The same run without a test evaluation."""
    return replace(cell, test=False)


def by_replay(cell: Cell, results: Path) -> bool:
    """Whether the cell is completed by replaying its finished, untested twin: a tested cell of
    a zeroth-order optimizer (only those replay) whose twin is published in ``results``."""
    if not cell.test or cell.optimizer == ZERO_SHOT:
        return False
    return optimizer_entry(cell.optimizer).zeroth_order and finished(results, untested_twin(cell))


def evaluate_splits(model: str, task: str, **settings: Any) -> dict[str, dict[str, Any]]:
    """The dev and test metrics of ``model`` (``evaluate_model``'s keys of each split)."""
    scores = {}
    for split in ("dev", "test"):
        result = evaluate_model(model, task, split=split, progress=False, **settings)
        scores[split] = {k: v for k, v in result.items() if k.startswith(f"{split}_")}
    return scores


def replay_and_test(twin_dir: Path, run_dir: Path, device: str = "cpu") -> None:
    """Complete a finished run made without a test evaluation: rebuild the weights it kept (its
    best step) from its log, check their dev loss against the logged one, evaluate them on the
    test split, and write the twin's files plus the test metrics to ``run_dir``. Raises
    RuntimeError if the replayed weights are not the run's (and writes no metrics.json)."""
    config = FinetuneConfig.from_dict(json.loads((twin_dir / "config.json").read_text()))
    metrics = json.loads((twin_dir / METRICS).read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=run_dir) as scratch:
        # Unverified: the study's earlier runs predate the end record's weights hash, and the
        # dev loss check below is this function's own proof that the weights are the run's.
        replayed = replay_run(twin_dir, Path(scratch) / "model", device=device, verify=False)
        del replayed.model  # the exported copy is what gets evaluated
        scores = evaluate_splits(
            str(Path(scratch) / "model"),
            config.task,
            data_dir=config.data_dir,
            n_dev=config.n_dev,
            n_test=config.n_test,
            seed=config.seed,
            batch_size=config.eval_batch_size,
            max_length=config.max_length,
            dtype=config.dtype,
            device=device,
            mixed_precision=config.mixed_precision,
        )
    logged, rebuilt = metrics["dev"]["dev_loss"], scores["dev"]["dev_loss"]
    if abs(rebuilt - logged) > DEV_LOSS_TOLERANCE * abs(logged):
        raise RuntimeError(
            f"{twin_dir}: the replayed weights of step {replayed.step} have dev loss {rebuilt!r}, "
            f"the run logged {logged!r}: they are not the run's weights"
        )
    for name in ("config.json", "log.jsonl"):
        shutil.copyfile(twin_dir / name, run_dir / name)
    metrics["test"] = scores["test"]
    metrics["tested_by_replay"] = {
        "run": twin_dir.name,
        "step": replayed.step,
        "dev_loss_logged": logged,
        "dev_loss_replayed": rebuilt,
    }
    (run_dir / METRICS).write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
