"""Shared benchmark plumbing: machine description, medians, and writing JSON + Markdown results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """What the numbers were measured on, including the load other processes put on it."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "load_average_at_start": load_average(),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write(name: str, result: dict, markdown: list[str], out: Path | None = None) -> Path:
    """Write ``name``.json and ``name``.md under ``out`` (default benchmarks/results)."""
    out = RESULTS if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    result["machine"]["load_average_at_end"] = load_average()
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    info = result["machine"]
    header = [
        f"Command: `{info['command']}`",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
        f"({info['torch_threads']} threads), numba {info['numba']}, Python {info['python']}. "
        f"Load average (1/5/15 min) at start {info['load_average_at_start']}, at end "
        f"{info['load_average_at_end']} (the benchmark's own threads count; more means other "
        "jobs shared the cores). Compare the variants of one run (they are interleaved), not "
        "absolute times across runs.",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join([*header, *markdown]) + "\n")
    print("\n".join(markdown))
    return out / f"{name}.json"
