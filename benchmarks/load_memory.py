"""Peak host memory (RSS) of loading SmolLM2-135M with the fine-tuning loader, per dtype, each in
a fresh process, against the same process's imports alone.

    python benchmarks/load_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys

from _common import machine, write

CHILD = """
import json, resource, sys
import torch, transformers
from adamezo.finetune.models import load_model, resolve_model
resolve_model("smollm2-135m", sys.argv[1])  # one-time conversions are not part of a load
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model, _ = load_model("smollm2-135m", dtype=sys.argv[1], device="cpu")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
weights = sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({"imports_kib": before, "peak_kib": peak, "weight_bytes": weights}))
"""


def main() -> None:
    rows, results = [], {}
    for dtype in ("float32", "bfloat16", "float16"):
        out = (
            subprocess.run(
                [sys.executable, "-c", CHILD, dtype], capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        result = json.loads(out)
        results[dtype] = result
        added = (result["peak_kib"] - result["imports_kib"]) / 1024
        rows.append(
            f"| {dtype} | {result['weight_bytes'] / 2**20:.0f} MiB | "
            f"{result['imports_kib'] / 1024:.0f} MiB | {result['peak_kib'] / 1024:.0f} MiB | "
            f"**{added:.0f} MiB** |"
        )
    markdown = [
        'Peak RSS of `load_model("smollm2-135m", dtype=..., device="cpu")`, one fresh '
        "process per dtype.",
        "",
        "| dtype | weights | RSS after imports | peak RSS | added by loading |",
        "|---|---|---|---|---|",
        *rows,
    ]
    write("load_memory", {"machine": machine(), "results": results}, markdown)


if __name__ == "__main__":
    main()
