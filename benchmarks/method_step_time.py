"""Step time per forward pass and state memory of FZOO, LOZO, LOZO-M and ZO-Muon against MeZO.

The workload is ``step_time.py``'s ``smollm2-sst2``: what ``adamezo finetune`` computes when it
fully tunes SmolLM2-135M (fp32) on SST-2 with batch 16 (real training prompts, the pipeline's own
objective). Every round draws the next batch and steps each optimizer once on it, in a rotating
order, all over the same weights at a tiny lr (the timing does not depend on it); round 0 warms
up (numba compiles, ZO-Muon draws its projections) and is reported apart. Each optimizer's step
time is split into the closure's forward passes and the rest (perturbation and update); the
ratios to MeZO are taken round by round (same round, same machine load) and their median
reported.

Memory: the bytes each optimizer holds beyond the model after the run, measured (its
``state_dict`` tensors, and ZO-Muon's cached projections), next to the model's own bytes.

    OMP_NUM_THREADS=2 python benchmarks/method_step_time.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import load_average, machine, median, write
from step_time import build

import adamezo
from adamezo.optim.registry import optimizer_entry

METHODS = ("mezo", "fzoo", "lozo", "lozo-m", "zo-muon")


def state_bytes(optimizer: adamezo.ZerothOrderOptimizer) -> int:
    """Tensor bytes of the optimizer's state_dict, plus ZO-Muon's cached projections."""
    state = optimizer.state_dict()
    tensors = sum(
        v.numel() * v.element_size()
        for s in state["state"].values()
        for v in s.values()
        if isinstance(v, torch.Tensor)
    )
    return tensors + getattr(optimizer, "projection_bytes", 0)


class Timed:
    """One optimizer and the seconds its last step spent inside the closure."""

    def __init__(self, optimizer: adamezo.ZerothOrderOptimizer) -> None:
        self.optimizer = optimizer
        self.forward = 0.0

    def step(self, closure) -> float:
        self.forward = 0.0

        def timed():
            start = time.perf_counter()
            try:
                return closure()
            finally:
                self.forward += time.perf_counter() - start

        start = time.perf_counter()
        self.optimizer.step(timed)
        return time.perf_counter() - start


def measure(args) -> tuple[dict, dict, dict, list[float], str, int]:
    """(timed optimizers, per-round samples, warm-up step seconds, load per round, workload,
    model bytes)."""
    model, closure_for, description = build("smollm2-sst2", args.data_dir)
    params = [p.requires_grad_(True) for p in model.parameters()]
    model_bytes = sum(p.numel() * p.element_size() for p in params)
    timed = {
        name: Timed(optimizer_entry(name).build(params, lr=1e-9, perturbation_scale=1e-3, seed=1))
        for name in METHODS
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in METHODS}
    warmup: dict[str, float] = {}
    loads = []
    for round_index in range(args.rounds + 1):
        shift = round_index % len(METHODS)
        closure = closure_for(round_index)
        for name in METHODS[shift:] + METHODS[:shift]:
            step = timed[name].step(closure)
            if round_index == 0:
                warmup[name] = step
            else:
                samples[name].append({"step": step, "forward": timed[name].forward})
        loads.append(load_average()[0])
        print(f"round {round_index} done, load {loads[-1]}", flush=True)
    return timed, samples, warmup, loads, description, model_bytes


def summarise(timed, samples, warmup, model_bytes) -> dict[str, dict]:
    """Per method: medians per pass, round-by-round ratios to MeZO, and the state it holds."""
    passes = {name: len(t.optimizer.passes) for name, t in timed.items()}
    mezo = samples["mezo"]

    def per_pass(name, sample, forward=False):
        return (sample["step"] - (sample["forward"] if forward else 0.0)) / passes[name]

    rows = {}
    for name in METHODS:
        held = state_bytes(timed[name].optimizer)
        pairs = list(zip(samples[name], mezo, strict=True))
        rows[name] = {
            "passes_per_step": passes[name],
            "step_seconds": median([s["step"] for s in samples[name]]),
            "seconds_per_pass": median([per_pass(name, s) for s in samples[name]]),
            "non_forward_seconds_per_pass": median(
                [per_pass(name, s, True) for s in samples[name]]
            ),
            "per_pass_ratio_to_mezo": median(
                [per_pass(name, s) / per_pass("mezo", m) for s, m in pairs]
            ),
            "non_forward_per_pass_ratio_to_mezo": median(
                [per_pass(name, s, True) / per_pass("mezo", m, True) for s, m in pairs]
            ),
            "warmup_step_seconds": warmup[name],
            "state_bytes": held,
            "state_fraction_of_model": held / model_bytes,
        }
    return rows


def markdown(rows: dict[str, dict], description: str, rounds: int, loads, model_bytes) -> list:
    lines = [
        f"Workload: {description}; {rounds} timed rounds after one warm-up round, "
        "optimizers interleaved in a rotating order over the same batches. Medians; ratios "
        'taken round by round. "rest" is the step minus its forward passes (perturbation, '
        "update, bookkeeping).",
        "",
        "| method | passes/step | s/step | s/pass | ratio to MeZO (per pass) | rest s/pass "
        "| rest ratio to MeZO | warm-up step s | state beyond model |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['passes_per_step']} | {r['step_seconds']:.2f} | "
            f"{r['seconds_per_pass']:.3f} | {r['per_pass_ratio_to_mezo']:.2f} | "
            f"{r['non_forward_seconds_per_pass']:.3f} | "
            f"{r['non_forward_per_pass_ratio_to_mezo']:.2f} | {r['warmup_step_seconds']:.2f} | "
            f"{r['state_bytes'] / 1e6:.2f} MB ({100 * r['state_fraction_of_model']:.2f}%) |"
        )
    lines += ["", f"Model: {model_bytes / 1e6:.1f} MB. Load average per round: {loads}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", default=None, help="results directory (default results/)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    timed, samples, warmup, loads, description, model_bytes = measure(args)
    rows = summarise(timed, samples, warmup, model_bytes)
    result = {
        "workload": description,
        "rounds": args.rounds,
        "model_bytes": model_bytes,
        "load_average_per_round": loads,
        "methods": rows,
        "machine": info,
    }
    lines = markdown(rows, description, args.rounds, loads, model_bytes)
    path = write("method_step_time", result, lines, out=args.out)
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
