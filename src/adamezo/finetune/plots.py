"""The loss plot of a run (``loss.png``): train loss, its moving average, and dev loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adamezo.finetune.records import EvalRecord, Record, TrainRecord


def plot_losses(records: Sequence[Record], path: Path, title: str) -> None:
    """Train loss per step, its moving average, and dev loss at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r.step, r.loss) for r in records if isinstance(r, TrainRecord) and _number(r.loss)]
    dev = [
        (r.step, r.dev_loss) for r in records if isinstance(r, EvalRecord) and _number(r.dev_loss)
    ]
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


def _number(value: Any) -> bool:
    """A loss the plot can show (skipped steps log null)."""
    return isinstance(value, (int, float)) and math.isfinite(value)
