"""Run one cell: train (or resume) its run directory, complete it by replay, or evaluate the base
model zero-shot; then publish its small files and drop its weights."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adamezo.experiments.cells import ZERO_SHOT, Cell, Protocol
from adamezo.experiments.replay_testing import (
    by_replay,
    evaluate_splits,
    replay_and_test,
    untested_twin,
)
from adamezo.experiments.store import LOG_FILES, METRICS, cell_dir
from adamezo.finetune import loop
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.sweep_runs import resume_or_start

WEIGHTS = ("checkpoint", "best.safetensors", "model")
"""What a run directory holds besides its small files (a full-tuning checkpoint of
SmolLM2-135M is 1 GB)."""


def finetune_config(cell: Cell, protocol: Protocol, run_dir: Path, results: Path) -> FinetuneConfig:
    """The run settings of a trained cell in ``run_dir`` (``results``: where the cell it
    follows, if any, is published), set to resume an earlier attempt's checkpoint there."""
    config = FinetuneConfig(
        model=protocol.model,
        task=cell.task,
        optimizer=cell.optimizer,
        tuning=cell.tuning,
        output_dir=str(run_dir),
        data_dir=protocol.data_dir,
        steps=cell.steps,
        batch_size=protocol.batch_size,
        lr=cell.lr,
        lr_schedule=cell.lr_schedule,
        betas=cell.betas,
        horizon=cell.horizon,
        preset=cell.preset,
        perturbation_scale=cell.perturbation_scale,
        eval_every=cell.eval_every or protocol.eval_every,
        patience=protocol.patience,
        n_train=protocol.n_train,
        n_dev=protocol.n_dev,
        n_test=protocol.n_test,
        max_length=protocol.max_length,
        seed=cell.seed,
        num_layers=protocol.num_layers,
        device=protocol.device,
        save_model=False,
        test=cell.test,
        progress=False,
        mixed_precision=cell.mixed_precision or "no",
        norm_schedule=(
            str(cell_dir(results, cell.follows) / "log.jsonl") if cell.follows else None
        ),
        extra={"study_cell": cell.id, "budget_forward_passes": cell.budget},
    )
    return resume_or_start(config)[0]


def how(cell: Cell, results: Path) -> str:
    """What running the cell does, in words."""
    if cell.optimizer == ZERO_SHOT:
        return "evaluation"
    if by_replay(cell, results):
        return "replay of its untested twin, then test"
    return f"{cell.steps} steps"


def run_cell(
    cell: Cell, protocol: Protocol, runs: Path, results: Path, keep_weights: bool = False
) -> None:
    """Run (or resume, or just publish) one cell in ``runs``/<cell id>, then copy its small files
    to ``results``/cells/<cell id>."""
    run_dir = runs / cell.id
    if not (run_dir / METRICS).exists():
        if cell.optimizer == ZERO_SHOT:
            zero_shot(cell, protocol, run_dir)
        elif by_replay(cell, results):
            twin = cell_dir(results, untested_twin(cell).id)
            replay_and_test(twin, run_dir, protocol.device)
        else:
            loop.run_finetune(finetune_config(cell, protocol, run_dir, results))
    publish(run_dir, cell_dir(results, cell.id), keep_weights)


def zero_shot(cell: Cell, protocol: Protocol, run_dir: Path) -> None:
    """Evaluate the base model on the cell's dev and test splits; config.json and metrics.json
    in ``run_dir``."""
    metrics: dict[str, Any] = {"task": cell.task, "optimizer": ZERO_SHOT, "seed": cell.seed}
    metrics |= evaluate_splits(
        protocol.model,
        cell.task,
        data_dir=protocol.data_dir,
        n_dev=protocol.n_dev,
        n_test=protocol.n_test,
        seed=cell.seed,
        max_length=protocol.max_length,
        num_layers=protocol.num_layers,
        device=protocol.device,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(protocol) | asdict(cell), indent=1))
    (run_dir / METRICS).write_text(json.dumps(metrics, indent=1) + "\n")


def publish(run_dir: Path, target: Path, keep_weights: bool) -> None:
    """Copy the run's small files to ``target``; delete its weights unless ``keep_weights``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in LOG_FILES:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, target / name)
    if not keep_weights:
        for name in WEIGHTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
