"""The model-level part of the GPU check (run by benchmarks/gpu_check.sh): needs one CUDA GPU and
nothing from outside the machine (the model is a random-init Llama built from a config).

1. Exact half-precision steps on the GPU: 1000 AdaMeZO steps at lr 0 leave bf16 and fp16 weights
   bitwise unchanged, and the perturbed weights the closure sees with the Triton kernel equal
   those of the plain-torch kernel bit for bit.
2. Step time on a ~1.1B-parameter Llama in bf16, batch 16 x 128: our MeZO, our AdaMeZO (K = 10,
   exact steps, the default for bf16), AdaMeZO with in-place steps, and reference-style MeZO.
3. Peak GPU memory above the weights: inference alone, MeZO, AdaMeZO, ZO-Adam.

    PYTHONPATH=src python3 benchmarks/gpu_check.py [DIR]            (default benchmarks/results/gpu)
    PYTHONPATH=src python3 benchmarks/gpu_check.py DIR --dry-run    # tiny, on the CPU

DIR/gpu_check.{json,md} are rewritten after each section, so a crash in a later section keeps
the earlier ones; a section that fails is recorded there and the script exits 1.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from _common import RESULTS, run_sections
from torch import nn

import adamezo

BATCH, LENGTH = 16, 128
HORIZON = 10
"""AdaMeZO's K in the timings: its first K steps use fewer streams, so timing starts after them."""
DRY = {"steps": 20, "kernel": "numba", "batch": (2, 16)}
"""--dry-run: a tiny model on the CPU, to check the script itself without a GPU."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def llama_1b(device: torch.device, tiny: bool = False) -> nn.Module:
    """TinyLlama-1.1B's shape (hidden 2048, MLP 5632, 22 layers, 32 heads, 4 KV heads, 32000
    tokens), random weights, in bf16 on ``device``; ``tiny``: a 2-layer one for --dry-run."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = (32000, 2048, 5632, 22, 32, 4) if not tiny else (512, 64, 128, 2, 4, 2)
    vocab, hidden, mlp, layers, heads, kv_heads = shape
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    with device:
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model.eval()


def same_bits(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(
        torch.equal(x.detach().view(torch.int16), y.detach().view(torch.int16))
        for x, y in zip(a, b, strict=True)
    )


def seen_by_closure(model: nn.Module, kernel: str) -> list[list[torch.Tensor]]:
    """The weights the closure sees in one exact MeZO step with ``kernel``."""
    views: list[list[torch.Tensor]] = []

    def closure() -> torch.Tensor:
        views.append([p.detach().clone() for p in model.parameters()])
        return torch.zeros(())

    adamezo.MeZO(model.parameters(), lr=0.0, kernel=kernel, seed=5).step(closure)
    return views


def check_exact_restore(device: torch.device, steps: int, kernel: str) -> list[dict]:
    results = []
    for dtype in (torch.bfloat16, torch.float16):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 8)).to(device, dtype)
        x = torch.randn(32, 256, device=device, dtype=dtype)
        before = [p.detach().clone() for p in model.parameters()]
        opt = adamezo.AdaMeZO(model.parameters(), lr=0.0, weight_decay=0.1)
        for _ in range(steps):
            opt.step(lambda m=model, x=x: m(x).float().square().mean())
        fast, reference = seen_by_closure(model, kernel), seen_by_closure(model, "torch")
        results.append(
            {
                "dtype": str(dtype),
                "steps_at_lr_0": steps,
                "unchanged": same_bits(list(model.parameters()), before),
                "kernel": kernel,
                "perturbed_copies_equal_torch": all(
                    same_bits(a, b) for a, b in zip(fast, reference, strict=True)
                ),
            }
        )
        print(results[-1], flush=True)
    return results


def timed_steps(step, steps: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def step_time(model: nn.Module, device: torch.device, steps: int, batch: tuple) -> dict:
    from step_time import ReferenceMeZO, Timers

    ids = torch.randint(0, model.config.vocab_size, batch, device=device)

    def closure() -> torch.Tensor:
        return model(input_ids=ids, labels=ids).loss

    params = list(model.parameters())
    ours = {
        "mezo": adamezo.MeZO(params, lr=1e-7),
        "adamezo": adamezo.AdaMeZO(params, lr=1e-7, horizon=HORIZON),
        "adamezo_in_place": adamezo.AdaMeZO(
            params, lr=1e-7, horizon=HORIZON, perturbation="in_place"
        ),
    }
    reference = ReferenceMeZO(model, lr=1e-7, eps=1e-3)
    runs = {name: (lambda o=opt: o.step(closure)) for name, opt in ours.items()}
    runs["reference_mezo"] = lambda: reference.step(closure, Timers())
    # Untimed warm-up: Triton compilation and the allocator, and for AdaMeZO its first K steps,
    # which use fewer than K streams (timing from step 3 on mixed K = 3..7 into "K = 10").
    for run in runs.values():
        for _ in range(HORIZON + 2):
            run()
    sync(device)
    times = {name: [] for name in runs}
    for _ in range(2):  # two interleaved rounds
        for name, run in runs.items():
            times[name] += timed_steps(run, max(1, steps // 2), device)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "seconds": times,
        "median_s": median,
        "adamezo_over_mezo": median["adamezo"] / median["mezo"],
        "adamezo_over_reference_mezo": median["adamezo"] / median["reference_mezo"],
        "exact_over_in_place": median["adamezo"] / median["adamezo_in_place"],
    }


def peak_memory(model: nn.Module, device: torch.device) -> dict:
    ids = torch.randint(0, model.config.vocab_size, (BATCH, LENGTH), device=device)

    def closure() -> torch.Tensor:
        return model(input_ids=ids, labels=ids).loss

    params = list(model.parameters())
    makers = {
        "inference": None,
        "mezo": lambda: adamezo.MeZO(params, lr=1e-7),
        "adamezo": lambda: adamezo.AdaMeZO(params, lr=1e-7, horizon=HORIZON),
        "zo_adam": lambda: adamezo.ZOAdam(params, lr=1e-7),
    }
    peaks = {}
    for name, make in makers.items():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        if make is None:
            with torch.no_grad():
                closure()
        else:
            opt = make()
            for _ in range(2):
                opt.step(closure)
            del opt
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated(device) - base
    weights = sum(p.numel() * p.element_size() for p in params)
    return {"weights_bytes": weights, "peak_above_weights_bytes": peaks}


def markdown(result: dict) -> list[str]:
    lines = [f"# GPU check on {result['info']['device']}", "", "## Exact half-precision steps", ""]
    for r in result.get("exact", []):
        lines.append(
            f"- {r['dtype']}: {r['steps_at_lr_0']} steps at lr 0 bitwise unchanged: "
            f"{r['unchanged']}; {r['kernel']} kernel's perturbed copies equal the reference "
            f"kernel's: {r['perturbed_copies_equal_torch']}"
        )
    if "step_time" in result:
        st = result["step_time"]
        lines += [
            "",
            f"## Step time, {result['parameters'] / 1e9:.2f} B-parameter Llama, bf16, "
            f"batch {result['batch'][0]} x {result['batch'][1]}",
            "",
            "| variant | median s |",
            "|---|---|",
        ]
        lines += [f"| {name} | {s:.4f} |" for name, s in st["median_s"].items()]
        lines += [
            "",
            f"AdaMeZO / MeZO: **{st['adamezo_over_mezo']:.3f}**; AdaMeZO / reference-style "
            f"MeZO: **{st['adamezo_over_reference_mezo']:.3f}**; exact / in-place AdaMeZO: "
            f"**{st['exact_over_in_place']:.3f}**",
        ]
    if "memory" in result:
        mem = result["memory"]
        lines += [
            "",
            f"## Peak GPU memory above the weights ({mem['weights_bytes'] / 2**30:.2f} GiB)",
            "",
            "| run | GiB |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v / 2**30:.3f} |" for k, v in mem["peak_above_weights_bytes"].items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=RESULTS / "gpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dry-run", action="store_true", help="a tiny model on the CPU")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check.py: no CUDA device (use --dry-run to check the script on the CPU)")
        return 3
    device = torch.device("cpu" if args.dry_run else "cuda")
    info = {
        "device": "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "python benchmarks/gpu_check.py DIR" + (" --dry-run" if args.dry_run else ""),
    }
    exact_steps, kernel = (DRY["steps"], DRY["kernel"]) if args.dry_run else (1000, "triton")
    batch = DRY["batch"] if args.dry_run else (BATCH, LENGTH)
    result: dict = {"info": info, "batch": list(batch)}
    models: list[nn.Module] = []

    def model() -> nn.Module:  # built once, by the first section that needs it
        if not models:
            models.append(llama_1b(device, tiny=args.dry_run))
            result["parameters"] = sum(p.numel() for p in models[0].parameters())
        return models[0]

    sections = [
        ("exact", lambda: check_exact_restore(device, exact_steps, kernel)),
        ("step_time", lambda: step_time(model(), device, 2 if args.dry_run else args.steps, batch)),
    ]
    if device.type == "cuda":
        sections.append(("memory", lambda: peak_memory(model(), device)))
    ran = run_sections(args.out, "gpu_check", result, sections, markdown)
    exact = result.get("exact", [])
    ok = all(r["unchanged"] and r["perturbed_copies_equal_torch"] for r in exact)
    return 0 if ran and ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
