"""Weights files written the way a run's other files are: following the umask, and replaced
atomically with nothing stray left by a kill.

``safetensors`` writes every file ``-rw-------`` whatever the umask, so a run's weights were the
only files others could not read; and it writes through a temporary file ``.tmpXXXXXX`` beside its
target, which a process killed mid-write leaves behind under a name nothing can tell from a
user's. :func:`save_tensors` handles both; call :func:`follow_umask` on a directory that
``save_pretrained`` wrote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``os.umask`` can
    only be read by setting it, which briefly affects other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give a file, or every file under a directory, the mode a new file gets: 0o666 less the
    umask (directories are left as they are)."""
    path = Path(path)
    mode = 0o666 & ~current_umask()
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        if not file.is_symlink():
            os.chmod(file, mode)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """``safetensors.torch.save_file(tensors, path)``, replacing ``path`` atomically, with the
    file's mode following the umask.

    The file is written inside a staging folder ``<path>.tmp/`` and then renamed over ``path``, so
    whatever a kill leaves (safetensors' own temporary file included) is in a folder named for
    its target, which the next write removes, as does a run directory's clean-up."""
    from safetensors.torch import save_file

    path = Path(path)
    staging = path.with_name(path.name + ".tmp")
    _remove(staging)  # a kill's leftover
    staging.mkdir()
    try:
        save_file(tensors, str(staging / path.name))
        follow_umask(staging / path.name)
        (staging / path.name).replace(path)
    finally:
        _remove(staging)


def _remove(path: Path) -> None:
    """Remove a file or a folder with everything in it; nothing when there is none."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
