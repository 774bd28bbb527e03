"""Results over seeds: a cell's test metric, one value per seed per (task, method), differences
paired by seed and the rule for claiming one, and whether two settings differ by more than the
seeds spread."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adamezo.experiments.cells import ZERO_SHOT

CLAIM_SEEDS = 3
"""The fewest seeds a paired difference is claimed on."""


def metric_on_test(metrics: Mapping[str, Any]) -> tuple[str, float] | None:
    """(name, value) of a cell's test metric from its metrics.json: accuracy, else F1; None if
    it was not tested."""
    test = metrics.get("test") or {}
    for name in ("accuracy", "f1"):
        if f"test_{name}" in test:
            return name, test[f"test_{name}"]
    return None


def by_seed(records: Iterable[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    """The tested cells tagged ``tag``, per task and method: ``{"metric", "test": [one value per
    seed], "seeds", "lr", "lr_schedule", "forward_passes"}``, the seeds in increasing order."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in records:
        metric = metric_on_test(r["metrics"]) if tag in r.get("tags", []) else None
        if metric is None:
            continue
        trained = r["optimizer"] != ZERO_SHOT
        entry = out[r["task"]].setdefault(
            r["optimizer"],
            {
                "metric": metric[0],
                "test": [],
                "seeds": [],
                "lr": r["lr"] if trained else None,
                "lr_schedule": r["lr_schedule"] if trained else None,
                "forward_passes": r["budget"],
            },
        )
        entry["test"].append(metric[1])
        entry["seeds"].append(r["seed"])
    for methods in out.values():
        for entry in methods.values():
            order = sorted(range(len(entry["seeds"])), key=entry["seeds"].__getitem__)
            entry["test"] = [entry["test"][i] for i in order]
            entry["seeds"] = [entry["seeds"][i] for i in order]
    return dict(out)


def claim(differences: Sequence[float]) -> int:
    """The claim rule for differences paired by seed: 1 (the first is higher) or -1 (lower) only
    over at least :data:`CLAIM_SEEDS` seeds, when every seed agrees in sign and the mean is more
    than twice its standard error; else 0 (no claim)."""
    if len(differences) < max(2, CLAIM_SEEDS):
        return 0
    mean, std = statistics.fmean(differences), statistics.stdev(differences)
    same_sign = all(d > 0 for d in differences) or all(d < 0 for d in differences)
    if not same_sign or abs(mean) <= 2 * std / math.sqrt(len(differences)):
        return 0
    return 1 if mean > 0 else -1


def paired(table: Mapping[str, Any], a: str = "adamezo", b: str = "mezo") -> dict[str, Any]:
    """Per task of a :func:`by_seed` table: the test metric of ``a`` minus ``b`` on each seed
    both were tested on (each seed samples its own data, so seeds pair), their mean and std, and
    the :func:`claim`'s verdict."""
    out: dict[str, Any] = {}
    for task, methods in sorted(table.items()):
        if a not in methods or b not in methods:
            continue
        by = [
            {
                seed: test
                for seed, test in zip(methods[m]["seeds"], methods[m]["test"], strict=True)
                if test is not None
            }
            for m in (a, b)
        ]
        common = sorted(set(by[0]) & set(by[1]))
        diffs = [by[0][seed] - by[1][seed] for seed in common]
        if not diffs:
            continue
        verdict = {1: f"{a} higher", -1: f"{b} higher", 0: "no claim"}[claim(diffs)]
        out[task] = {
            "seeds": common,
            "differences": diffs,
            "mean": statistics.fmean(diffs),
            "std": statistics.stdev(diffs) if len(diffs) > 1 else None,
            "verdict": verdict,
        }
    return out


def summary(values: Iterable[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the values given (None left out; std None below 2)."""
    present = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(present) if present else None,
        "std": statistics.stdev(present) if len(present) > 1 else None,
        "n": len(present),
    }


def within_spread(stats: dict[str, Any], reference: Mapping[str, Any], name: str) -> None:
    """Add to ``stats`` (a :func:`summary`) ``difference_to_<name>``, its mean minus the
    ``reference`` summary's, and ``within_seed_spread``: whether that is no more than the larger
    of the two stds. Left as is when a mean or both stds are missing."""
    stds = [x for x in (stats["std"], reference["std"]) if x is not None]
    if stats["mean"] is None or reference["mean"] is None or not stds:
        return
    difference = stats["mean"] - reference["mean"]
    stats[f"difference_to_{name}"] = difference
    stats["within_seed_spread"] = abs(difference) <= max(stds)


def mean_std(values: Iterable[float | None]) -> str:
    """ "mean (std)" of the values given to 3 decimals (None left out; no std below 2), "-" if
    none."""
    stats = summary(values)
    if stats["mean"] is None:
        return "-"
    spread = f" ({stats['std']:.3f})" if stats["std"] is not None else ""
    return f"{stats['mean']:.3f}{spread}"


def reached(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """The x (forward passes) of a curve's first point at or below ``target``, None if none."""
    return next((x for x, loss in curve if loss <= target), None)
