"""How often the two passes of a zeroth-order step see the same value, per objective.

A step's update is proportional to ℓ⁺ − ℓ⁻; where the two are equal the step learns nothing.
On SmolLM2-135M (full tuning, μ 1e-3, batch 16) and SST-2 training batches, this evaluates the
two passes of MeZO steps at lr 0 (the weights stay at the base model, a fresh direction each step)
and counts, for the same forward passes, the steps whose cross-entropy, plain argmax accuracy and
adamezo's ``accuracy`` objective ((correct + p_gold) / 2, adamezo.finetune.scores) tie.

    OMP_NUM_THREADS=1 nice python benchmarks/objective_ties.py --data-dir DATA --steps 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write

from adamezo.finetune.builder import build_optimizer
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.models import load_model
from adamezo.finetune.objective import build_objective, load_data
from adamezo.finetune.scoring import classification_losses
from adamezo.finetune.tuning import prepare_tuning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    config = FinetuneConfig(
        task="sst2", optimizer="mezo", tuning="full", lr=0.0, data_dir=args.data_dir,
        n_train=1000, n_dev=200, n_test=0, max_length=256, device="cpu",
    ).resolved()  # fmt: skip
    task, data = load_data(config)
    model, tokenizer = load_model(config.model)
    tuned = prepare_tuning(model, "full")
    objective = build_objective(tuned, tokenizer, task, config.max_length)
    optimizer = build_optimizer(config, tuned)
    model.eval()
    passes: list[dict[str, float]] = []

    def closure(batch) -> torch.Tensor:
        scores = objective.scores(batch)
        labels = [ex.label for ex in batch]
        right = torch.tensor(
            [float(int(s.argmax()) == y) for s, y in zip(scores, labels, strict=True)]
        )
        p_gold = torch.stack(
            [torch.softmax(s.double(), 0)[y] for s, y in zip(scores, labels, strict=True)]
        )
        values = {
            "loss": float(classification_losses(scores, labels).mean()),
            "plain accuracy": float(right.mean()),
            "accuracy objective": float(((right + p_gold) / 2).mean()),
        }
        passes.append(values)
        return torch.tensor(values["loss"])

    for step in range(args.steps):
        start = (step * args.batch_size) % len(data.train)
        batch = data.train[start : start + args.batch_size]
        optimizer.step(lambda batch=batch: closure(batch))
    ties = {
        name: sum(passes[2 * i][name] == passes[2 * i + 1][name] for i in range(args.steps))
        for name in passes[0]
    }
    result = {"machine": machine(), "steps": args.steps, "batch_size": args.batch_size,
              "ties": ties, "passes": passes}  # fmt: skip
    lines = [
        f"SmolLM2-135M, full tuning, μ {config.perturbation_scale:g}, SST-2 training batches of "
        f"{args.batch_size}, {args.steps} MeZO steps at lr 0 (base weights, fresh directions).",
        "",
        "| objective | steps whose two passes tie |",
        "|---|---|",
        *[f"| {name} | {n} / {args.steps} |" for name, n in ties.items()],
    ]
    print("\n".join(lines))
    write("objective_ties", result, lines)


if __name__ == "__main__":
    main()
