"""The files of one run: config, metric log, final metrics, loss plot, checkpoints, model.

Layout of a run directory::

    config.json            the resolved FinetuneConfig
    log.jsonl              one JSON record per train step ("type": "train") and evaluation ("eval")
    metrics.json           final dev/test metrics, forward-pass counts, timing
    loss.png               train loss (and its moving average) and dev loss against steps
    checkpoint/            the latest checkpoint: trainable.safetensors, state.pt, the best
                           weights as of it, and manifest.json (written last: marks it complete)
    best.safetensors       trainable weights at the lowest dev loss so far
    model/                 the final model (Hugging Face format) or PEFT adapter, with tokenizer

:class:`RunDirectory` decides whether a run may use a directory (claim, identity) and writes and
reads its config, log and metrics; the checkpoints and best weights are
:class:`adamezo.finetune.checkpoints.Checkpoints`' (``run_dir.checkpoints``). Every file is read
back with errors that name it and say what to do.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from adamezo.finetune.checkpoints import BEST, CHECKPOINT, Checkpoints
from adamezo.finetune.files import (
    CheckpointError,
    RunDirectoryError,
    RunFileError,
    read_json,
    write_json,
    write_text,
    writing,
)
from adamezo.finetune.records import DAMAGED, LOG, Record, read_lines, read_log, to_line

CONFIG = "config.json"
METRICS = "metrics.json"
PLOT = "loss.png"
MODEL = "model"
OWN_ENTRIES = (CONFIG, LOG, METRICS, PLOT, CHECKPOINT, BEST, MODEL, "tracking")
# safetensors' temporary file, which a run killed while saving its best weights left beside them
# before those writes were staged (adamezo.finetune.filemodes.save_tensors).
SAFETENSORS_LEFTOVER = re.compile(r"\.tmp[A-Za-z0-9]{6}")


class RunDirectory:
    """The run directory ``path``: what a run may do with it, and its files."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.checkpoints = Checkpoints(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ----------------------------------------------------------------- claiming the directory

    def check(self, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
        """Raise RunDirectoryError unless this run may use the directory; writes nothing.

        An existing run is continued only with ``resume`` and the same settings, replaced only
        with ``overwrite``; a non-empty directory that is no run is never touched. Whether
        there is anything to resume is :meth:`nothing_to_resume`'s question.
        """
        self.check_writable()
        try:
            existing = self.read_config()
        except RunFileError:
            if overwrite:  # a damaged run is still a run: --overwrite replaces it
                existing = {}
            else:
                raise
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

    def nothing_to_resume(self) -> str | None:
        """Why ``--resume`` cannot continue a run here (no run, no complete checkpoint), or None."""
        if not (self / CONFIG).is_file():
            return (
                f"--resume: there is no run to resume in {str(self.path)!r} (no {CONFIG}); "
                "leave out --resume to start a new run there"
            )
        if self.checkpoints.latest() is None:
            return (
                f"--resume: the run in {str(self.path)!r} has no complete checkpoint to resume "
                "from (it stopped before its first one); start it over with --overwrite"
            )
        return None

    def check_writable(self) -> None:
        """Raise RunDirectoryError unless the directory is (or can be made) a writable folder."""
        where = self.path
        if where.exists() and not where.is_dir():
            raise RunDirectoryError(
                f"output directory {str(where)!r} is a file, not a directory; choose another "
                "--output-dir"
            )
        while not where.exists():  # the nearest existing ancestor must take the new folders
            if where.parent == where:
                break
            where = where.parent
        if where.exists() and not where.is_dir():
            raise RunDirectoryError(
                f"output directory {str(self.path)!r} cannot be created: {str(where)!r} is a file"
            )
        if not os.access(where, os.W_OK | os.X_OK):
            raise RunDirectoryError(
                f"output directory {str(self.path)!r} is not writable: permission denied "
                f"({str(where)!r} is read-only for this user); choose another --output-dir or "
                "fix its permissions"
            )
        # A run replaces (or, resumed, appends to) the files it wrote: each must be writable.
        if where == self.path:
            for entry in sorted(self.path.iterdir()):
                if _is_own(entry.name) and not os.access(entry, os.W_OK):
                    raise RunDirectoryError(
                        f"{str(entry)!r} in output directory {str(self.path)!r} is not writable "
                        "for this user: permission denied; fix its permissions or choose another "
                        "--output-dir"
                    )

    def claim(self, config: dict[str, Any], *, overwrite: bool) -> None:
        """Make the directory this run's (after :meth:`check` passed): clear an old run when
        overwriting, then write the config."""
        if overwrite and (self / CONFIG).exists():
            self.clear()
        with self._writing(self / CONFIG):
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self / CONFIG, config)

    def clear(self) -> None:
        for target in self.path.iterdir():
            if not _is_own(target.name):
                continue
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def read_config(self) -> dict[str, Any] | None:
        """The run's config.json, None when there is none; RunFileError when it is damaged."""
        path = self / CONFIG
        if not path.is_file():
            return None
        data = read_json(path, "restore it, or start the run over with --overwrite")
        if not isinstance(data, dict):
            raise RunFileError(
                f"{path} does not hold a JSON object; restore it, or start the run over with "
                "--overwrite"
            )
        return data

    def read_metrics(self) -> dict[str, Any] | None:
        """The run's metrics.json, None when the run has not finished; RunFileError if damaged."""
        path = self / METRICS
        if not path.is_file():
            return None
        data = read_json(path, "finish the run again with --resume to rewrite it")
        if not isinstance(data, dict):
            raise RunFileError(f"{path} does not hold a JSON object; rewrite it with --resume")
        return data

    # --------------------------------------------------------------------------- the log

    def append_log(self, record: Record) -> None:
        """Append one record as a line of strict JSON (NaN and ±inf become null)."""
        line = to_line(record)
        with self._writing(self / LOG), open(self / LOG, "a") as f:
            f.write(line)

    def read_log(self, *, cut_tail_ok: bool = False, advice: str = DAMAGED) -> list[Record]:
        """The log's records (see :func:`adamezo.finetune.records.read_log`)."""
        return read_log(self / LOG, cut_tail_ok=cut_tail_ok, advice=advice)

    def truncate_log(self, step: int) -> None:
        """Drop records written after ``step`` (by a run that went on past its checkpoint) and the
        end record, and check that the log reaches ``step``; the records kept stay byte for
        byte."""
        lines = read_lines(self / LOG, cut_tail_ok=True)
        if step > 0 and not any(r.type == "train" and r.step == step for _, r in lines):
            raise CheckpointError(
                f"{self / LOG} has no record of step {step}, where the checkpoint stands: the log "
                "and the checkpoint are not from the same run; restore the log or start the run "
                "over with --overwrite"
            )
        # The end record goes too: the resumed run writes its own when it finishes.
        text = "".join(line for line, r in lines if r.step <= step and r.type != "end")
        with self._writing(self / LOG):
            write_text(self / LOG, text)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        with self._writing(self / METRICS):
            write_json(self / METRICS, metrics)

    # ------------------------------------------------------------------- checkpoints

    def export_model(self, tuned: Any, tokenizer: Any) -> None:
        """Write the final model or adapter to ``model/`` (a failed write: RunWriteError)."""
        with self._writing(self / MODEL):
            tuned.export(self / MODEL, tokenizer)

    def _writing(self, target: Path) -> AbstractContextManager[None]:
        return writing(target, self.checkpoints.latest)


def _is_own(name: str) -> bool:
    """Whether a directory entry is one a run writes (crash leftovers ``*.tmp``/``*.old`` too)."""
    if SAFETENSORS_LEFTOVER.fullmatch(name):
        return True
    for suffix in (".tmp", ".old"):
        name = name.removesuffix(suffix)
    return name in OWN_ENTRIES


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    from adamezo.finetune.config import ADDED_SETTINGS, NOT_PART_OF_THE_RUN

    config = {**ADDED_SETTINGS, **config}
    return {k: v for k, v in config.items() if k not in NOT_PART_OF_THE_RUN}
