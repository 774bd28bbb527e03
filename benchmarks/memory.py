"""Peak memory of every optimizer relative to MeZO, fine-tuning SmolLM2-135M (batch 16, seq 64).

Method: each optimizer runs in a fresh process (so no allocator state carries over). The process
imports torch and adamezo, loads the model (fp32, 134.5 M parameters), builds the optimizer, then
resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs`` resets VmHWM to the
current RSS) and trains for ``--steps`` steps; the peak is VmHWM afterwards. So the peak counts
what training holds at its worst moment (weights, optimizer state, activations, scratch, the
Python/torch runtime) but not the transient cost of loading the model. AdaMeZO's history is filled
first, so its updates combine K = 10 directions. First-order Adam runs forward + backward +
``torch.optim.Adam.step``. Reported: the peak, and the peak minus the RSS before the model was
loaded (the runtime's share), both as ratios to MeZO.

    python benchmarks/memory.py
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

OPTIMIZERS = ["MeZO", "AdaMeZO", "ZOAdam", "MEAZO", "HiZOO", "MeZOSwitch", "Adam (backprop)"]


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1))


def child(name: str, steps: int) -> dict:
    import torch
    from step_time import prefill_history

    import adamezo
    from adamezo.finetune.models import load_model

    runtime = _status_kib("VmRSS")
    model, _ = load_model("smollm2-135m")
    model.eval()
    loaded = _status_kib("VmRSS")
    params = list(model.parameters())
    ids = torch.randint(
        0, model.config.vocab_size, (16, 64), generator=torch.Generator().manual_seed(0)
    )

    def closure():
        return model(input_ids=ids, labels=ids).loss

    if name == "Adam (backprop)":
        optimizer = torch.optim.Adam(params, lr=1e-5)

        def step():
            optimizer.zero_grad()
            closure().backward()
            optimizer.step()

    else:
        if name == "MeZOSwitch":
            optimizer = adamezo.MeZOSwitch(params, lambda t: 1e-3, lr=1e-7)
        else:
            optimizer = getattr(adamezo, name)(params, lr=1e-7)
        if isinstance(optimizer, adamezo.AdaMeZO):
            prefill_history(optimizer, optimizer.horizon - 1)

        def step():
            optimizer.step(closure)

    Path("/proc/self/clear_refs").write_text("5")
    for _ in range(steps):
        step()
    return {
        "optimizer": name,
        "runtime_rss_mib": runtime / 1024,
        "rss_after_model_load_mib": loaded / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", choices=OPTIMIZERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.steps)), flush=True)
        return
    from _common import machine, write

    info = machine()
    rows = []
    for name in OPTIMIZERS:
        output = subprocess.run(
            [sys.executable, __file__, "--child", name, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        row = json.loads(
            next(line for line in output.splitlines() if line.startswith("RESULT "))[7:]
        )
        rows.append(row)
        print(row, flush=True)
    mezo = next(r for r in rows if r["optimizer"] == "MeZO")
    for row in rows:
        row["peak_vs_mezo"] = row["peak_rss_mib"] / mezo["peak_rss_mib"]
        above = row["peak_rss_mib"] - row["runtime_rss_mib"]
        row["peak_above_runtime_vs_mezo"] = above / (mezo["peak_rss_mib"] - mezo["runtime_rss_mib"])
    result = {
        "machine": info,
        "steps": args.steps,
        "model": "SmolLM2-135M-Instruct fp32, batch 16, seq 64",
        "results": rows,
    }
    lines = [
        "## Peak memory on SmolLM2-135M (fp32, batch 16, sequence 64)",
        "",
        f"Peak RSS (VmHWM, reset after the model was loaded) over {args.steps} training steps, one "
        "fresh process per optimizer; 'runtime' is the RSS before the model was loaded.",
        "",
        "| optimizer | peak RSS MiB | × MeZO | peak − runtime MiB | × MeZO |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['optimizer']} | {r['peak_rss_mib']:.0f} | {r['peak_vs_mezo']:.3f} | "
            f"{r['peak_rss_mib'] - r['runtime_rss_mib']:.0f} | "
            f"{r['peak_above_runtime_vs_mezo']:.3f} |"
        )
    write("memory", result, lines)


if __name__ == "__main__":
    main()
