"""What one more stream of AdaMeZO's update costs, split into hash, table lookup and the rest.

Builds three throwaway variants of the numba kernel by removing parts of its noise generation
(the table lookups; the hash and the lookups), times the fused update at K = 1 and K = 10 for
each, interleaved, by the calling thread's CPU time with one thread, and takes differences:

    lookup per stream = (full − no lookup) / 10 at K = 10
    hash per stream   = (no lookup − no noise) / 10 at K = 10
    rest per stream   = (no noise at K = 10 − no noise at K = 1) / 9   (m, v, sqrt, division)

The variants compute garbage; only their times are used.

    python benchmarks/stream_cost.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, median, write
from kernel_compare import update
from step_time import load_kernel

import adamezo.kernels.numba_cpu as numba_cpu
from adamezo.noise import step_seed, stream_base

LOOKUP = "        for w in range(count):\n            bits = words[w]\n"
HASH = "            words[w] = _mix64(word)\n"


def variants(directory: Path) -> dict[str, object]:
    source = Path(numba_cpu.__file__).read_text()
    assert LOOKUP in source and HASH in source, "the kernel's noise loops changed: update me"
    no_lookup = source.replace(LOOKUP, LOOKUP.replace("range(count)", "range(0)"))
    no_noise = no_lookup.replace(HASH, "            words[w] = word\n")
    kernels = {"full": numba_cpu.NumbaKernel()}
    for name, text in (("no lookup", no_lookup), ("no noise", no_noise)):
        path = directory / f"numba_cpu_{name.replace(' ', '_')}.py"
        path.write_text(text)
        kernels[name] = load_kernel(str(path))
    return kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=1 << 22)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    bases = [stream_base(step_seed(7, s), 0) for s in range(10)]
    x = torch.randn(args.numel)
    with tempfile.TemporaryDirectory() as directory:
        kernels = variants(Path(directory))
        samples = {(name, k): [] for name in kernels for k in (1, 10)}
        for round_index in range(args.rounds + 1):  # round 0 compiles
            for name, kernel in kernels.items():
                for k in (1, 10):
                    start = time.thread_time()
                    kernel.fused_update(x, bases[:k], update(k, k > 1))
                    if round_index:
                        samples[(name, k)].append((time.thread_time() - start) / x.numel() * 1e9)
    ns = {f"{name}, K = {k}": median(values) for (name, k), values in samples.items()}
    per_stream = {
        "table lookup": (ns["full, K = 10"] - ns["no lookup, K = 10"]) / 10,
        "hash": (ns["no lookup, K = 10"] - ns["no noise, K = 10"]) / 10,
        "m, v, sqrt and division (the rest)": (ns["no noise, K = 10"] - ns["no noise, K = 1"]) / 9,
    }
    per_stream["total"] = sum(per_stream.values())
    result = {
        "machine": info,
        "numel": args.numel,
        "rounds": args.rounds,
        "median_ns_per_element": ns,
        "ns_per_element_per_stream": per_stream,
        "samples": {f"{name}, K = {k}": v for (name, k), v in samples.items()},
    }
    lines = [
        "## Cost of one more stream in the numba fused update",
        "",
        f"float32, {args.numel} elements, one thread, thread CPU time, median of {args.rounds} "
        "interleaved rounds.",
        "",
        "| variant | ns/element |",
        "|---|---|",
        *[f"| {name} | {value:.3f} |" for name, value in ns.items()],
        "",
        "| per extra stream | ns/element |",
        "|---|---|",
        *[f"| {name} | {value:.3f} |" for name, value in per_stream.items()],
    ]
    write("stream_cost", result, lines)


if __name__ == "__main__":
    main()
