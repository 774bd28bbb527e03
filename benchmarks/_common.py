"""Shared benchmark plumbing: machine description, medians, and writing JSON + Markdown results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """What the numbers were measured on, including the load other processes put on it."""
    import numba

    from adamezo.finetune.machine import cpu_model

    return {
        "cpu": cpu_model(),
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


def smollm2_parser(doc: str, random_weights: bool = False) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with the options the SmolLM2 step benchmarks
    share: --data-dir, --threads and --out (and --random-weights)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="the folder holding sst2/")
    parser.add_argument("--threads", type=int, default=None, help="torch (and kernel) threads")
    parser.add_argument("--out", default=None, help="results directory (default results/)")
    if random_weights:
        parser.add_argument(
            "--random-weights",
            action="store_true",
            help="SmolLM2-135M's architecture with random weights (no weights read; same cost)",
        )
    return parser


def set_threads(args: argparse.Namespace) -> None:
    """Apply --threads, where given, to torch (the kernels follow torch's count)."""
    if args.threads:
        torch.set_num_threads(args.threads)


def write(name: str, result: dict, markdown: list[str], out: Path | str | None = None) -> Path:
    """Write ``name``.json and ``name``.md under ``out`` (default benchmarks/results)."""
    out = RESULTS if out is None else Path(out)
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


def run_sections(
    out: Path,
    name: str,
    result: dict,
    sections: Sequence[tuple[str, Callable[[], Any]]],
    markdown: Callable[[dict], list[str]],
) -> bool:
    """Run ``sections`` in order, storing each one's value under its name in ``result``, and
    rewrite ``out``/``name``.{json,md} after each one, so that a crash later on keeps what came
    before. A section that raises is recorded under ``result["errors"]`` and the next one still
    runs. Returns whether every section ran."""
    out.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = result.setdefault("errors", {})
    result["sections_done"] = []
    _write_now(out, name, result, markdown)
    for section, run in sections:
        print(f"== section {section}", flush=True)
        try:
            result[section] = run()
        except Exception:
            errors[section] = traceback.format_exc(limit=8)
            print(f"== section {section} FAILED\n{errors[section]}", flush=True)
        else:
            result["sections_done"].append(section)
        _write_now(out, name, result, markdown)
    return not errors


def _write_now(out: Path, name: str, result: dict, markdown: Callable[[dict], list[str]]) -> None:
    """Write both files whole or not at all (renamed into place), listing failed sections."""
    lines = markdown(result)
    for section, error in result.get("errors", {}).items():
        lines += ["", f"## FAILED: {section}", "", "```", error.rstrip(), "```"]
    for suffix, text in (
        ("json", json.dumps(result, indent=1) + "\n"),
        ("md", "\n".join(lines) + "\n"),
    ):
        partial = out / f".{name}.{suffix}.partial"
        partial.write_text(text)
        partial.replace(out / f"{name}.{suffix}")
