"""Does ``torch.compile`` speed up the forward pass of the real workload on this CPU?

SmolLM2-135M under the fine-tuning pipeline's SST-2 classification objective (real training
prompts, batch 16; the same closure as ``step_time.py --model smollm2-sst2``), one thread. The
model's ``forward`` is swapped between the eager one and ``torch.compile(forward)`` (inductor)
in interleaved rounds, each round timing one closure call of each on the same batch (CPU time of
this process, and wall clock). Compilation is timed apart: the first ``--warmup`` compiled calls,
on batches of different lengths (the first recompilation makes the shapes dynamic), are not in
the rounds. Also recorded: whether a compiled loss equals the eager one bit for bit, and whether
two compiled calls on the same batch agree (what a resumed or re-run run needs).

    OMP_NUM_THREADS=1 python benchmarks/compiled_forward.py --data-dir /path/to/data
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine, median, write
from step_time import build_sst2


def timed(closure) -> tuple[float, float, torch.Tensor]:
    """(CPU seconds, wall seconds, loss) of one closure call, gradients off."""
    cpu, wall = time.process_time(), time.perf_counter()
    with torch.no_grad():
        loss = closure()
    return time.process_time() - cpu, time.perf_counter() - wall, loss.detach()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3, help="compiled calls before the rounds")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def compile_calls(model, compiled, closure_for, warmup: int) -> list[dict[str, float]]:
    """(CPU, wall) seconds of the first ``warmup`` compiled calls, on batches of different
    lengths: compile, then recompile (the shapes become dynamic)."""
    model.forward = compiled
    compile_seconds = []
    for index in range(warmup):
        cpu, wall, _ = timed(closure_for(1000 + index))
        compile_seconds.append({"cpu": cpu, "wall": wall})
    return compile_seconds


def run_rounds(model, eager, compiled, closure_for, rounds: int) -> dict[str, Any]:
    """Per round, one call of each forward on the same batch (taking turns going first) and one
    more compiled call: the times, whether the compiled loss equals the eager one bit for bit,
    and whether two compiled calls agree."""
    times: dict[str, dict[str, list[float]]] = {
        name: {"cpu": [], "wall": []} for name in ("eager", "compiled")
    }
    bitwise_equal, repeatable = [], []
    for round_index in range(rounds):
        closure = closure_for(round_index)
        losses = {}
        order = ("eager", "compiled") if round_index % 2 == 0 else ("compiled", "eager")
        for name in order:
            model.forward = eager if name == "eager" else compiled
            cpu, wall, losses[name] = timed(closure)
            times[name]["cpu"].append(cpu)
            times[name]["wall"].append(wall)
        model.forward = compiled
        again = timed(closure)[2]
        bitwise_equal.append(bool(torch.equal(losses["eager"], losses["compiled"])))
        repeatable.append(bool(torch.equal(again, losses["compiled"])))
        print(round_index, {k: v["cpu"][-1] for k, v in times.items()}, flush=True)
    model.forward = eager
    return {"times": times, "bitwise_equal": bitwise_equal, "repeatable": repeatable}


def compiled_markdown(result: dict[str, Any], warmup: int) -> list[str]:
    """The results page: each variant's times, the ratio, compilation and the equality checks."""
    times, ratio = result["times"], result["median_ratio_compiled_to_eager"]
    bitwise_equal = result["compiled_loss_bitwise_equal_to_eager"]
    repeatable = result["compiled_loss_repeatable"]
    lines = [
        f"{result['workload']}; one closure call (one forward pass) per variant per round, "
        f"{result['rounds']} interleaved rounds, one thread.",
        "",
        "| variant | median CPU s | mean | median wall s |",
        "|---|---|---|---|",
    ]
    for name, t in times.items():
        lines.append(
            f"| {name} | {median(t['cpu']):.3f} | {statistics.fmean(t['cpu']):.3f} | "
            f"{median(t['wall']):.3f} |"
        )
    compile_cpu = ", ".join(f"{c['cpu']:.1f}" for c in result["compile_calls"])
    return [
        *lines,
        "",
        f"Compiled / eager, median over rounds of the per-round ratio: **{ratio['cpu']:.3f}** by "
        f"CPU time, {ratio['wall']:.3f} by wall clock. The first {warmup} compiled calls "
        f"(compilation, then recompilation for new lengths) took {compile_cpu} CPU s.",
        f"Compiled loss bitwise equal to the eager one: {sum(bitwise_equal)}/{len(bitwise_equal)} "
        f"rounds; two compiled calls on the same batch equal: {sum(repeatable)}/{len(repeatable)}.",
    ]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    info = machine()
    model, closure_for, description = build_sst2(args.data_dir)
    eager = model.forward
    compiled = torch.compile(eager)
    compile_seconds = compile_calls(model, compiled, closure_for, args.warmup)
    rounds = run_rounds(model, eager, compiled, closure_for, args.rounds)
    times = rounds["times"]
    ratio = {
        key: median(
            [c / e for c, e in zip(times["compiled"][key], times["eager"][key], strict=True)]
        )
        for key in ("cpu", "wall")
    }
    result = {
        "machine": info,
        "workload": description,
        "rounds": args.rounds,
        "compile_calls": compile_seconds,
        "times": times,
        "median_ratio_compiled_to_eager": ratio,
        "compiled_loss_bitwise_equal_to_eager": rounds["bitwise_equal"],
        "compiled_loss_repeatable": rounds["repeatable"],
    }
    write("compiled_forward", result, compiled_markdown(result, args.warmup), args.out)


if __name__ == "__main__":
    main()
