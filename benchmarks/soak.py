"""Soak: many steps of every zeroth-order optimizer with a state_dict round trip every few hundred.

For each optimizer, two runs over the same small model (an MLP regression, a few thousand
parameters) and the same seeds: one plain, one that every ``--every`` steps saves the optimizer's
``state_dict`` with ``torch.save``, loads it back with ``torch.load(weights_only=True)`` into a
freshly built optimizer and goes on with that one. Reported: whether the final weights are bitwise
equal, and the process's resident memory (RSS) over the run, sampled every ``--every`` steps.

    python benchmarks/soak.py --steps 20000 --every 500 --out benchmarks/results/soak.json
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import time
from pathlib import Path

import torch

from adamezo.optim import MEAZO, AdaMeZO, HiZOO, MeZO, MeZOSwitch, ZOAdam


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def builders(steps: int):
    return {
        "AdaMeZO": lambda p: AdaMeZO(p, lr=1e-3, seed=1),
        "MeZO": lambda p: MeZO(p, lr=1e-4, seed=1),
        "ZOAdam": lambda p: ZOAdam(p, lr=1e-3, seed=1),
        "MEAZO": lambda p: MEAZO(p, lr=1e-3, seed=1),
        "HiZOO": lambda p: HiZOO(p, lr=1e-4, seed=1),
        "MeZOSwitch": lambda p: MeZOSwitch(p, [1e-3] * (steps + 1), lr=1e-4, seed=1),
    }


def problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    x, y = torch.randn(256, 16), torch.randn(256, 1)
    return model, (lambda: torch.nn.functional.mse_loss(model(x), y))


def run(build, steps: int, every: int, round_trips: bool) -> tuple[list[torch.Tensor], list]:
    model, closure = problem()
    params = list(model.parameters())
    optimizer = build(params)
    memory = []
    for step in range(1, steps + 1):
        optimizer.step(closure)
        if step % every == 0:
            if round_trips:
                buffer = io.BytesIO()
                torch.save(optimizer.state_dict(), buffer)
                buffer.seek(0)
                optimizer = build(params)
                optimizer.load_state_dict(torch.load(buffer, weights_only=True))
            gc.collect()
            memory.append(round(rss_mib(), 2))
    return [p.detach().clone() for p in params], memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for name, build in builders(args.steps).items():
        started = time.perf_counter()
        plain, _ = run(build, args.steps, args.every, round_trips=False)
        trips, memory = run(build, args.steps, args.every, round_trips=True)
        row = {
            "optimizer": name,
            "steps": args.steps,
            "round_trips": args.steps // args.every,
            "bitwise_equal": all(torch.equal(a, b) for a, b in zip(plain, trips, strict=True)),
            "rss_mib_first": memory[0],
            "rss_mib_last": memory[-1],
            "rss_mib_max": max(memory),
            # Growth over the second half: after the allocator has settled.
            "rss_mib_growth_second_half": round(memory[-1] - memory[len(memory) // 2], 2),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
        if args.out:  # after every optimizer, so that a cut-short soak keeps what it measured
            meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": 1}
            text = json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
            Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
