"""Step time per forward pass and state memory of FZOO, LOZO, LOZO-M and ZO-Muon against MeZO.

The workload is ``step_time.py``'s ``smollm2-sst2``: what ``adamezo finetune`` computes when it
fully tunes SmolLM2-135M (fp32) on SST-2 with batch 16 (real training prompts, the pipeline's own
objective); ``--random-weights`` builds the same architecture with random weights instead of
reading the real ones (the same shapes, so the same forward and optimizer cost). Every round draws
the next batch and steps each optimizer once on it, in a rotating order, all over the same weights
at a tiny lr (the timing does not depend on it); round 0 warms up (numba compiles, ZO-Muon
factorises its projections) and is reported apart. Each step is split into the closure's forward
passes and the rest (perturbation, update, bookkeeping); the ratios to MeZO are taken round by
round (same round, same machine load) and their median reported.

``--overhead-only`` steps with a closure that makes no forward pass (it returns a seeded
pseudo-random loss), so that on a loaded machine the rounds measure what differs between the
methods in minutes. The forward pass itself is then timed once in every round, at its own place in
the rotation, with the same threads: each round's estimate of a method's time per forward pass is
that round's forward + the method's rest per pass, and its ratio to MeZO's is taken in the round.

Memory: the bytes each optimizer holds beyond the model after the run (its ``state_dict``
tensors, and what it caches outside it: ZO-Muon's r × r triangles), next to the model's own bytes.
Peak memory is ``method_memory.py``'s.

    python benchmarks/method_step_time.py --random-weights --overhead-only --threads 1
    python benchmarks/method_step_time.py --data-dir ../shared/data --rounds 3
"""

from __future__ import annotations

import time

import torch
from _common import load_average, machine, median, set_threads, smollm2_parser, write
from step_time import build_sst2

import adamezo
from adamezo.optim.registry import optimizer_entry

METHODS = ("mezo", "fzoo", "lozo", "lozo-m", "zo-muon")
FORWARD = "forward"
"""The pseudo-method of ``--overhead-only``: one forward pass, timed in the rotation."""


def state_bytes(optimizer: adamezo.ZerothOrderOptimizer) -> int:
    """Tensor bytes of the optimizer's state_dict, plus what it caches outside it."""
    state = optimizer.state_dict()
    tensors = sum(
        v.numel() * v.element_size()
        for s in state["state"].values()
        for v in s.values()
        if isinstance(v, torch.Tensor)
    )
    # projection_bytes: ZO-Muon's cached P before it kept only the triangles (older revisions).
    cached = getattr(optimizer, "cache_bytes", getattr(optimizer, "projection_bytes", 0))
    return tensors + cached


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


def forward_seconds(closure) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        closure()
    return time.perf_counter() - start


def measure(args) -> tuple[dict, dict, dict, list[float], str, int]:
    """(timed optimizers, per-round samples, warm-up step seconds, load per round, workload,
    model bytes). With ``--overhead-only`` the samples hold the forward pass's own time under
    FORWARD, one per round."""
    model, closure_for, description = build_sst2(args.data_dir, random_weights=args.random_weights)
    params = [p.requires_grad_(True) for p in model.parameters()]
    model_bytes = sum(p.numel() * p.element_size() for p in params)
    timed = {
        name: Timed(optimizer_entry(name).build(params, lr=1e-9, perturbation_scale=1e-3, seed=1))
        for name in METHODS
    }
    order = METHODS + ((FORWARD,) if args.overhead_only else ())
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in order}
    warmup: dict[str, float] = {}
    loads = []
    generator = torch.Generator().manual_seed(0)
    for round_index in range(args.rounds + 1):
        shift = round_index % len(order)
        real = closure_for(round_index)
        closure = (lambda: torch.rand((), generator=generator)) if args.overhead_only else real
        for name in order[shift:] + order[:shift]:
            if name == FORWARD:
                sample = {"step": forward_seconds(real), "forward": 0.0}
            else:
                sample = {"step": timed[name].step(closure), "forward": timed[name].forward}
            if round_index == 0:
                warmup[name] = sample["step"]
            else:
                samples[name].append(sample)
        loads.append(load_average()[0])
        print(f"round {round_index} done, load {loads[-1]}", flush=True)
    if args.overhead_only:
        forward = median(forward_of(samples))
        description += (
            "; steps timed with a closure that makes no forward pass, and the forward pass "
            f"timed alone once per round in the rotation (median {forward:.3f} s)"
        )
    return timed, samples, warmup, loads, description, model_bytes


def forward_of(samples: dict) -> list[float]:
    return [s["step"] for s in samples.get(FORWARD, [])]


def summarise(timed, samples, warmup, model_bytes) -> dict[str, dict]:
    """Per method: medians per pass, round-by-round ratios to MeZO, and the state it holds; the
    time per forward pass is measured (real closures) or estimated (``--overhead-only``: that
    round's forward + the method's rest per pass)."""
    passes = {name: len(t.optimizer.passes) for name, t in timed.items()}
    forwards = forward_of(samples)

    def rest(name, sample):
        return (sample["step"] - sample["forward"]) / passes[name]

    def per_pass(name, index):
        sample = samples[name][index]
        if forwards:
            return forwards[index] + rest(name, sample)
        return sample["step"] / passes[name]

    rows = {}
    for name in METHODS:
        held = state_bytes(timed[name].optimizer)
        rounds = range(len(samples[name]))
        rows[name] = {
            "passes_per_step": passes[name],
            "step_seconds": median([s["step"] for s in samples[name]]),
            "rest_seconds_per_pass": median([rest(name, s) for s in samples[name]]),
            "rest_per_pass_ratio_to_mezo": median(
                [rest(name, samples[name][i]) / rest("mezo", samples["mezo"][i]) for i in rounds]
            ),
            "seconds_per_pass": median([per_pass(name, i) for i in rounds]),
            "per_pass_ratio_to_mezo": median(
                [per_pass(name, i) / per_pass("mezo", i) for i in rounds]
            ),
            "per_pass_is_estimated": bool(forwards),
            "warmup_step_seconds": warmup[name],
            "state_bytes": held,
            "state_fraction_of_model": held / model_bytes,
        }
    return rows


def markdown(rows: dict[str, dict], description: str, rounds: int, loads, model_bytes) -> list:
    estimated = next(iter(rows.values()))["per_pass_is_estimated"]
    per_pass = "est. s/pass (forward + rest)" if estimated else "s/pass"
    lines = [
        f"Workload: {description}; {rounds} timed rounds after one warm-up round, "
        "optimizers interleaved in a rotating order over the same batches. Medians; ratios "
        'taken round by round. "rest" is the step minus its forward passes (perturbation, '
        "update, bookkeeping), per forward pass.",
        "",
        f"| method | passes/step | s/step | rest s/pass | rest / MeZO's | {per_pass} "
        "| per pass / MeZO's | warm-up step s | state beyond model |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['passes_per_step']} | {r['step_seconds']:.2f} | "
            f"{r['rest_seconds_per_pass']:.3f} | {r['rest_per_pass_ratio_to_mezo']:.2f} | "
            f"{r['seconds_per_pass']:.3f} | {r['per_pass_ratio_to_mezo']:.2f} | "
            f"{r['warmup_step_seconds']:.2f} | "
            f"{r['state_bytes'] / 1e6:.2f} MB ({100 * r['state_fraction_of_model']:.2f}%) |"
        )
    lines += ["", f"Model: {model_bytes / 1e6:.1f} MB. Load average per round: {loads}."]
    return lines


def main() -> None:
    parser = smollm2_parser(__doc__, random_weights=True)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds")
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="steps without forward passes; the forward pass timed once per round (see above)",
    )
    args = parser.parse_args()
    set_threads(args)
    info = machine()
    timed, samples, warmup, loads, description, model_bytes = measure(args)
    rows = summarise(timed, samples, warmup, model_bytes)
    result = {
        "workload": description,
        "rounds": args.rounds,
        "model_bytes": model_bytes,
        "forward_seconds_per_round": forward_of(samples),
        "load_average_per_round": loads,
        "methods": rows,
        "machine": info,
    }
    lines = markdown(rows, description, args.rounds, loads, model_bytes)
    path = write("method_step_time", result, lines, out=args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
