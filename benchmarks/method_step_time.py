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

``--overhead-only`` times the steps with a closure that does no forward pass (it returns a seeded
pseudo-random loss), so that on a loaded machine the rounds measure what differs between the
methods, the perturbation and update passes over all 134.5 M weights, in minutes; the forward
pass itself is then timed ``--forward-samples`` times on the real batches, and the time per
forward pass of each method is estimated as forward + its own overhead per pass.

    OMP_NUM_THREADS=2 python benchmarks/method_step_time.py --data-dir ../shared/data
    OMP_NUM_THREADS=2 python benchmarks/method_step_time.py --overhead-only --rounds 5
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
    if args.overhead_only:
        forward = []
        for index in range(args.forward_samples):
            closure = closure_for(index)
            start = time.perf_counter()
            with torch.no_grad():
                closure()
            forward.append(time.perf_counter() - start)
        description += (
            f"; steps timed with a closure that makes no forward pass, the forward pass timed "
            f"alone {args.forward_samples} times: median {median(forward):.3f} s"
        )
        generator = torch.Generator().manual_seed(0)
        closure_for = lambda index: lambda: torch.rand((), generator=generator)  # noqa: E731
        args.forward_alone = median(forward)
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


def summarise(timed, samples, warmup, model_bytes, forward_alone=None) -> dict[str, dict]:
    """Per method: medians per pass, round-by-round ratios to MeZO, and the state it holds;
    with ``forward_alone`` (seconds of one forward pass timed apart), the estimated time per
    forward pass, forward + the method's own overhead per pass, and its ratio to MeZO's."""
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
            "estimated_seconds_per_pass": None,
            "estimated_per_pass_ratio_to_mezo": None,
            "state_bytes": held,
            "state_fraction_of_model": held / model_bytes,
        }
        if forward_alone is not None:
            estimate = [forward_alone + per_pass(name, s, True) for s in samples[name]]
            rows[name]["estimated_seconds_per_pass"] = median(estimate)
            rows[name]["estimated_per_pass_ratio_to_mezo"] = median(
                [
                    (forward_alone + per_pass(name, s, True))
                    / (forward_alone + per_pass("mezo", m, True))
                    for s, m in pairs
                ]
            )
    return rows


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows: dict[str, dict], description: str, rounds: int, loads, model_bytes) -> list:
    lines = [
        f"Workload: {description}; {rounds} timed rounds after one warm-up round, "
        "optimizers interleaved in a rotating order over the same batches. Medians; ratios "
        'taken round by round. "rest" is the step minus its forward passes (perturbation, '
        "update, bookkeeping).",
        "",
        "| method | passes/step | s/step | s/pass | ratio to MeZO (per pass) | rest s/pass "
        "| rest ratio to MeZO | est. s/pass with forward | est. ratio to MeZO "
        "| warm-up step s | state beyond model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['passes_per_step']} | {r['step_seconds']:.2f} | "
            f"{r['seconds_per_pass']:.3f} | {r['per_pass_ratio_to_mezo']:.2f} | "
            f"{r['non_forward_seconds_per_pass']:.3f} | "
            f"{r['non_forward_per_pass_ratio_to_mezo']:.2f} | "
            f"{_number(r['estimated_seconds_per_pass'], 3)} | "
            f"{_number(r['estimated_per_pass_ratio_to_mezo'], 2)} | "
            f"{r['warmup_step_seconds']:.2f} | "
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
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="time the steps without forward passes; time the forward pass apart (see above)",
    )
    parser.add_argument("--forward-samples", type=int, default=3)
    args = parser.parse_args()
    args.forward_alone = None
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    timed, samples, warmup, loads, description, model_bytes = measure(args)
    rows = summarise(timed, samples, warmup, model_bytes, args.forward_alone)
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
