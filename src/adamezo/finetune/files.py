"""How a run's files are written and read: strict JSON, atomic replacement, flushes to disk, and
the errors that name a damaged or unwritable file."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError


class RunDirectoryError(ValueError):
    """The output directory cannot take this run (it holds another one, or foreign files)."""


class RunFileError(RunDirectoryError):
    """A file of the run directory is missing, cut short or garbled; the message names it."""


class CheckpointError(RunFileError):
    """A checkpoint cannot be resumed from: damaged, incomplete, or not this run's."""


PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
"""A write refused for permission (or a read-only filesystem), not for space."""


class RunWriteError(OSError):
    """Writing a run file failed (a full disk, a read-only filesystem); the message names the file
    and says that the last complete checkpoint is intact."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code  # type: ignore[misc]


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and ±inf float replaced by None, so that it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_line(value: dict[str, Any]) -> str:
    """One line of strict JSON (NaN and ±inf become null), with its newline."""
    return json.dumps(json_safe(value), allow_nan=False) + "\n"


def read_json(path: Path, advice: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path} is not valid JSON ({error}); {advice}") from error


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically: written to a temporary file, flushed, renamed."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` atomically."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable; a filesystem that cannot sync a directory is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS):
            raise
    finally:
        os.close(fd)


@contextmanager
def writing(target: Path, latest_checkpoint: Callable[[], Path | None]) -> Iterator[None]:
    """Turn a failed write into :class:`RunWriteError` naming ``target`` and the way on (resume
    from ``latest_checkpoint()`` if there is one, else start over)."""
    try:
        yield
    except RunWriteError:
        raise
    except (OSError, SafetensorError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "writ" not in str(error).lower():
            raise  # not a failed write (torch.save reports those as RuntimeError)
        code = getattr(error, "errno", None)
        if code is None and "no space left" in str(error).lower():
            code = errno.ENOSPC
        denied = code in PERMISSION_ERRNOS
        reason = "the disk is full" if code == errno.ENOSPC else str(error)
        fix = "fix the permissions" if denied else "free space"
        if denied:
            reason = "permission denied: it is not writable for this user"
        latest = latest_checkpoint()
        kept = (
            f"the last complete checkpoint ({latest}) is intact: {fix} and continue with --resume"
            if latest is not None
            else f"no checkpoint was written yet: {fix} and start over with --overwrite"
        )
        raise RunWriteError(
            f"could not write {target}: {reason} ({error}); {kept}", code
        ) from error
