"""What a run shows while it works: the progress bar, its figures, and messages above it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from adamezo.finetune.records import EvalRecord, TrainRecord

# tqdm's default shows s/step once a step takes over a second; the rate stays in steps/s here.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


class NoBar:
    """The progress bar of a run that shows none (``--no-progress``, or not rank 0)."""

    def update(self, n: int) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def write(self, message: str) -> None: ...
    def close(self) -> None: ...


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None: ...


def bar_stream() -> Any:
    """Where the training bar draws: stderr on a terminal, else nowhere (redraws would fill a
    log file with carriage returns)."""
    return sys.stderr if sys.stderr.isatty() else _Discard()


def progress_bar(total: int, initial: int, desc: str, *, enabled: bool) -> Any:
    """A tqdm bar over ``total`` steps that counts steps per second, or a :class:`NoBar`."""
    if not enabled:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(
        file=bar_stream(),  # a log file gets the messages, not the bar's redraws
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        dynamic_ncols=True,
        bar_format=BAR_FORMAT,
    )


def printer(enabled: bool) -> Callable[[str], None]:
    """A function that writes a message to stderr above the bar (or does nothing)."""
    if not enabled:
        return lambda _message: None
    from tqdm.auto import tqdm

    return lambda message: tqdm.write(message, file=sys.stderr)


def postfix(record: TrainRecord) -> dict[str, str]:
    """The figures the bar shows after a step."""
    out = {"loss": f"{record.loss:.4f}"}
    if record.projected_grad is not None:
        out["pgrad"] = f"{record.projected_grad:+.3g}"
    out["fwd"] = str(record.forward_passes)
    return out


def describe_eval(record: EvalRecord) -> str:
    """One line for a dev evaluation: its loss and metrics."""
    parts = [f"dev loss {record.dev_loss:.4f}"]
    for key in ("dev_accuracy", "dev_f1", "dev_exact_match", "dev_reward"):
        if key in record.scores:
            parts.append(f"{key.removeprefix('dev_')} {record.scores[key]:.4f}")
    return f"step {record.step}: " + ", ".join(parts)
