"""The files of one run: config, metric log, final metrics, loss plot, checkpoints, model.

Layout of a run directory::

    config.json            the resolved FinetuneConfig
    log.jsonl              one JSON record per train step ("type": "train") and evaluation ("eval")
    metrics.json           final dev/test metrics, forward-pass counts, timing
    loss.png               train loss (and its moving average) and dev loss against steps
    checkpoint/            the latest checkpoint: trainable.safetensors + state.pt
    best.safetensors       trainable weights at the lowest dev loss so far
    model/                 the final model (Hugging Face format) or PEFT adapter, with tokenizer
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CONFIG = "config.json"
LOG = "log.jsonl"
METRICS = "metrics.json"
PLOT = "loss.png"
CHECKPOINT = "checkpoint"
BEST = "best.safetensors"
MODEL = "model"
OWN_ENTRIES = (CONFIG, LOG, METRICS, PLOT, CHECKPOINT, BEST, MODEL, "tracking")


class RunDirectoryError(ValueError):
    """The output directory cannot take this run (it holds another one, or foreign files)."""


class RunDirectory:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ----------------------------------------------------------------- claiming the directory

    def check(self, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
        """Raise RunDirectoryError unless this run may use the directory; writes nothing.

        An existing run is continued only with ``resume`` and the same settings, replaced only
        with ``overwrite``; a non-empty directory that is no run is never touched.
        """
        existing = self.read_config()
        if existing is None:
            if self.path.exists() and any(self.path.iterdir()):
                raise RunDirectoryError(
                    f"output directory {str(self.path)!r} is not empty and holds no adamezo run "
                    f"({CONFIG} missing); choose another directory"
                )
            return
        if resume:
            theirs = _identity(existing)
            changed = sorted(
                k for k in set(theirs) | set(identity) if theirs.get(k) != identity.get(k)
            )
            if changed:
                details = ", ".join(
                    f"{k}: {theirs.get(k)!r} -> {identity.get(k)!r}" for k in changed
                )
                raise RunDirectoryError(
                    f"cannot resume the run in {str(self.path)!r} with different settings "
                    f"({details})"
                )
        elif overwrite:
            foreign = sorted(p.name for p in self.path.iterdir() if not _is_own(p.name))
            if foreign:
                raise RunDirectoryError(
                    f"will not overwrite {str(self.path)!r}: it also holds files adamezo did not "
                    f"write ({', '.join(foreign[:5])})"
                )
        else:
            raise RunDirectoryError(
                f"output directory {str(self.path)!r} already holds a run; pass --resume to "
                "continue it or --overwrite to replace it (or choose another --output-dir)"
            )

    def claim(self, config: dict[str, Any], *, overwrite: bool) -> None:
        """Make the directory this run's (after :meth:`check` passed): clear an old run when
        overwriting, then write the config."""
        if overwrite and self.read_config() is not None:
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self / CONFIG, config)

    def clear(self) -> None:
        for target in self.path.iterdir():
            if not _is_own(target.name):
                continue
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def read_config(self) -> dict[str, Any] | None:
        path = self / CONFIG
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    # --------------------------------------------------------------------------- the log

    def append_log(self, record: dict[str, Any]) -> None:
        with open(self / LOG, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        path = self / LOG
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_log(self, step: int) -> None:
        """Drop records written after ``step`` (by a run that went on past its checkpoint)."""
        kept = [r for r in self.read_log() if r["step"] <= step]
        (self / LOG).write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        _write_json(self / METRICS, metrics)

    # ------------------------------------------------------------------- checkpoints

    def save_checkpoint(self, trainable: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write the checkpoint next to the old one, then swap, so a crash leaves one intact."""
        staging = self / (CHECKPOINT + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        save_file(trainable, str(staging / "trainable.safetensors"))
        torch.save({**state, "rng": rng_state()}, staging / "state.pt")
        if (self / BEST).is_file():
            # The best weights as of this checkpoint: a later improvement that a crash loses must
            # not survive into the resumed run. best.safetensors is only ever replaced, never
            # written in place, so a hard link keeps this version.
            _link_or_copy(self / BEST, staging / BEST)
        old = self / (CHECKPOINT + ".old")
        if (self / CHECKPOINT).exists():
            (self / CHECKPOINT).rename(old)
        staging.rename(self / CHECKPOINT)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The checkpoint's trainable weights and state, or None; only reads, so every process
        of a distributed run may call it."""
        folder = self / CHECKPOINT
        if not (folder / "state.pt").is_file():
            return None
        state = torch.load(folder / "state.pt", weights_only=False)
        return load_file(str(folder / "trainable.safetensors")), state

    def restore_best(self) -> None:
        """Put back the best weights as of the checkpoint (a later improvement that a crash lost
        must not survive into the resumed run); one process only, before resuming."""
        if (self / CHECKPOINT / BEST).is_file():
            _link_or_copy(self / CHECKPOINT / BEST, self / BEST)

    def save_best(self, trainable: dict[str, torch.Tensor]) -> None:
        tmp = self / (BEST + ".tmp")
        save_file(trainable, str(tmp))
        tmp.replace(self / BEST)

    def load_best(self) -> dict[str, torch.Tensor] | None:
        path = self / BEST
        return load_file(str(path)) if path.is_file() else None


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from: torch (CPU and CUDA), Python and NumPy."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def plot_losses(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss per step, its moving average, and dev loss at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if r["type"] == "train"]
    dev = [(r["step"], r["dev_loss"]) for r in records if r["type"] == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="train loss")
        window = max(1, len(losses) // 10)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(
            steps[window - 1 :], smooth, color="tab:blue", label=f"train loss ({window}-step mean)"
        )
    if dev:
        steps, losses = zip(*dev, strict=True)
        ax.plot(steps, losses, "o-", color="tab:orange", label="dev loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _link_or_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(target)


def _is_own(name: str) -> bool:
    """Whether a directory entry is one a run writes (crash leftovers ``*.tmp``/``*.old`` too)."""
    for suffix in (".tmp", ".old"):
        name = name.removesuffix(suffix)
    return name in OWN_ENTRIES


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    from adamezo.finetune.config import ADDED_SETTINGS, NOT_PART_OF_THE_RUN

    config = {**ADDED_SETTINGS, **config}
    return {k: v for k, v in config.items() if k not in NOT_PART_OF_THE_RUN}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
