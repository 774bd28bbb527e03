"""A run's checkpoints and best weights: written whole or not at all, verified on load.

A checkpoint (``checkpoint/``) holds the trainable weights (``trainable.safetensors``), the
optimizer, scheduler and loop state with every random state and the machine it was computed on
(``state.pt``; loading it on another kind warns, :mod:`adamezo.finetune.machine`), the best
weights as of it, and ``manifest.json`` (written last: what it holds, file sizes and SHA-256
sums; its presence marks the checkpoint complete). It is written into ``checkpoint.tmp``,
flushed to disk, and only then swapped in (``checkpoint`` -> ``checkpoint.old``,
``checkpoint.tmp`` -> ``checkpoint``): whenever the process dies, one of the three holds a
complete checkpoint, and resuming takes the newest complete one. ``state.pt`` is loaded with
``torch.load(weights_only=True)``, so a checkpoint never executes code.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from adamezo.finetune.filemodes import save_tensors
from adamezo.finetune.files import (
    CheckpointError,
    RunFileError,
    copy_file,
    fsync,
    fsync_dir,
    write_json,
    writing,
)
from adamezo.finetune.machine import machine_of, warn_if_resumed_elsewhere

CHECKPOINT = "checkpoint"
BEST = "best.safetensors"

TRAINABLE = "trainable.safetensors"
STATE = "state.pt"
MANIFEST = "manifest.json"
"""Written last into a checkpoint: what it holds, file sizes and SHA-256 sums. Its presence marks
the checkpoint complete."""


class Checkpoints:
    """The checkpoints and best weights of the run directory ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def save(self, trainable: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write the checkpoint into ``checkpoint.tmp``, flush it to disk, mark it complete, then
        swap it in; a crash at any point leaves a complete checkpoint (see the module docstring).

        A failed write (a full disk) raises :class:`RunWriteError` and leaves the last complete
        checkpoint as it was.
        """
        staging = self.path / (CHECKPOINT + ".tmp")
        old = self.path / (CHECKPOINT + ".old")
        current = self.path / CHECKPOINT
        step = int(state.get("loop", {}).get("step", -1))
        try:
            with self._writing(staging):
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                save_tensors(trainable, staging / TRAINABLE)
                with open(staging / STATE, "wb") as f:
                    torch.save(
                        {**state, "rng": rng_state(), "machine": machine_of(trainable.values())}, f
                    )
                files = [TRAINABLE, STATE]
                if (self.path / BEST).is_file():
                    # The best weights as of this checkpoint: a later improvement that a crash
                    # loses must not survive into the resumed run. A copy, not a hard link, so
                    # that damage to one file is not damage to both.
                    shutil.copyfile(self.path / BEST, staging / BEST)
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

    def latest(self) -> Path | None:
        """The newest complete checkpoint among ``checkpoint``, ``checkpoint.old`` and
        ``checkpoint.tmp`` (one left by a crash mid-swap), or None; only reads."""
        found: list[tuple[int, int, Path]] = []
        for rank, name in enumerate((CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp")):
            folder = self.path / name
            manifest = _manifest(folder)
            if manifest is not None:
                found.append((int(manifest["step"]), -rank, folder))
            elif name != CHECKPOINT + ".tmp" and (folder / STATE).is_file():
                # Written before checkpoints had manifests: complete once it was renamed into
                # place; its step is unknown without loading it, so it ranks below the others.
                found.append((-1, -rank, folder))
        return max(found)[2] if found else None

    def settle(self) -> None:
        """Make the newest complete checkpoint ``checkpoint`` again after a crash mid-swap, and
        remove the leftovers; one process only, after every process has loaded it."""
        latest = self.latest()
        if latest is None:
            return
        current = self.path / CHECKPOINT
        with self._writing(current):
            if latest != current:
                shutil.rmtree(current, ignore_errors=True)  # older or incomplete
                latest.rename(current)
                fsync_dir(self.path)
            for name in (CHECKPOINT + ".tmp", CHECKPOINT + ".old"):
                shutil.rmtree(self.path / name, ignore_errors=True)

    def load(
        self, expected: dict[str, torch.Tensor] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest complete checkpoint's trainable weights and state, or None; only reads, so
        every process of a distributed run may call it.

        The files are checked against the manifest (sizes, SHA-256), the weights against
        ``expected`` (names, shapes, dtypes of the trainable tensors), and ``state.pt`` is loaded
        without executing pickled code. Any defect raises :class:`CheckpointError` naming the
        file. With ``expected``, a checkpoint written on another kind of machine than the one
        those tensors live on warns (:class:`~adamezo.finetune.machine.ResumedElsewhereWarning`).
        """
        folder = self.latest()
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
            warn_if_resumed_elsewhere(state.get("machine"), machine_of(expected.values()), folder)
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
        folder = folder or self.latest()
        if folder is not None and (folder / BEST).is_file():
            with self._writing(self.path / BEST):
                copy_file(folder / BEST, self.path / BEST)

    def save_best(self, trainable: dict[str, torch.Tensor]) -> None:
        with self._writing(self.path / BEST):
            save_tensors(trainable, self.path / BEST)

    def load_best(self) -> dict[str, torch.Tensor] | None:
        path = self.path / BEST
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

    def _writing(self, target: Path) -> AbstractContextManager[None]:
        return writing(target, self.latest)


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
