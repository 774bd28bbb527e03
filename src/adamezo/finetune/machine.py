"""What decides a run's floating-point results besides its settings: the machine it runs on.

The same seed and settings give the same weights bit for bit only where the forward passes sum in
the same order: the same torch build and transformers release (which writes the model's forward
pass) on the same kind of processor (on a CPU, the instruction set torch's kernels dispatch to, and
the thread count; on a GPU, the model of card). Two CPUs with different vector units can give
losses that differ in the last bits, and a zeroth-order run, which steps by the difference of two
losses, then follows another path. A run records its machine in its first log record and in every
checkpoint, and a run resumed on another kind is told that it may not end as the uninterrupted run
would have (another thread count changes the sums of some operations only, so it may still match).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


class ResumedElsewhereWarning(UserWarning):
    """A run resumed on another kind of machine (torch build, transformers release, processor,
    instruction set or thread count) than its checkpoint was written on: it may not end bit for
    bit as before."""


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


@cache
def transformers_release() -> str | None:
    """The installed transformers version (None where it is not installed)."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


def machine_fingerprint(device: torch.device | str) -> dict[str, Any]:
    """What the floating-point results of a run on ``device`` depend on, as plain JSON values:
    ``torch`` (version), ``transformers`` (version, where installed), ``device`` (type),
    ``processor`` (CPU or GPU model) and, on a CPU, ``instruction_set`` (torch's kernel dispatch
    level) and ``threads``."""
    device = torch.device(device)
    # str(): a checkpoint's state loads with weights_only, which refuses torch's version class.
    found: dict[str, Any] = {"torch": str(torch.__version__)}
    if (release := transformers_release()) is not None:
        found["transformers"] = release
    found["device"] = device.type
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        found["processor"] = torch.cuda.get_device_name(index)
        found["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
    elif device.type == "cpu":
        found["processor"] = cpu_model()
        found["instruction_set"] = torch.backends.cpu.get_cpu_capability()
        found["threads"] = torch.get_num_threads()
    return found


def machine_of(tensors: Iterable[torch.Tensor]) -> dict[str, Any]:
    """:func:`machine_fingerprint` of the device the first of ``tensors`` lives on (a run's
    trainable weights; the CPU if there are none)."""
    first = next(iter(tensors), None)
    return machine_fingerprint(first.device if first is not None else "cpu")


def machine_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each difference between two fingerprints, as ``"key: before -> now"`` (none: alike)."""
    keys = [*before, *(key for key in now if key not in before)]
    return [
        f"{key}: {before.get(key, '-')} -> {now.get(key, '-')}"
        for key in keys
        if before.get(key) != now.get(key)
    ]


def warn_if_resumed_elsewhere(
    saved: dict[str, Any] | None, now: dict[str, Any], run: Path | str
) -> None:
    """Warn (:class:`ResumedElsewhereWarning`) where a checkpoint's ``saved`` fingerprint is not
    the machine's ``now``; a checkpoint from before adamezo recorded one has none."""
    if saved is None:
        return
    # A key an older adamezo did not record (transformers) is unknown, not changed; a change of
    # device still shows in the keys both record (device, processor).
    now = {key: value for key, value in now.items() if key in saved}
    changes = machine_changes(saved, now)
    if changes:
        warnings.warn(
            f"{run}: resuming on another kind of machine than the checkpoint was written on "
            f"({'; '.join(changes)}); the run continues, but its losses may differ in the last "
            "bits, so it may not end bit for bit as the uninterrupted run would have",
            ResumedElsewhereWarning,
            stacklevel=3,
        )
