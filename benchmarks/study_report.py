"""Tables, JSON and plots of the optimizer study, read from the finished cells' run directories.

    python benchmarks/study_report.py [--results benchmarks/results/study] [--docs docs]

Reads ``--results``/cells/*/ (cell.json, config.json, log.jsonl, metrics.json: see study.py) and
writes, under ``--results``: ``lr_grid.json``, ``seeds.json`` (MeZO and AdaMeZO at the chosen lr
over seeds), ``replay_checks.json``, ``table3.json`` (``{task: {method: {"metric", "test": [one
value per seed], "lr", "forward_passes"}}}``), ``grids.json`` (betas and horizon),
``passes_to_mezo.json``, ``paired.json`` (AdaMeZO and the best new method against MeZO by seed,
``{method: {task: ...}}``; ``paired_long.json``: the same over the long budgets), ``adaptive.json``
(ZO-Adam, MEAZO and AdaMeZO side by side), ``step_sizes.json`` and ``step_sizes_long.json``,
``ablation.json`` (the published update, μ), ``long_budget.json`` and ``gpu_long.json`` (the long
budgets), ``new_methods.json`` (the subspace and multi-query methods' lr grids), ``precision.json``
(bf16 autocast against float32, by seed) and ``holes.json`` (HiZOO's, ZO-Adam's and MEAZO's own lr
grids beside the lr they borrow); and under ``--docs``: the generated part of ``results.md``
(between its ``study`` markers) and the plots in ``results/`` (dev loss per task, over the long
budgets and of the new methods; lr grids; betas and K).
Nothing here trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import (
    HOLES_TASK,
    LR_GRIDS,
    LR_LIKE,
    METHODS,
    NEW_METHODS,
    RESULTS,
    adamezo_defaults,
    best_new_method,
    borrowed_lrs,
    holes_choice,
    lr_choice,
)

from adamezo.experiments.aggregate import (
    by_seed,
    mean_std,
    metric_on_test,
    paired,
    reached,
    summary,
    within_spread,
)
from adamezo.experiments.cells import ZERO_SHOT, Cell
from adamezo.experiments.outputs import (
    Curve,
    Panel,
    line_plot,
    markdown_table,
    panel_plot,
    write_block,
)
from adamezo.experiments.records import matching
from adamezo.experiments.store import finished_records

DOCS = Path(__file__).resolve().parent.parent / "docs"
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
TABLE3_METHODS = (ZERO_SHOT, *METHODS, *NEW_METHODS)
# One colour per method in every plot of the page: matplotlib's ten, then black.
METHOD_COLOURS = {
    method: f"C{i}" if i < 10 else "black" for i, method in enumerate((*METHODS, *NEW_METHODS))
}
ROUNDS = (
    ("round one: the adaptive methods and backprop", METHODS),
    ("round two: the subspace and multi-query methods", ("mezo", "adamezo", *NEW_METHODS)),
)


# ------------------------------------------------------------------------------------ lr grids


def lr_grid(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task/optimizer/schedule: every lr's best and final dev loss, and the choice."""
    choice = lr_choice(records)
    out: dict[str, Any] = {}
    for r in sorted(choice.records, key=lambda r: r["lr"]):
        key = f"{r['task']}/{r['optimizer']}/{r['lr_schedule']}"
        dev = r["metrics"].get("dev") or {}
        entry = out.setdefault(key, {"budget_forward_passes": r["budget"], "lrs": {}})
        entry["lrs"][f"{r['lr']:g}"] = {
            "best_dev_loss": r["best_dev_loss"],
            "best_step": r["metrics"].get("best_step"),
            "dev_accuracy_at_best": dev.get("dev_accuracy"),
            "zero_shot_dev_loss": r["metrics"].get("zero_shot", {}).get("dev_loss"),
        }
    for key, entry in out.items():
        task, optimizer, schedule = key.split("/")
        best = choice.best(task, optimizer, schedule)
        lrs = sorted(float(x) for x in entry["lrs"])
        entry["chosen_lr"] = best
        planned = set(choice.planned_grid(task, optimizer, schedule))
        entry["complete"] = bool(planned) and planned <= set(lrs)
        entry["at_edge"] = best in (lrs[0], lrs[-1]) if best is not None else None
    return out


def _per_lr(lrs: dict[str, dict[str, Any]]) -> str:
    """``lr: best dev loss (dev accuracy there)`` for each lr of a grid, by increasing lr."""
    return ", ".join(
        f"{lr}: {_loss_and_accuracy(v)}"
        for lr, v in sorted(lrs.items(), key=lambda kv: float(kv[0]))
    )


def lr_grid_markdown(grid: dict[str, Any]) -> list[str]:
    rows = []
    for key, entry in grid.items():
        chosen = f"{entry['chosen_lr']:g}" if entry["chosen_lr"] is not None else "-"
        if not entry["complete"]:
            chosen += " (grid not complete yet)"
        elif entry["at_edge"]:
            chosen += " (at an edge: the grid grows)"
        rows.append((key, entry["budget_forward_passes"], _per_lr(entry["lrs"]), chosen))
    header = ("task / optimizer / schedule", "budget (passes)")
    return markdown_table((*header, "lr: best dev loss (dev acc. there)", "chosen"), rows)


def seeds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task/optimizer/schedule at the grid's chosen lr: the best dev loss and the dev
    accuracy there for every seed that ran (seed 0 is the grid's own cell)."""
    choice = lr_choice(records)
    out: dict[str, Any] = {}
    for r in records:
        tags = r.get("tags", [])
        if not ("seeds" in tags or "lr" in tags) or r["optimizer"] not in LR_GRIDS:
            continue
        task, optimizer, schedule = r["task"], r["optimizer"], r["lr_schedule"]
        if r["lr"] != choice.settled(task, optimizer, schedule):
            continue
        key = f"{task}/{optimizer}/{schedule}"
        entry = out.setdefault(key, {"lr": r["lr"], "budget": r["budget"], "seeds": {}})
        dev = r["metrics"].get("dev") or {}
        entry["seeds"][str(r["seed"])] = {
            "best_dev_loss": r["best_dev_loss"],
            "dev_accuracy": dev.get("dev_accuracy"),
        }
    return out


def seeds_markdown(table: dict[str, Any]) -> list[str]:
    rows = []
    for key, entry in sorted(table.items()):
        runs = entry["seeds"].values()
        stats = [
            mean_std([run[name] for run in runs]) for name in ("best_dev_loss", "dev_accuracy")
        ]
        seeds = ",".join(sorted(entry["seeds"]))
        rows.append((key, f"{entry['lr']:g}", entry["budget"], seeds, *stats))
    header = ("task / optimizer / schedule", "lr", "forward passes", "seeds")
    return markdown_table((*header, "best dev loss, mean (std)", "dev accuracy, mean (std)"), rows)


# ------------------------------------------------------------------------------------- table 3


def table3(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Table 3: the test metric per task and method over seeds (the cells tagged ``main``)."""
    return by_seed(records, "main")


def table3_markdown(table: dict[str, Any]) -> list[str]:
    """Mean (std) per task and method, the average over all tasks (for methods that ran them
    all), and the average over the tasks that every method ran (comparable across methods)."""
    tasks = sorted(table)
    methods = [m for m in TABLE3_METHODS if any(m in table[t] for t in tasks)]
    shared = [t for t in tasks if all(m in table[t] for m in methods)]
    rows = []
    for method in methods:
        row, means = [], {}
        for task in tasks:
            entry = table[task].get(method)
            if entry is None:
                row.append("")
                continue
            values = entry["test"]
            means[task] = statistics.fmean(values)
            spread = f" ({statistics.stdev(values):.3f})" if len(values) > 1 else ""
            row.append(f"{means[task]:.3f}{spread} n={len(values)}")
        average = f"{statistics.fmean(means.values()):.3f}" if len(means) == len(tasks) else ""
        common = f"{statistics.fmean(means[t] for t in shared):.3f}" if shared else ""
        rows.append((method, *row, average, common))
    header = ("method", *tasks, "average", f"average of {', '.join(shared)}")
    return markdown_table(header, rows)


def against_mezo(table: dict[str, Any], methods: Sequence[str | None]) -> dict[str, Any]:
    """``{method: paired(table, method, "mezo")}`` for each of ``methods`` (None skipped) that
    shares a tested seed with MeZO on some task of ``table`` (Table 3 or a long budget)."""
    pairs = {m: paired(table, m, "mezo") for m in methods if m is not None and m != "mezo"}
    return {m: by_task for m, by_task in pairs.items() if by_task}


def paired_markdown(pairs: dict[str, Any]) -> list[str]:
    """One row per task and method of an :func:`against_mezo` table."""
    rows = []
    for task in sorted({task for by_task in pairs.values() for task in by_task}):
        for method, by_task in pairs.items():
            if task not in by_task:
                continue
            entry = by_task[task]
            diffs = ", ".join(f"{d:+.3f}" for d in entry["differences"])
            spread = f" ({entry['std']:.3f})" if entry["std"] is not None else ""
            seeds = ",".join(str(s) for s in entry["seeds"])
            mean = f"{entry['mean']:+.3f}{spread}"
            rows.append((task, method, seeds, diffs, mean, entry["verdict"]))
    header = ("task", "method", "seeds", "method − MeZO, test metric per seed", "mean (std)")
    return markdown_table((*header, "verdict"), rows)


def replay_checks(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How the cells tested by replay matched their runs: the largest relative difference
    between the replayed weights' dev loss and the one the run logged."""
    checks = [
        r["metrics"]["tested_by_replay"] for r in records if "tested_by_replay" in r["metrics"]
    ]
    worst = max(
        (
            abs(c["dev_loss_replayed"] - c["dev_loss_logged"]) / abs(c["dev_loss_logged"])
            for c in checks
        ),
        default=None,
    )
    return {"cells": len(checks), "max_relative_dev_loss_difference": worst}


# ----------------------------------------------------------- the adaptive methods side by side

ADAPTIVE = ("zo-adam", "meazo", "adamezo")
"""The MEAZO paper's claim is that MEAZO's one scalar of state matches ZO-Adam's two model-sized
moments; AdaMeZO keeps K scalars. The three are compared side by side."""
MEMORY = Path(__file__).resolve().parent / "results" / "memory.json"


def adaptive_side_by_side(
    records: list[dict[str, Any]], reach: dict[str, Any], memory: Path = MEMORY
) -> dict[str, Any]:
    """Seed 0 of ZO-Adam, MEAZO and AdaMeZO in Table 3, per task: test metric, best dev loss and
    forward passes to MeZO's best dev loss; with each one's peak memory relative to MeZO's on the
    same model (from ``benchmarks/memory.py``'s results, where present)."""
    tasks: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in matching(records, tag="main", seed=0):
        if r["optimizer"] not in ADAPTIVE:
            continue
        metric = metric_on_test(r["metrics"])
        passes = reach.get(r["task"], {}).get("0", {}).get("passes", {})
        tasks[r["task"]][r["optimizer"]] = {
            "test": None if metric is None else metric[1],
            "best_dev_loss": r["best_dev_loss"],
            "passes_to_mezo_best": passes.get(r["optimizer"]),
        }
    return {"tasks": dict(sorted(tasks.items())), "peak_memory_vs_mezo": _peak_memory(memory)}


def _peak_memory(memory: Path) -> dict[str, float]:
    if not memory.exists():
        return {}
    from adamezo.optim.registry import optimizer_entry

    by_class = {
        r["optimizer"]: r["peak_vs_mezo"] for r in json.loads(memory.read_text())["results"]
    }
    return {
        name: by_class[cls]
        for name in ADAPTIVE
        if (cls := optimizer_entry(name).cls.__name__) in by_class
    }


def adaptive_markdown(side: dict[str, Any]) -> list[str]:
    rows = []
    for task, methods in side["tasks"].items():
        row = []
        for name in ADAPTIVE:
            entry = methods.get(name)
            row.append(
                ""
                if entry is None
                else f"{_fmt(entry['test'])} / {_fmt(entry['best_dev_loss'])} / "
                f"{_passes(entry['passes_to_mezo_best'])}"
            )
        rows.append((task, *row))
    memory = side["peak_memory_vs_mezo"]
    if memory:
        row = [f"{memory[name]:.2f}x" if name in memory else "" for name in ADAPTIVE]
        rows.append(("peak memory vs MeZO", *row))
    return markdown_table(("task", *ADAPTIVE), rows)


# --------------------------------------------------------------------------- step sizes


def step_sizes(records: list[dict[str, Any]], tag: str = "main") -> dict[str, Any]:
    """Per task and method of Table 3 (``tag`` "main"; for another table, per method, lr and
    schedule): the mean update norm ‖θ_{t+1} − θ_t‖ over the first and the last third of the
    steps, and their ratio, averaged over seeds. MeZO's step lr·p_t·z_t shrinks as |p_t| does; a
    normalised step does not, unless its lr decays."""
    runs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in matching(records, tag=tag):
        norms = r.get("update_norms") or []
        if len(norms) < 3:
            continue
        third = len(norms) // 3
        first = statistics.fmean(n for _, n in norms[:third])
        last = statistics.fmean(n for _, n in norms[-third:])
        method = r["optimizer"]
        if tag != "main":
            method += f" lr {r['lr']:g} {r['lr_schedule']}"
        runs[(r["task"], method)].append((first, last))
    out: dict[str, Any] = defaultdict(dict)
    for (task, method), pairs in sorted(runs.items()):
        first = statistics.fmean(f for f, _ in pairs)
        last = statistics.fmean(x for _, x in pairs)
        out[task][method] = {
            "seeds": len(pairs),
            "first_third": first,
            "last_third": last,
            "last_over_first": last / first,
        }
    return dict(out)


def step_sizes_markdown(table: dict[str, Any]) -> list[str]:
    norms = ("first_third", "last_third", "last_over_first")
    rows = [
        (task, method, e["seeds"], *(f"{e[n]:.2f}" for n in norms))
        for task, methods in table.items()
        for method, e in methods.items()
    ]
    header = ("task", "method", "seeds", "update norm, first third", "last third")
    return markdown_table((*header, "last / first"), rows)


# ------------------------------------------------------------------------ figure 1 and plots


def passes_to_mezo(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task and seed: forward passes each method needs to reach MeZO's final dev loss (the
    lowest it reached within the budget); ``None`` where it never does."""
    out: dict[str, Any] = {}
    runs: dict[tuple[str, int], dict[str, list]] = defaultdict(dict)
    for r in matching(records, tag="main"):
        if r["optimizer"] != ZERO_SHOT:
            runs[(r["task"], r["seed"])][r["optimizer"]] = r["curve"]
    for (task, seed), curves in sorted(runs.items()):
        if "mezo" not in curves or not curves["mezo"]:
            continue
        target = min(loss for _, loss in curves["mezo"])
        passes = {method: reached(curve, target) for method, curve in curves.items()}
        out.setdefault(task, {})[str(seed)] = {"mezo_best_dev_loss": target, "passes": passes}
    return out


def long_budget(records: list[dict[str, Any]], tag: str = "long") -> dict[str, Any]:
    """The long-budget table: per task and method, the lr its seeds ran at (the better of the
    tuned lr and a third of it, by seed 0's best dev loss) with per-seed best dev loss, test
    metric, test loss (a finer reading of the same weights than an accuracy on a few hundred
    examples) and forward passes to reach MeZO's best dev loss of the same seed (``None`` if never);
    every seed-0 candidate's best dev loss; the linear decay's cell."""
    cells = matching(records, tag=tag)
    out: dict[str, Any] = {}
    for task in sorted({r["task"] for r in cells}):
        mine = matching(cells, task=task)
        constant = matching(mine, lr_schedule="constant")
        chosen: dict[str, float] = {}
        for method in sorted({r["optimizer"] for r in constant}):
            seed0 = {
                r["lr"]: r["best_dev_loss"] for r in matching(constant, optimizer=method, seed=0)
            }
            seeded = {r["lr"] for r in matching(constant, optimizer=method) if r["seed"] > 0}
            chosen[method] = next(iter(seeded)) if seeded else min(seed0, key=seed0.get)
            out.setdefault(task, {})[method] = {
                "lr": chosen[method],
                "forward_passes": next(r["budget"] for r in constant),
                "seed0_candidates": {f"{lr:g}": loss for lr, loss in sorted(seed0.items())},
            }
        mezo_best = {
            r["seed"]: min(loss for _, loss in r["curve"])
            for r in matching(constant, optimizer="mezo", lr=chosen.get("mezo"))
            if r["curve"]
        }
        for method, entry in out.get(task, {}).items():
            runs = sorted(
                matching(constant, optimizer=method, lr=entry["lr"]), key=lambda r: r["seed"]
            )
            metric = [metric_on_test(r["metrics"]) for r in runs]
            entry |= {
                "seeds": [r["seed"] for r in runs],
                "best_dev_loss": [r["best_dev_loss"] for r in runs],
                "test": [m[1] if m else None for m in metric],
                "metric": next((m[0] for m in metric if m), None),
                "test_loss": [(r["metrics"].get("test") or {}).get("test_loss") for r in runs],
                "passes_to_mezo_best": [
                    reached(r["curve"], mezo_best[r["seed"]]) if r["seed"] in mezo_best else None
                    for r in runs
                ],
            }
            decay = matching(mine, optimizer=method, lr_schedule="linear")
            if decay:
                entry["linear_decay"] = {
                    "lr": decay[0]["lr"],
                    "best_dev_loss": decay[0]["best_dev_loss"],
                    "test": (metric_on_test(decay[0]["metrics"]) or (None, None))[1],
                }
    return out


def long_budget_markdown(table: dict[str, Any]) -> list[str]:
    rows = []
    for task, methods in table.items():
        for method, e in methods.items():
            candidates = ", ".join(
                f"{lr}: {loss:.3f}" for lr, loss in e["seed0_candidates"].items()
            )
            decay = e.get("linear_decay")
            decayed = "-" if not decay else f"{_fmt(decay['best_dev_loss'])}, {_fmt(decay['test'])}"
            rows.append(
                (
                    task,
                    method,
                    f"{e['lr']:g} ({candidates})",
                    ", ".join(_fmt(v) for v in e["best_dev_loss"]),
                    ", ".join(_fmt(v) for v in e["test"]),
                    ", ".join(_fmt(v) for v in e["test_loss"]),
                    ", ".join(_passes(p) for p in e["passes_to_mezo_best"]),
                    decayed,
                )
            )
    header = ("task", "method", "lr (seed-0 candidates: best dev loss)", "best dev loss per seed")
    per_seed = ("test per seed", "test loss per seed", "passes to MeZO's best")
    per_seed += ("linear decay (best dev loss, test)",)
    return markdown_table((*header, *per_seed), rows)


def long_panels(
    records: list[dict[str, Any]], table: dict[str, Any], tag: str = "long"
) -> dict[tuple[str, int], tuple[list[Panel], tuple[float, float]]]:
    """Per task and budget of the long-budget ``table``: a panel per seed, each method's curve at
    its chosen lr in its colour of the page; the seed-0 panel adds the other lr candidate (dashed)
    and the linear decay (dotted). Each panel's reference line is MeZO's best dev loss on that
    seed, the target of "passes to MeZO's best". With the panels, the y range: from the lowest
    dev loss to the highest a chosen-lr curve has after its start, so a diverging candidate runs
    off the top instead of flattening the rest."""
    out = {}
    cells = [r for r in matching(records, tag=tag) if r["curve"]]
    for task, methods in table.items():
        panels: list[Panel] = []
        chosen_ys: list[float] = []
        all_ys: list[float] = []
        for seed in sorted({s for entry in methods.values() for s in entry["seeds"]}):
            curves = []
            for method, entry in sorted(methods.items()):
                runs = matching(cells, task=task, optimizer=method, seed=seed)
                for r in sorted(runs, key=lambda r: (r["lr_schedule"], r["lr"])):
                    constant = r["lr_schedule"] == "constant"
                    chosen = constant and r["lr"] == entry["lr"]
                    schedule = "" if constant else f" {r['lr_schedule']}"
                    label = f"{method} lr {r['lr']:g}{schedule}"
                    style = "-" if chosen else "--" if constant else ":"
                    curves.append(Curve(label, r["curve"], METHOD_COLOURS.get(method), style))
                    ys = [y for x, y in r["curve"] if x > 0]
                    all_ys += ys
                    chosen_ys += ys if chosen else []
            mezo = methods.get("mezo")
            reference = None
            if mezo and seed in mezo["seeds"]:
                best = mezo["best_dev_loss"][mezo["seeds"].index(seed)]
                reference = (f"MeZO's best ({best:.3f})", best)
            panels.append(Panel(f"seed {seed}", curves, reference))
        if not all_ys:
            continue
        low, high = min(all_ys), max(chosen_ys or all_ys)
        margin = 0.05 * (high - low)
        budget = next(iter(methods.values()))["forward_passes"]
        out[(task, budget)] = (panels, (low - margin, high + margin))
    return out


def plot_long_curves(
    records: list[dict[str, Any]], tables: dict[str, dict[str, Any]], docs: Path
) -> list[Path]:
    """Dev loss against forward passes over the long budgets (``tables``: tag -> long-budget
    table), one figure per task and budget with a panel per seed (:func:`long_panels`)."""
    paths = []
    for tag, table in tables.items():
        for (task, budget), (panels, y_range) in long_panels(records, table, tag).items():
            paths.append(
                panel_plot(
                    docs / "results" / f"{task}_dev_loss_{budget}_passes.png",
                    panels,
                    ("training forward passes", "dev loss"),
                    f"{task}: dev loss over {budget} forward passes",
                    y_range,
                )
            )
    return paths


def dev_loss_panels(
    records: list[dict[str, Any]], targets: dict[str, Any]
) -> dict[str, list[Panel]]:
    """Per task, seed 0: a panel per round of methods, one curve per method (its Table 3 cell,
    else its lr grid's best cell: on the grid tasks the two are the same run), and as the
    reference line MeZO's best dev loss from ``targets`` (:func:`passes_to_mezo`), the one the
    forward passes to MeZO's best are counted against."""
    choice = lr_choice(records)
    by_task: dict[str, dict[str, Curve]] = defaultdict(dict)
    for r in sorted(records, key=lambda r: "main" not in r.get("tags", [])):
        tags = r.get("tags", [])
        main = "main" in tags and r["seed"] == 0
        grid_best = (
            "lr" in tags
            and r["lr_schedule"] == "constant"
            and r["lr"] == choice.best(r["task"], r["optimizer"], "constant")
        )
        if r["curve"] and (main or grid_best) and r["optimizer"] in METHOD_COLOURS:
            label, colour = f"{r['optimizer']} (lr {r['lr']:g})", METHOD_COLOURS[r["optimizer"]]
            by_task[r["task"]].setdefault(r["optimizer"], Curve(label, r["curve"], colour))
    out = {}
    for task, curves in sorted(by_task.items()):
        best = targets.get(task, {}).get("0", {}).get("mezo_best_dev_loss")
        reference = None if best is None else (f"MeZO's best ({best:.3f})", best)
        out[task] = [
            Panel(title, [curves[m] for m in methods if m in curves], reference)
            for title, methods in ROUNDS
        ]
    return out


def plot_curves(records: list[dict[str, Any]], targets: dict[str, Any], docs: Path) -> list[Path]:
    """Dev loss against forward passes, one figure per task (:func:`dev_loss_panels`)."""
    return [
        panel_plot(
            docs / "results" / f"{task}_dev_loss.png",
            panels,
            ("training forward passes", "dev loss"),
            f"{task}: dev loss, SmolLM2-135M full tuning (seed 0)",
        )
        for task, panels in dev_loss_panels(records, targets).items()
    ]


def plot_lr_grids(grid: dict[str, Any], docs: Path) -> list[Path]:
    """Best dev loss against lr, one line per optimizer and schedule, one plot per task."""
    by_task: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, entry in grid.items():
        task, optimizer, schedule = key.split("/")
        by_task[task].append((f"{optimizer}, {schedule}", entry))
    return [
        line_plot(
            docs / "results" / f"{task}_lr_grid.png",
            [
                (label, sorted((float(lr), v["best_dev_loss"]) for lr, v in entry["lrs"].items()))
                for label, entry in sorted(lines, key=lambda line: line[0])
            ],
            ("learning rate", "best dev loss within the budget (log scale)"),
            f"{task}: lr grids ({lines[0][1]['budget_forward_passes']} forward passes)",
            log_x=True,
            log_y=True,  # a diverged lr (loss in the hundreds) must not flatten the rest
        )
        for task, lines in sorted(by_task.items())
    ]


# ------------------------------------------------------------------------- betas and horizon


def grids(records: list[dict[str, Any]]) -> dict[str, Any]:
    """AdaMeZO's best dev loss (and dev accuracy there) per (beta1, beta2) and per horizon K,
    keyed by task. Each entry carries its own betas or K, so readers never parse the keys (they
    are labels for people)."""
    out: dict[str, Any] = {"betas": {}, "horizon": {}}
    default_betas, default_horizon = adamezo_defaults()
    for r in records:
        tags = r.get("tags", [])
        dev = r["metrics"].get("dev") or {}
        entry = {
            "lr": r["lr"],
            "best_dev_loss": r["best_dev_loss"],
            "dev_accuracy_at_best": dev.get("dev_accuracy"),
        }
        if "betas" in tags:
            beta1, beta2 = r["betas"] or default_betas
            key = f"b1={beta1:g} b2={beta2:g}"
            out["betas"].setdefault(r["task"], {})[key] = {**entry, "beta1": beta1, "beta2": beta2}
        if "horizon" in tags:
            horizon = r["horizon"] or default_horizon
            key = f"K={horizon}"
            out["horizon"].setdefault(r["task"], {})[key] = {**entry, "horizon": horizon}
    return out


def _loss_and_accuracy(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return f"{_fmt(cell['best_dev_loss'])} ({_fmt(cell['dev_accuracy_at_best'])})"


def _defaults_over_seeds(seeds: dict[str, Any], task: str) -> list[float]:
    """AdaMeZO's best dev loss at its defaults and tuned lr, one per seed."""
    entry = seeds.get(f"{task}/adamezo/constant") or {"seeds": {}}
    return [run["best_dev_loss"] for _, run in sorted(entry["seeds"].items())]


def _seed_band(seeds: dict[str, Any], task: str) -> tuple[str, float, float] | None:
    """mean ± std of the defaults over seeds, as a plot band (None with fewer than 2 seeds)."""
    losses = _defaults_over_seeds(seeds, task)
    if len(losses) < 2:
        return None
    mean, std = statistics.fmean(losses), statistics.stdev(losses)
    return f"defaults over {len(losses)} seeds, mean ± std", mean - std, mean + std


def _seed_scale(seeds: dict[str, Any], task: str) -> list[str]:
    """One line giving the defaults' seed-to-seed spread, the yardstick for a one-seed grid."""
    losses = _defaults_over_seeds(seeds, task)
    if len(losses) < 2:
        return []
    names = ",".join(sorted(seeds[f"{task}/adamezo/constant"]["seeds"]))
    return [
        "",
        f"One seed per cell. For scale, AdaMeZO's defaults on {task} over seeds {names}: "
        f"best dev loss {mean_std(losses)}.",
    ]


def grids_markdown(
    betas: dict[str, Any], horizon: dict[str, Any], seeds: dict[str, Any] | None = None
) -> list[str]:
    """Table 9 (beta1 down, beta2 across) and Figure 4 (K across) as tables of best dev loss,
    with the dev accuracy at that point in brackets."""
    lines: list[str] = []
    for task, cells in sorted(betas.items()):
        by_betas = {(c["beta1"], c["beta2"]): c for c in cells.values()}
        b1s = sorted({b1 for b1, _ in by_betas})
        b2s = sorted({b2 for _, b2 in by_betas})
        lines += [
            "",
            f"### AdaMeZO's betas on {task} (best dev loss (dev acc. there); rows beta1, "
            "columns beta2)",
        ]
        rows = [
            (f"{b1:g}", *(_loss_and_accuracy(by_betas.get((b1, b2))) for b2 in b2s)) for b1 in b1s
        ]
        lines += ["", *markdown_table(("beta1 \\ beta2", *(f"{b:g}" for b in b2s)), rows)]
        lines += _seed_scale(seeds or {}, task)
    for task, cells in sorted(horizon.items()):
        by_k = sorted(cells.values(), key=lambda c: c["horizon"])
        lines += ["", f"### AdaMeZO's horizon K on {task} (best dev loss (dev acc. there))", ""]
        row = ("best dev loss", *(_loss_and_accuracy(c) for c in by_k))
        lines += markdown_table(("K", *(c["horizon"] for c in by_k)), [row])
        if task not in betas:
            lines += _seed_scale(seeds or {}, task)
    return lines


def plot_grids(
    betas: dict[str, Any], horizon: dict[str, Any], docs: Path, seeds: dict[str, Any] | None = None
) -> list[Path]:
    """Best dev loss against beta2 (a line per beta1) and against K, one plot per task each,
    over the band of the defaults' seed-to-seed spread."""
    paths = []
    for task, cells in sorted(betas.items()):
        by_beta1: dict[float, list[tuple[float, float]]] = defaultdict(list)
        for c in cells.values():
            by_beta1[c["beta1"]].append((c["beta2"], c["best_dev_loss"]))
        paths.append(
            line_plot(
                docs / "results" / f"{task}_betas.png",
                [(f"beta1 = {b1:g}", sorted(points)) for b1, points in sorted(by_beta1.items())],
                ("beta2", "best dev loss"),
                f"{task}: AdaMeZO's betas (K = {adamezo_defaults()[1]}, one seed)",
                band=_seed_band(seeds or {}, task),
            )
        )
    for task, cells in sorted(horizon.items()):
        points = sorted((c["horizon"], c["best_dev_loss"]) for c in cells.values())
        paths.append(
            line_plot(
                docs / "results" / f"{task}_horizon.png",
                [("AdaMeZO", points)],
                ("horizon K (log scale)", "best dev loss"),
                f"{task}: AdaMeZO's horizon K (one seed)",
                log_x=True,
                band=_seed_band(seeds or {}, task),
            )
        )
    return paths


# ------------------------------------------------------------------------------------ ablation


def ablation(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ablation cells (AdaMeZO's published update, μ 10x down and up), each beside its
    optimizer's default: the lr grid's constant-lr cell (seed 0) at the tuned lr. One row per
    cell, sorted by task, optimizer, setting and lr."""
    choice = lr_choice(records)
    ablated = {r["task"] for r in matching(records, tag="ablation")}
    rows = []
    for r in records:
        tags = r.get("tags", [])
        task, optimizer = r["task"], r["optimizer"]
        if "ablation" in tags:
            preset, mu = r.get("preset"), r.get("perturbation_scale")
            setting = f"preset={preset}" if preset else f"mu={mu:g}"
        elif (
            "lr" in tags
            and r["lr_schedule"] == "constant"
            and r["seed"] == 0
            and r["lr"] == choice.settled(task, optimizer, "constant")
            and task in ablated
        ):
            setting = "defaults"
        else:
            continue
        dev = r["metrics"].get("dev") or {}
        rows.append(
            {
                "task": task,
                "optimizer": optimizer,
                "setting": setting,
                "lr": r["lr"],
                "best_dev_loss": r["best_dev_loss"],
                "dev_accuracy_at_best": dev.get("dev_accuracy"),
            }
        )
    return sorted(
        rows,
        key=lambda x: (
            x["task"],
            x["optimizer"],
            x["setting"] != "defaults",
            x["setting"],
            x["lr"],
        ),
    )


def ablation_markdown(rows: list[dict[str, Any]]) -> list[str]:
    cells = [
        (r["task"], r["optimizer"], r["setting"], f"{r['lr']:g}", _loss_and_accuracy(r))
        for r in rows
    ]
    header = ("task", "optimizer", "setting", "lr", "best dev loss (dev acc. there)")
    return markdown_table(header, cells)


# --------------------------------------------------------------------------------------- holes


def holes(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each hole method's own lr grid (:func:`study.holes_choice`) beside the lr it borrows in
    every other table, keyed by task and method: per lr the best dev loss and the dev accuracy
    there; its own best lr so far, whether the grid has settled (complete, best interior), and
    whether the settled lr differs from the borrowed one (None until settled)."""
    tuned = lr_choice(records)
    choice = holes_choice(tuned, records)
    out: dict[str, Any] = {}
    for method, borrowed in borrowed_lrs(tuned).items():
        lrs = {
            f"{r['lr']:g}": {
                "best_dev_loss": r["best_dev_loss"],
                "dev_accuracy_at_best": (r["metrics"].get("dev") or {}).get("dev_accuracy"),
            }
            for r in sorted(matching(choice.records, optimizer=method), key=lambda r: r["lr"])
        }
        settled = choice.settled(HOLES_TASK, method, "constant")
        out.setdefault(HOLES_TASK, {})[method] = {
            "borrowed_from": LR_LIKE[method],
            "borrowed_lr": borrowed,
            "planned": list(choice.planned_grid(HOLES_TASK, method, "constant")),
            "lrs": lrs,
            "best_lr": choice.best(HOLES_TASK, method, "constant"),
            "settled": settled is not None,
            "differs": None if settled is None else settled != borrowed,
        }
    return out


def _hole_row(task: str, method: str, e: dict[str, Any]) -> tuple[str, ...]:
    best = "-" if e["best_lr"] is None else f"{e['best_lr']:g}"
    if not e["settled"]:
        best += " (grid not settled yet)"
    differs = {True: "yes", False: "no", None: "-"}[e["differs"]]
    borrowed = f"{e['borrowed_lr']:g} ({e['borrowed_from']})"
    return (task, method, borrowed, _per_lr(e["lrs"]), best, differs)


def holes_markdown(table: dict[str, Any]) -> list[str]:
    rows = [
        _hole_row(task, method, e)
        for task, methods in table.items()
        for method, e in methods.items()
    ]
    header = ("task", "method", "borrowed lr (from)", "lr: best dev loss (dev acc. there)")
    return markdown_table((*header, "own best lr", "differs from the borrowed"), rows)


def holes_section(table: dict[str, Any]) -> list[str]:
    """The holes' section of results.md."""
    return [
        "",
        "### Own lr grids of the methods that borrow one (SST-2, seed 0)",
        "",
        "Every other table runs HiZOO at MeZO's tuned lr and ZO-Adam and MEAZO at AdaMeZO's; "
        "here each has a grid of its own around that lr (the borrowed value is its Table 3 "
        "run). MeZO-switch has none: its step has AdaMeZO's norm whatever the lr.",
        "",
        *holes_markdown(table),
    ]


# ------------------------------------------------------------------------------------ writing


def _passes(passes: int | None) -> str:
    return "never" if passes is None else str(passes)


def passes_markdown(reach: dict[str, Any]) -> list[str]:
    """Figure 1's question as a table: per task and seed, each method's passes to MeZO's best."""
    rows = []
    for task, seeds in reach.items():
        for seed, entry in seeds.items():
            passes = ", ".join(f"{m}: {_passes(p)}" for m, p in sorted(entry["passes"].items()))
            rows.append((task, seed, f"{entry['mezo_best_dev_loss']:.3f}", passes))
    return markdown_table(("task", "seed", "MeZO's best dev loss", "passes per method"), rows)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.3f}"


def markdown(records: list[dict[str, Any]], outputs: dict[str, Any]) -> list[str]:
    """The generated block of results.md from the report's ``outputs``: the lr grids, Table 3
    and the comparisons built on them, then the study's further tables (:func:`further_tables`)."""
    grid, table, reach = outputs["lr_grid"], outputs["table3"], outputs["passes_to_mezo"]
    lines = [f"Finished cells: {len(records)}.", "", "### Learning-rate grids", ""]
    lines += lr_grid_markdown(grid) if grid else ["(none finished yet)"]
    lines += ["", "### MeZO and AdaMeZO at the chosen lr, over seeds", ""]
    lines += seeds_markdown(outputs["seeds"]) if outputs["seeds"] else ["(no grid settled yet)"]
    lines += ["", "### Table 3: test metric, mean (std) over seeds", ""]
    lines += table3_markdown(table) if table else ["(none finished yet)"]
    checks = outputs["replay_checks"]
    if checks["cells"]:
        worst = checks["max_relative_dev_loss_difference"]
        matched = "bit for bit" if worst == 0 else f"within {worst:.1e} (relative)"
        lines += [
            "",
            f"{checks['cells']} cells were tested by replaying their lr-grid or seed run (its "
            "weights rebuilt from the log): the replayed weights' dev loss matched the logged one "
            f"{matched}.",
        ]
    lines += ["", "### AdaMeZO and the best new method against MeZO, paired by seed (test metric)"]
    lines += [""] + (paired_markdown(outputs["paired"]) if outputs["paired"] else ["(none yet)"])
    lines += ["", "### Forward passes to reach MeZO's best dev loss", ""]
    lines += passes_markdown(reach) if reach else ["(none finished yet)"]
    side = outputs["adaptive"]
    lines += [
        "",
        "### ZO-Adam, MEAZO and AdaMeZO side by side (seed 0)",
        "",
        "Each cell: test metric / best dev loss / forward passes to MeZO's best dev loss.",
        "",
    ]
    lines += adaptive_markdown(side) if side["tasks"] else ["(none finished yet)"]
    lines += ["", "### Step size over training (mean update norm per step)", ""]
    lines += step_sizes_markdown(outputs["step_sizes"]) if outputs["step_sizes"] else ["(none yet)"]
    betas, horizon = outputs["grids"]["betas"], outputs["grids"]["horizon"]
    lines += grids_markdown(betas, horizon, outputs["seeds"])
    return lines + further_tables(outputs)


def further_tables(outputs: dict[str, Any]) -> list[str]:
    """The sections of the tables that have finished cells: the ablation, the holes' own lr
    grids, the new methods, the long budgets and mixed precision."""
    lines: list[str] = []
    if outputs["ablation"]:
        lines += [
            "",
            "### Why they end level: the published update and μ (seed 0)",
            "",
            "`defaults` is the lr grid's cell at the tuned lr: μ = 1e-3 and, for AdaMeZO, the "
            "normalised update. `preset=reference` is the published code's update (unnormalised, "
            "gain 100, ε = 1e-5, K + 1 MeZO warm-up steps) over an lr grid of its own.",
            "",
        ]
        lines += ablation_markdown(outputs["ablation"])
    if outputs.get("holes"):
        lines += holes_section(outputs["holes"])
    if outputs["new_methods"]:
        lines += new_methods_section(outputs["new_methods"], outputs["best_new_method"])
    if outputs["long_budget"]:
        lines += ["", "### A budget several times longer: MeZO, AdaMeZO, the best new method", ""]
        lines += long_budget_markdown(outputs["long_budget"])
        if outputs["paired_long"]:
            lines += ["", "Paired by seed against MeZO over the same budget (test metric):", ""]
            lines += paired_markdown(outputs["paired_long"])
        if outputs["step_sizes_long"]:
            lines += ["", "Mean update norm per step over the long budget (over seeds):", ""]
            lines += step_sizes_markdown(outputs["step_sizes_long"])
    if outputs["gpu_long"]:
        lines += ["", "### The paper's scale of steps, on a GPU: MeZO and AdaMeZO", ""]
        lines += long_budget_markdown(outputs["gpu_long"])
    if outputs["precision"]:
        lines += [
            "",
            "### Mixed precision: bf16 autocast against float32, by seed",
            "",
            "bf16 rows: the forward passes under `torch.autocast` in bfloat16, the weights, "
            "perturbation and update in float32 (`--mixed-precision bf16`); float32 rows: their "
            "twins in the tables above. Every other table holds float32 cells only.",
            "",
        ]
        lines += precision_markdown(outputs["precision"])
    return lines


# ------------------------------------------------------------------------------ new methods


def _tuned_cell(records: list[dict[str, Any]], task: str, optimizer: str) -> dict | None:
    """The lr grid's seed-0 cell of ``optimizer`` at its chosen constant lr on ``task``."""
    lr = lr_choice(records).settled(task, optimizer, "constant")
    cells = matching(
        records, tag="lr", task=task, optimizer=optimizer, seed=0, lr_schedule="constant", lr=lr
    )
    return cells[0] if cells else None


def new_methods(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: MeZO's and AdaMeZO's tuned seed-0 cells, and every lr each new method ran at
    (seed 0): best dev loss, dev accuracy there, the passes at it, and the passes to reach
    MeZO's best dev loss (``None`` if never); each method's best lr so far."""
    out: dict[str, Any] = {}
    ran = matching(records, tag="methods", seed=0)
    for r in sorted(ran, key=lambda r: (r["task"], r["optimizer"], r["lr"])):
        if not r["curve"]:
            continue
        task = out.setdefault(r["task"], {"reference": {}, "methods": {}})
        if not task["reference"]:
            for name in ("mezo", "adamezo"):
                cell = _tuned_cell(records, r["task"], name)
                if cell is not None and cell["curve"]:
                    task["reference"][name] = _method_entry(cell, None)
        target = task["reference"].get("mezo", {}).get("best_dev_loss")
        lrs = task["methods"].setdefault(r["optimizer"], {"lrs": {}})["lrs"]
        lrs[f"{r['lr']:g}"] = _method_entry(r, target)
    for task in out.values():
        for entry in task["methods"].values():
            entry["best_lr"] = min(entry["lrs"], key=lambda lr: entry["lrs"][lr]["best_dev_loss"])
    return out


def _method_entry(r: dict[str, Any], target: float | None) -> dict[str, Any]:
    # after training began, as the grids' best dev loss: a diverged lr must not show step 0's
    trained = [point for point in r["curve"] if point[0] > 0] or r["curve"]
    best_passes, best = min(trained, key=lambda point: point[1])
    return {
        "lr": r["lr"],
        "budget": r["budget"],
        "best_dev_loss": best,
        "passes_at_best": best_passes,
        "dev_accuracy_at_best": (r["metrics"].get("dev") or {}).get("dev_accuracy"),
        "passes_to_mezo_best": None if target is None else reached(r["curve"], target),
    }


def new_methods_section(table: dict[str, Any], best: str | None) -> list[str]:
    """The new methods' section of results.md: their grids' table and the best of them."""
    return [
        "",
        "### The subspace and multi-query methods: lr grids (seed 0)",
        "",
        "Each new method's cells so far, beside MeZO's and AdaMeZO's tuned cells; passes to "
        "MeZO's best: the training forward passes at the first evaluation whose dev loss is "
        "at or below MeZO's best (- if never).",
        "",
        *new_methods_markdown(table),
        "",
        "The best new method (lowest mean over SST-2 and TREC of its best dev loss over MeZO's, "
        "each at its settled lr; it runs 3 seeds in Table 3 and joins the long budget): "
        + (f"**{best}**." if best else "not chosen until every grid here has settled."),
    ]


def new_methods_markdown(table: dict[str, Any]) -> list[str]:
    def best(e: dict[str, Any]) -> str:
        return f"{_fmt(e['best_dev_loss'])} ({_fmt(e['dev_accuracy_at_best'])})"

    rows = []
    for task, entry in table.items():
        for name, ref in entry["reference"].items():
            rows.append(
                (task, f"{name} (tuned)", f"{ref['lr']:g}", best(ref), ref["passes_at_best"], "-")
            )
        for name, method in entry["methods"].items():
            for lr, e in sorted(method["lrs"].items(), key=lambda kv: float(kv[0])):
                so_far = " (best so far)" if lr == method["best_lr"] else ""
                reach = _passes(e["passes_to_mezo_best"])
                rows.append((task, name, f"{lr}{so_far}", best(e), e["passes_at_best"], reach))
    header = ("task", "method", "lr", "best dev loss (dev acc. there)", "at passes")
    return markdown_table((*header, "passes to MeZO's best"), rows)


def plot_new_methods(
    records: list[dict[str, Any]], table: dict[str, Any], docs: Path
) -> list[Path]:
    """Dev loss against forward passes per task: each new method at its best lr so far, beside
    MeZO and AdaMeZO at their tuned lrs (seed 0), each the grid cell of the budget its entry
    of ``table`` names."""
    paths = []
    for task, entry in table.items():
        wanted = {(name, ref["lr"], ref["budget"]) for name, ref in entry["reference"].items()}
        wanted |= {
            (name, float(m["best_lr"]), m["lrs"][m["best_lr"]]["budget"])
            for name, m in entry["methods"].items()
        }
        grids = matching(records, tag="lr", task=task, seed=0, lr_schedule="constant")
        curves = {
            f"{r['optimizer']} (lr {r['lr']:g})": r["curve"]
            for r in grids
            if (r["optimizer"], r["lr"], r["budget"]) in wanted
        }
        paths.append(
            line_plot(
                docs / "results" / f"{task}_new_methods.png",
                sorted(curves.items()),
                ("training forward passes", "dev loss"),
                f"{task}: the new methods at their best lr so far (seed 0)",
            )
        )
    return paths


# ----------------------------------------------------------------------------------- precision

SETTING_KEYS = tuple(
    f.name
    for f in dataclasses.fields(Cell)
    if f.name not in ("mixed_precision", "test", "tags", "follows")
)
"""What makes two cells the same run but for their precision: every cell field but that,
``test`` (a tested twin and an untested one trained alike), the tags and ``follows``."""


def precision_of(record: dict[str, Any]) -> str:
    """The precision a cell's forward passes ran in: ``float32`` unless it set mixed precision."""
    return record.get("mixed_precision") or "float32"


def precision(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task/optimizer/lr: the cells of the precision table (mixed precision) and their float32
    twins (the same settings, no mixed precision; the tested one when both exist): each seed's
    best dev loss and test metric per precision, the means and stds over seeds, and whether each
    mean differs from float32's by no more than the larger of the two seed stds."""

    def key(r: dict[str, Any]) -> tuple:
        return tuple(tuple(v) if isinstance(v, list) else v for v in map(r.get, SETTING_KEYS))

    mixed = [r for r in matching(records, tag="precision") if r.get("mixed_precision")]
    wanted = {key(r) for r in mixed}
    twins = sorted(
        (r for r in records if not r.get("mixed_precision") and key(r) in wanted),
        key=lambda r: metric_on_test(r["metrics"]) is not None,  # the tested twin last: it wins
    )
    out: dict[str, Any] = {}
    for r in [*twins, *mixed]:
        name = f"{r['task']}/{r['optimizer']}/lr{r['lr']:g}"
        entry = out.setdefault(name, {"lr": r["lr"], "budget": r["budget"], "precisions": {}})
        metric = metric_on_test(r["metrics"])
        seeds = entry["precisions"].setdefault(precision_of(r), {})
        seeds[str(r["seed"])] = {
            "best_dev_loss": r["best_dev_loss"],
            "test_metric": None if metric is None else metric[0],
            "test": None if metric is None else metric[1],
        }
    for entry in out.values():
        entry["summary"] = _precision_summary(entry["precisions"])
    return out


def _precision_summary(precisions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per precision and field (best dev loss, test): mean, std and n over seeds; for the mixed
    precisions, their difference to float32 and whether it is within the seeds' spread."""
    out = {
        name: {f: summary(v[f] for v in seeds.values()) for f in ("best_dev_loss", "test")}
        for name, seeds in precisions.items()
    }
    for name, fields in out.items():
        if name != "float32" and "float32" in out:
            for field, stats in fields.items():
                within_spread(stats, out["float32"][field], "float32")
    return out


def precision_markdown(table: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in sorted(table.items()):
        for precision_name, seeds in sorted(entry["precisions"].items(), key=lambda x: x[0]):
            stats = entry["summary"][precision_name]
            cells = [mean_std([v[f] for v in seeds.values()]) for f in ("best_dev_loss", "test")]
            verdict = " / ".join(
                {True: "yes", False: "no"}.get(stats[f].get("within_seed_spread"), "-")
                for f in ("best_dev_loss", "test")
            )
            shown = verdict if precision_name != "float32" else ""
            rows.append((name, precision_name, ",".join(sorted(seeds)), *cells, shown))
    header = ("task / optimizer / lr", "precision", "seeds", "best dev loss, mean (std)")
    spread = "within the seed spread of float32 (dev loss / test)"
    return markdown_table((*header, "test metric, mean (std)", spread), rows)


def write_docs(docs: Path, lines: list[str]) -> Path:
    """Replace the generated block of docs/results.md (created with the markers if missing)."""
    return write_block(docs / "results.md", lines, BEGIN, END)


def report(results: Path, docs: Path, plots: bool = True) -> dict[str, Any]:
    every = finished_records(results)
    # Rows compared with each other share a precision: the mixed-precision cells appear only in
    # the precision table, beside their float32 twins.
    records = [r for r in every if precision_of(r) == "float32"]
    outputs = {
        "lr_grid": lr_grid(records),
        "table3": table3(records),
        "passes_to_mezo": passes_to_mezo(records),
        "grids": grids(records),
        "seeds": seeds(records),
        "replay_checks": replay_checks(records),
        "step_sizes": step_sizes(records),
        "step_sizes_long": step_sizes(records, "long"),
        "ablation": ablation(records),
        "long_budget": long_budget(records),
        "precision": precision(every),
        "gpu_long": long_budget(records, "gpu-long"),
        "new_methods": new_methods(records),
        "holes": holes(records),
    }
    # Chosen once: Table 3's pairing and the new-methods section name the same method.
    outputs["best_new_method"] = best = best_new_method(lr_choice(records))
    outputs["paired"] = against_mezo(outputs["table3"], ("adamezo", best))
    long_methods = sorted({m for methods in outputs["long_budget"].values() for m in methods})
    outputs["paired_long"] = against_mezo(outputs["long_budget"], long_methods)
    outputs["adaptive"] = adaptive_side_by_side(records, outputs["passes_to_mezo"])
    for name, data in outputs.items():
        (results / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = markdown(records, outputs)
    write_docs(docs, lines)
    if plots:
        plot_curves(records, outputs["passes_to_mezo"], docs)
        plot_long_curves(
            records, {"long": outputs["long_budget"], "gpu-long": outputs["gpu_long"]}, docs
        )
        plot_new_methods(records, outputs["new_methods"], docs)
        plot_lr_grids(outputs["lr_grid"], docs)
        plot_grids(outputs["grids"]["betas"], outputs["grids"]["horizon"], docs, outputs["seeds"])
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    outputs = report(args.results, args.docs, plots=not args.no_plots)
    print(json.dumps({k: len(v) if isinstance(v, (dict, list)) else v for k, v in outputs.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
