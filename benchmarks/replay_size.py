"""How big is a fine-tune's log next to the weights it rebuilds? (README: sharing a fine-tune)

Fine-tunes SmolLM2-135M-Instruct on Rotten Tomatoes with the given settings, replays the run from
its log (``adamezo replay``), checks that the rebuilt weights are bitwise the run's, and prints
the sizes and times as JSON (and appends them to ``--out`` if given).

    python benchmarks/replay_size.py --tuning lora --optimizer adamezo --lr 1e-2 --steps 50
    python benchmarks/replay_size.py --tuning full --optimizer mezo --lr 1e-6 --steps 20
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.replay import replay_run


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", default="lora")
    parser.add_argument("--optimizer", default="adamezo")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-dev", type=int, default=32)
    parser.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adamezo-replay-") as folder:  # a full model is 1 GB
        measure(args, Path(folder))


def measure(args: argparse.Namespace, root: Path) -> None:
    config = FinetuneConfig(
        model="smollm2-135m",
        task="rotten_tomatoes",
        optimizer=args.optimizer,
        tuning=args.tuning,
        lr=args.lr,
        steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.steps,
        n_train=1000,
        n_dev=args.n_dev,
        n_test=0,
        test=False,
        keep_best=False,
        output_dir=str(root / "run"),
        device="cpu",
        progress=False,
    )
    started = time.perf_counter()
    result = run_finetune(config)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # The rebuild alone, as measured before replay checked logs; bitwise is checked below.
    replay_run(result.run_dir, root / "replayed", verify=False)
    replay_seconds = time.perf_counter() - started

    run_files = weight_files(result.run_dir / "model")
    replayed_files = weight_files(root / "replayed")
    bitwise = len(run_files) == len(replayed_files) and all(
        (a := load_file(str(x))).keys() == (b := load_file(str(y))).keys()
        and all(torch.equal(a[k], b[k]) for k in a)
        for x, y in zip(run_files, replayed_files, strict=True)
    )
    log = (result.run_dir / "log.jsonl").read_bytes()
    train_lines = [x for x in log.splitlines() if b'"type": "train"' in x]
    record = {
        "model": config.model,
        "tuning": config.tuning,
        "optimizer": config.optimizer,
        "steps": config.steps,
        "log_bytes": len(log),
        "log_gzip_bytes": len(gzip.compress(log)),
        "train_record_bytes_mean": sum(map(len, train_lines)) / len(train_lines),
        "weights_bytes": sum(p.stat().st_size for p in run_files),
        "trainable_parameters": result.metrics["trainable_parameters"],
        "train_seconds": round(train_seconds, 1),
        "replay_seconds": round(replay_seconds, 1),
        "bitwise_equal": bitwise,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
