"""Cost of the exact perturbation: AdaMeZO step time with perturbation="exact" against "in_place",
the two interleaved step by step on the same model and batch, and the most memory the perturbed
copies held at once.

    python benchmarks/exact_step.py                       # tiny Llama + SmolLM2-135M, float32
    python benchmarks/exact_step.py --dtype bfloat16 --models tiny
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import machine, median, write

import adamezo
from adamezo import perturbation as exact_module


def tiny_llama(dtype: torch.dtype) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(dtype)


def build(name: str, dtype: torch.dtype) -> torch.nn.Module:
    if name == "tiny":
        return tiny_llama(dtype)
    from adamezo.finetune.models import load_model

    return load_model("smollm2-135m", dtype=str(dtype).removeprefix("torch."))[0]


class CopyMeter:
    """The most bytes of perturbed copies alive in the cache at once."""

    def __init__(self) -> None:
        self.peak = 0
        original = exact_module.ExactPerturbation.perturbed

        def perturbed(owner, index):
            copy = original(owner, index)
            live = owner.cached_bytes
            self.peak = max(self.peak, live)
            return copy

        exact_module.ExactPerturbation.perturbed = perturbed


def measure(name: str, dtype: torch.dtype, steps: int, batch: int, length: int) -> dict:
    model = build(name, dtype).eval()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(0))

    def closure() -> torch.Tensor:
        return model(input_ids=ids, labels=ids).loss

    modes = ("in_place", "exact")
    optimizers = {m: adamezo.AdaMeZO(model.parameters(), lr=0.0, perturbation=m) for m in modes}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for round_ in range(steps + 1):
        for mode in modes if round_ % 2 else modes[::-1]:
            start = time.perf_counter()
            optimizers[mode].step(closure)
            if round_:  # the first round warms up
                times[mode].append(time.perf_counter() - start)
    ratios = [e / i for e, i in zip(times["exact"], times["in_place"], strict=True)]
    parameters = sum(p.numel() for p in model.parameters())
    largest = max(p.numel() * p.element_size() for p in model.parameters())
    return {
        "model": name,
        "dtype": str(dtype),
        "parameters": parameters,
        "batch": [batch, length],
        "seconds": times,
        "median_in_place": median(times["in_place"]),
        "median_exact": median(times["exact"]),
        "median_ratio": median(ratios),
        "largest_tensor_bytes": largest,
        "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    meter = CopyMeter()
    rows, results = [], []
    for name in args.models:
        meter.peak = 0
        result = measure(name, dtype, args.steps, args.batch, args.length)
        result["peak_copy_bytes"] = meter.peak
        results.append(result)
        rows.append(
            f"| {name} | {args.dtype} | {result['parameters'] / 1e6:.1f} M | "
            f"{result['median_in_place']:.3f} | {result['median_exact']:.3f} | "
            f"**{result['median_ratio']:.3f}** | {meter.peak / 2**20:.1f} MiB "
            f"({meter.peak / result['model_bytes']:.1%} of the weights; largest tensor "
            f"{result['largest_tensor_bytes'] / 2**20:.1f} MiB) |"
        )
    markdown = [
        f"AdaMeZO step, batch {args.batch} x {args.length}, {args.steps} interleaved steps "
        "(after one warm-up), lr 0.",
        "",
        "| model | dtype | parameters | in-place s | exact s | exact / in-place (median of "
        "per-step ratios) | most perturbed-copy memory at once |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    write(
        f"exact_step_{args.dtype}",
        {"machine": machine(), "results": results},
        markdown,
    )


if __name__ == "__main__":
    main()
