"""Weights files that follow the umask: ``safetensors`` writes every file ``-rw-------``
whatever the umask, so a run's weights were the only files others could not read.

:func:`save_tensors` is ``safetensors.torch.save_file`` followed by :func:`follow_umask`; call
:func:`follow_umask` on a directory that ``save_pretrained`` wrote.
"""

from __future__ import annotations

import os
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
    """``safetensors.torch.save_file(tensors, path)``, with the file's mode following the umask."""
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    follow_umask(path)
