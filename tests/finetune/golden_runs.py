"""Short deterministic runs on a tiny random model whose files are kept in tests/finetune/golden/.

The golden copies were made before the fine-tuning package was restructured; a refactor that
changes a weight or a log line by one bit fails ``test_golden_runs``. Regenerate them (only when
a change of behaviour is intended, and say so in the commit) with
``python -m tests.finetune.golden_runs``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from tests.finetune.helpers import config, sentiment_data, tiny_llama, tiny_tokenizer

GOLDEN = Path(__file__).parent / "golden"

# Keys of log.jsonl and metrics.json that measure time: they differ between identical runs.
TIMING = ("time", "step_seconds", "step_cpu_seconds", "train_seconds")

CASES: dict[str, dict[str, Any]] = {
    # AdaMeZO on all weights, a decaying lr, keep-best, test evaluation, checkpoints.
    "adamezo-full": dict(
        optimizer="adamezo", steps=6, eval_every=3, checkpoint_every=2, lr_schedule="linear"
    ),
    # MeZO through LoRA with weight decay off biases and norms.
    "mezo-lora": dict(
        optimizer="mezo",
        tuning="lora",
        lr=1e-2,
        steps=5,
        eval_every=2,
        weight_decay=0.1,
        weight_decay_exclude_bias_norm=True,
        keep_best=False,
    ),
    # First-order Adam: the backprop branch of the loop.
    "fo-adam-full": dict(optimizer="fo-adam", steps=4, eval_every=2, lr=1e-3),
}


def environment() -> dict[str, str]:
    """What bitwise equality of float arithmetic depends on besides the code."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def run_case(name: str, root: Path) -> dict[str, Any]:
    """Run case ``name`` under ``root``; its comparable outputs (config, log, metrics, weights)."""
    from adamezo.finetune.loop import run_finetune

    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, dtype=torch.float32)
    cfg = config(root, output_dir=str(root / name), **CASES[name])
    result = run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())
    run = result.run_dir
    saved = json.loads((run / "config.json").read_text())
    saved.pop("output_dir")  # a temporary directory
    return {
        "config": saved,
        "log": (run / "log.jsonl").read_text(),
        "metrics": json.loads((run / "metrics.json").read_text()),
        "weights": weight_summary(result.model.state_dict()),
    }


def weight_summary(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """SHA-256 of all tensors (names, dtypes, shapes, bytes), and each tensor's float64 sum and
    absolute sum, which tell how far two sets of weights are apart when the hashes differ."""
    digest = hashlib.sha256()
    tensors = {}
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        t64 = t.to(torch.float64)
        tensors[name] = {"sum": float(t64.sum()), "abs_sum": float(t64.abs().sum())}
    return {"sha256": digest.hexdigest(), "tensors": tensors}


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    return value


# Records the golden logs predate: the end record (the weights' SHA-256, added for replay's
# checks) is the one line a run writes now that the golden copies lack; the weights it hashes
# are compared through weights.json, and test_replay_verify checks the record itself.
NEWER_RECORDS = ("end",)
# Keys the golden logs predate: the start record's machine (it names the processor and thread
# count, which environment.json already settles for the bitwise comparison).
NEWER_KEYS = ("machine",)


def log_records(text: str) -> list[dict[str, Any]]:
    records = (json.loads(line) for line in text.splitlines())
    return [
        {k: v for k, v in without_timing(r).items() if k not in NEWER_KEYS}
        for r in records
        if r["type"] not in NEWER_RECORDS
    ]


def write_golden() -> None:
    GOLDEN.mkdir(exist_ok=True)
    (GOLDEN / "environment.json").write_text(json.dumps(environment(), indent=1) + "\n")
    with tempfile.TemporaryDirectory() as scratch:
        for name in CASES:
            out = run_case(name, Path(scratch))
            folder = GOLDEN / name
            folder.mkdir(exist_ok=True)
            (folder / "log.jsonl").write_text(out["log"])
            for key in ("config", "metrics", "weights"):
                text = json.dumps(out[key], indent=1, sort_keys=True) + "\n"
                (folder / f"{key}.json").write_text(text)


if __name__ == "__main__":
    torch.set_num_threads(1)
    write_golden()
    print(f"wrote {GOLDEN}", file=sys.stderr)
