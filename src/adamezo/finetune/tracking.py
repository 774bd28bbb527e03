"""Send a run's log records to an experiment tracker (``--report-to``) through accelerate.

A :class:`Tracking` is a callback of the training loop: it gets every record that log.jsonl gets
(train and eval, at their step) and logs its numeric fields as ``train/loss``,
``eval/dev_loss``, ...; at the start it stores the run's settings as hyperparameters and at the
end the final numbers of metrics.json under ``final/``. Only the process that writes the run's
files (rank 0) tracks. TensorBoard's event files go to ``<run>/tracking``; wandb and MLflow go
where their own settings (``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``, ...) send them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from adamezo._checks import check_choice

REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
"""What ``report_to`` accepts."""

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""The package each tracker needs (accelerate drives it, but does not install it)."""

TRACKING = "tracking"
"""The run directory's folder for TensorBoard's event files."""

PROJECT = "adamezo"
"""The wandb project and MLflow experiment when the environment names none."""


def check_report_to(report_to: str) -> None:
    """Raise ValueError unless ``report_to`` is a known tracker whose package is installed."""
    check_choice("report_to", report_to, REPORT_TO)
    package = PACKAGES.get(report_to)
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(
            f"report_to={report_to!r} needs the {package} package, which is not installed: "
            f"pip install {package}" + (" (or adamezo[track])" if package == "tensorboard" else "")
        )


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric fields of a log record, named ``<type>/<field>`` (``step`` is the x axis)."""
    prefix = record.get("type", "log")
    return {
        f"{prefix}/{key}": value
        for key, value in record.items()
        if key not in ("type", "step")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    }


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as trackers take them: scalars kept, lists and dicts as JSON text,
    None as the text "none" (TensorBoard's hparams refuse anything else)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            out[key] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True)
    return out


def final_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of metrics.json, nested sections flattened: ``final/dev_accuracy``, ..."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        inner = value if isinstance(value, dict) else {key: value}
        section = f"{key}_" if isinstance(value, dict) and key == "zero_shot" else ""
        for name, number in inner.items():
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                out[f"final/{section}{name}"] = number
    return out


def _make_tracker(report_to: str, run_dir: Path):
    from accelerate import tracking

    if report_to == "tensorboard":
        return tracking.TensorBoardTracker(TRACKING, run_dir)
    if report_to == "wandb":
        project = os.environ.get("WANDB_PROJECT", PROJECT)
        return tracking.WandBTracker(project, name=run_dir.name)
    return tracking.MLflowTracker(experiment_name=PROJECT, run_name=run_dir.name)


class Tracking:
    """The loop's callback for one tracker: call it with each log record; :meth:`finish` once."""

    def __init__(self, report_to: str, run_dir: Path, config: dict[str, Any]) -> None:
        check_report_to(report_to)
        self.report_to = report_to
        self.tracker = _make_tracker(report_to, Path(run_dir))
        self.tracker.start()
        self.tracker.store_init_configuration(hyperparameters(config))
        self.open = True
        self.last_step = 0

    def __call__(self, record: dict[str, Any]) -> None:
        values = scalars(record)
        if values and self.open:
            self.last_step = int(record["step"])
            self.tracker.log(values, step=self.last_step)

    def finish(self, metrics: dict[str, Any] | None = None) -> None:
        """Log the final numbers (if given) and close the tracker; later calls do nothing."""
        if not self.open:
            return
        if metrics:
            self.tracker.log(final_scalars(metrics), step=int(metrics.get("steps", self.last_step)))
        self.open = False
        self.tracker.finish()


def start_tracking(report_to: str, run_dir: Path, config: dict[str, Any]) -> Tracking | None:
    """A :class:`Tracking` for ``report_to``, or None for ``"none"``."""
    return None if report_to == "none" else Tracking(report_to, run_dir, config)
