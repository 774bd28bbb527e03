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

A checkpoint is written into ``checkpoint.tmp``, flushed to disk, and only then swapped in
(``checkpoint`` -> ``checkpoint.old``, ``checkpoint.tmp`` -> ``checkpoint``): whenever the process
dies, one of the three holds a complete checkpoint, and resuming takes the newest complete one.
Every file is read back with errors that name it and say what to do; ``state.pt`` is loaded with
``torch.load(weights_only=True)``, so a run directory never executes code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adamezo.finetune.files import (
    CheckpointError,
    RunDirectoryError,
    RunFileError,
    copy_file,
    fsync,
    fsync_dir,
    read_json,
    write_json,
    write_text,
    writing,
)
from adamezo.finetune.records import LOG, Record, read_lines, read_log, to_line

CONFIG = "config.json"
METRICS = "metrics.json"
PLOT = "loss.png"
CHECKPOINT = "checkpoint"
BEST = "best.safetensors"
MODEL = "model"
OWN_ENTRIES = (CONFIG, LOG, METRICS, PLOT, CHECKPOINT, BEST, MODEL, "tracking")

TRAINABLE = "trainable.safetensors"
STATE = "state.pt"
MANIFEST = "manifest.json"
"""Written last into a checkpoint: what it holds, file sizes and SHA-256 sums. Its presence marks
the checkpoint complete."""


class RunDirectory:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

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
        if self.latest_checkpoint() is None:
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
                f"output directory {str(self.path)!r} is not writable ({str(where)!r} is "
                "read-only for this user); choose another --output-dir or fix its permissions"
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

    def read_log(self, *, cut_tail_ok: bool = False) -> list[Record]:
        """The log's records (see :func:`adamezo.finetune.records.read_log`)."""
        return read_log(self / LOG, cut_tail_ok=cut_tail_ok)

    def truncate_log(self, step: int) -> None:
        """Drop records written after ``step`` (by a run that went on past its checkpoint), and
        check that the log reaches ``step``; the records kept stay byte for byte."""
        lines = read_lines(self / LOG, cut_tail_ok=True)
        if step > 0 and not any(r.type == "train" and r.step == step for _, r in lines):
            raise CheckpointError(
                f"{self / LOG} has no record of step {step}, where the checkpoint stands: the log "
                "and the checkpoint are not from the same run; restore the log or start the run "
                "over with --overwrite"
            )
        text = "".join(line for line, record in lines if record.step <= step)
        with self._writing(self / LOG):
            write_text(self / LOG, text)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        with self._writing(self / METRICS):
            write_json(self / METRICS, metrics)

    # ------------------------------------------------------------------- checkpoints

    def save_checkpoint(self, trainable: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write the checkpoint into ``checkpoint.tmp``, flush it to disk, mark it complete, then
        swap it in; a crash at any point leaves a complete checkpoint (see the module docstring).

        A failed write (a full disk) raises :class:`RunWriteError` and leaves the last complete
        checkpoint as it was.
        """
        staging = self / (CHECKPOINT + ".tmp")
        old = self / (CHECKPOINT + ".old")
        current = self / CHECKPOINT
        step = int(state.get("loop", {}).get("step", -1))
        try:
            with self._writing(staging):
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                save_file(trainable, str(staging / TRAINABLE))
                with open(staging / STATE, "wb") as f:
                    torch.save({**state, "rng": rng_state()}, f)
                files = [TRAINABLE, STATE]
                if (self / BEST).is_file():
                    # The best weights as of this checkpoint: a later improvement that a crash
                    # loses must not survive into the resumed run. A copy, not a hard link, so
                    # that damage to one file is not damage to both.
                    shutil.copyfile(self / BEST, staging / BEST)
                    files.append(BEST)
                for name in files:
                    fsync(staging / name)
                manifest = {
                    "format": 1,
                    "step": step,
                    "files": {name: _file_summary(staging / name) for name in files},
                    "tensors": tensor_summary(trainable),
                }
                write_json(staging / MANIFEST, manifest)
                fsync_dir(staging)
        except BaseException:
            if _manifest(staging) is None:  # incomplete: free its space, keep the last one
                shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._writing(current):
            if current.exists():
                shutil.rmtree(old, ignore_errors=True)
                current.rename(old)
            staging.rename(current)
            fsync_dir(self.path)
            shutil.rmtree(old, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint among ``checkpoint``, ``checkpoint.old`` and
        ``checkpoint.tmp`` (one left by a crash mid-swap), or None; only reads."""
        found: list[tuple[int, int, Path]] = []
        for rank, name in enumerate((CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp")):
            folder = self / name
            manifest = _manifest(folder)
            if manifest is not None:
                found.append((int(manifest["step"]), -rank, folder))
            elif name != CHECKPOINT + ".tmp" and (folder / STATE).is_file():
                # Written before checkpoints had manifests: complete once it was renamed into
                # place; its step is unknown without loading it, so it ranks below the others.
                found.append((-1, -rank, folder))
        return max(found)[2] if found else None

    def settle_checkpoint(self) -> None:
        """Make the newest complete checkpoint ``checkpoint`` again after a crash mid-swap, and
        remove the leftovers; one process only, after every process has loaded it."""
        latest = self.latest_checkpoint()
        if latest is None:
            return
        current = self / CHECKPOINT
        with self._writing(current):
            if latest != current:
                shutil.rmtree(current, ignore_errors=True)  # older or incomplete
                latest.rename(current)
                fsync_dir(self.path)
            for name in (CHECKPOINT + ".tmp", CHECKPOINT + ".old"):
                shutil.rmtree(self / name, ignore_errors=True)

    def load_checkpoint(
        self, expected: dict[str, torch.Tensor] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest complete checkpoint's trainable weights and state, or None; only reads, so
        every process of a distributed run may call it.

        The files are checked against the manifest (sizes, SHA-256), the weights against
        ``expected`` (names, shapes, dtypes of the trainable tensors), and ``state.pt`` is loaded
        without executing pickled code. Any defect raises :class:`CheckpointError` naming the
        file.
        """
        folder = self.latest_checkpoint()
        if folder is None:
            return None
        manifest = _manifest(folder)
        if manifest is not None:
            for name, summary in manifest["files"].items():
                if _file_summary(folder / name) != summary:
                    raise CheckpointError(
                        f"{folder / name} is damaged (its size or SHA-256 differs from "
                        f"{folder / MANIFEST}); {_checkpoint_advice(folder)}"
                    )
        try:
            trainable = load_file(str(folder / TRAINABLE))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(
                f"{folder / TRAINABLE} cannot be read ({error}); {_checkpoint_advice(folder)}"
            ) from error
        state = load_state(folder / STATE, advice=_checkpoint_advice(folder))
        if manifest is not None and tensor_summary(trainable) != manifest["tensors"]:
            raise CheckpointError(
                f"{folder / TRAINABLE} does not hold the tensors {folder / MANIFEST} lists; "
                f"{_checkpoint_advice(folder)}"
            )
        if expected is not None:
            check_tensors(trainable, expected, folder / TRAINABLE)
        step = state.get("loop", {}).get("step") if isinstance(state, dict) else None
        if manifest is not None and step != manifest["step"]:
            raise CheckpointError(
                f"{folder / STATE} is at step {step}, {folder / MANIFEST} says "
                f"{manifest['step']}; {_checkpoint_advice(folder)}"
            )
        return trainable, state

    def restore_best(self, folder: Path | None = None) -> None:
        """Put back the best weights as of the checkpoint (a later improvement that a crash lost
        must not survive into the resumed run); one process only, before resuming."""
        folder = folder or self.latest_checkpoint()
        if folder is not None and (folder / BEST).is_file():
            with self._writing(self / BEST):
                copy_file(folder / BEST, self / BEST)

    def save_best(self, trainable: dict[str, torch.Tensor]) -> None:
        tmp = self / (BEST + ".tmp")
        try:
            with self._writing(self / BEST):
                save_file(trainable, str(tmp))
                tmp.replace(self / BEST)
        finally:
            tmp.unlink(missing_ok=True)

    def load_best(self) -> dict[str, torch.Tensor] | None:
        path = self / BEST
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise RunFileError(
                f"{path} cannot be read ({error}); the best weights are lost: rerun with "
                "--no-keep-best, or take the checkpoint's weights (adamezo eval --weights "
                "checkpoint)"
            ) from error

    def export_model(self, tuned: Any, tokenizer: Any) -> None:
        """Write the final model or adapter to ``model/`` (a failed write: RunWriteError)."""
        with self._writing(self / MODEL):
            tuned.export(self / MODEL, tokenizer)

    def _writing(self, target: Path) -> AbstractContextManager[None]:
        return writing(target, self.latest_checkpoint)


def tensor_summary(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Name -> shape and dtype, the identity a checkpoint's weights are checked against."""
    return {
        name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for name, t in sorted(tensors.items())
    }


def check_tensors(
    loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path
) -> None:
    """Raise CheckpointError unless ``loaded`` has the names, shapes and dtypes of ``expected``."""
    theirs, ours = tensor_summary(loaded), tensor_summary(expected)
    if theirs == ours:
        return
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    differ = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    details = []
    if missing:
        details.append(f"missing {missing[:3]}")
    if extra:
        details.append(f"unexpected {extra[:3]}")
    for name in differ[:3]:
        details.append(f"{name}: {theirs[name]} where the model has {ours[name]}")
    raise CheckpointError(
        f"{path} does not match the model's trainable tensors ({'; '.join(details)}); it was "
        "saved for another model or tuning mode: resume with the run's own settings, or start "
        "over with --overwrite"
    )


def load_state(path: Path, *, advice: str) -> dict[str, Any]:
    """A checkpoint's ``state.pt``, loaded with ``weights_only=True`` (no pickled code runs)."""
    try:
        try:
            state = torch.load(path, weights_only=True)
        except Exception as first:
            if "numpy" not in str(first):
                raise
            # Checkpoints written before the random states were plain lists hold NumPy's state
            # as an array: allow exactly the NumPy types that rebuild one, nothing else.
            with torch.serialization.safe_globals(_NUMPY_GLOBALS):
                state = torch.load(path, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} cannot be read ({type(error).__name__}: {error}); {advice}"
        ) from error
    if not isinstance(state, dict) or not isinstance(state.get("loop"), dict):
        raise CheckpointError(f"{path} does not hold a run's state; {advice}")
    return state


def _numpy_globals() -> list[Any]:
    names = [np.ndarray, np.dtype, np.dtypes.UInt32DType]
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [_reconstruct, *names]


_NUMPY_GLOBALS = _numpy_globals()


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from: torch (CPU and CUDA), Python and NumPy; plain
    containers and tensors only, so that ``torch.load(weights_only=True)`` reads it."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, list):
        kind, keys, pos, has_gauss, cached = numpy_state
        numpy_state = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(numpy_state)


def _checkpoint_advice(folder: Path) -> str:
    return (
        f"delete {folder} to resume from an older checkpoint if one is left, or start the run "
        "over with --overwrite"
    )


def _manifest(folder: Path) -> dict[str, Any] | None:
    """The checkpoint's manifest, None when there is none (the checkpoint is incomplete).

    The manifest is written only after every file was flushed to disk, so its presence marks a
    complete checkpoint; a file that later differs from it is damage, reported on loading.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        int(manifest["step"])
        dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def _file_summary(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    except OSError:
        return {}
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _is_own(name: str) -> bool:
    """Whether a directory entry is one a run writes (crash leftovers ``*.tmp``/``*.old`` too)."""
    for suffix in (".tmp", ".old"):
        name = name.removesuffix(suffix)
    return name in OWN_ENTRIES


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    from adamezo.finetune.config import ADDED_SETTINGS, NOT_PART_OF_THE_RUN

    config = {**ADDED_SETTINGS, **config}
    return {k: v for k, v in config.items() if k not in NOT_PART_OF_THE_RUN}
