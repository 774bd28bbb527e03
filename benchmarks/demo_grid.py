"""Try fine-tuning settings for the README demo (SmolLM2-135M, AdaMeZO, Rotten Tomatoes).

Each setting is one ``run_finetune`` call; the results (zero-shot and fine-tuned dev accuracy,
held-out test accuracy, steps, time) go to a JSON file and a Markdown table.

    python benchmarks/demo_grid.py --out benchmarks/results/demo_grid.json \
        --setting lora:1e-3 --setting full:3e-5 [--steps 150 --batch-size 16 --n-dev 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", required=True, help="TUNING:LR[:OPTIMIZER]")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/demo_grid")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = []
    for setting in args.setting:
        tuning, lr, *rest = setting.split(":")
        optimizer = rest[0] if rest else "adamezo"
        config = FinetuneConfig(
            model="smollm2-135m",
            task="rotten_tomatoes",
            optimizer=optimizer,
            tuning=tuning,
            lr=float(lr),
            steps=args.steps,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            n_train=args.n_train,
            n_dev=args.n_dev,
            n_test=args.n_test,
            seed=args.seed,
            output_dir=f"{args.workdir}/{tuning}-{optimizer}-{lr}",
            overwrite=True,
            save_model=False,
            progress=False,
        )
        started = time.perf_counter()
        result = run_finetune(config)
        m = result.metrics
        log = (result.run_dir / "log.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in log]
        row = {
            "tuning": tuning,
            "optimizer": optimizer,
            "lr": float(lr),
            "zero_shot_dev_accuracy": m["zero_shot"]["dev_accuracy"],
            "dev_accuracy": m["dev"]["dev_accuracy"],
            "test_accuracy": m.get("test", {}).get("test_accuracy"),
            "zero_shot_dev_loss": m["zero_shot"]["dev_loss"],
            "dev_loss": m["dev"]["dev_loss"],
            "best_step": m["best_step"],
            "steps": m["steps"],
            "seconds": time.perf_counter() - started,
            "dev_curve": [
                (r["step"], r["dev_loss"], r.get("dev_accuracy"))
                for r in records
                if r["type"] == "eval"
            ],
        }
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "dev_curve"}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.node()} {platform.processor() or platform.machine()}"
    if torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name()}"
    summary = {"args": vars(args), "machine": machine, "results": results}
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
