"""Step-time breakdown (forward, perturb, update) of reference-style MeZO, our MeZO and our
AdaMeZO (K = 10), median over steps, the three variants interleaved step by step.

Reference-style MeZO is the original MeZO trainer's code (Malladi et al., 2023): before each
perturbation ``torch.manual_seed(seed)``, then per tensor ``z = torch.normal(...)`` and
``param.data = param.data + scale * z * eps``, three times (+1, −2, +1), and the update draws z a
fourth time. Ours perturbs twice (+μ, −2μ) and restores inside the fused update.

    python benchmarks/step_time.py --model smollm2-sst2  # the pipeline's workload (below)
    python benchmarks/step_time.py --model smollm2   # SmolLM2-135M LM loss, batch 16, sequence 64
    python benchmarks/step_time.py --model mlp       # forward-light: 58.7 M-parameter MLP

``smollm2-sst2`` is what ``adamezo finetune`` computes when it fully tunes SmolLM2-135M on SST-2
with batch 16: real SST-2 training prompts (``--data-dir``, default ../shared/data), encoded by the
pipeline's own encoder, and its objective (logits only at the scored positions, cross-entropy over
the candidates' scores). Each round draws the next batch of 16 from a seeded order; the three
variants of a round see the same batch.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from _common import machine, median, set_threads, smollm2_parser, write
from torch import nn

import adamezo
from adamezo.kernels import resolve_kernel

HORIZON = 10


CLOCK = time.perf_counter
"""Wall clock by default; ``--clock cpu`` takes the process's CPU time instead (see main)."""


class Timers:
    """Seconds spent per phase in the current step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, phase: str, fn):
        def timed(*args, **kwargs):
            start = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += CLOCK() - start

        return timed


class ReferenceMeZO:
    """The original MeZO trainer's zo_step + zo_update, with its per-tensor torch.normal."""

    def __init__(self, model: nn.Module, lr: float, eps: float, weight_decay: float = 0.0):
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.lr, self.eps, self.weight_decay = lr, eps, weight_decay
        self.rng = np.random.default_rng(0)

    def perturb(self, seed: int, scaling_factor: float) -> None:
        torch.manual_seed(seed)
        for _, param in self.named:
            z = torch.normal(
                mean=0, std=1, size=param.data.size(), device=param.device, dtype=param.dtype
            )
            param.data = param.data + scaling_factor * z * self.eps

    def update(self, seed: int, projected_grad: float) -> None:
        torch.manual_seed(seed)
        for name, param in self.named:
            z = torch.normal(
                mean=0, std=1, size=param.data.size(), device=param.device, dtype=param.dtype
            )
            if "bias" not in name and "layer_norm" not in name and "layernorm" not in name:
                param.data = param.data - self.lr * (
                    projected_grad * z + self.weight_decay * param.data
                )
            else:
                param.data = param.data - self.lr * (projected_grad * z)

    def step(self, closure, timers: Timers) -> None:
        seed = int(self.rng.integers(1_000_000_000))
        perturb = timers.wrap("perturb", self.perturb)
        forward = timers.wrap("forward", closure)
        with torch.no_grad():
            perturb(seed, 1)
            loss1 = forward()
            perturb(seed, -2)
            loss2 = forward()
            projected_grad = float((loss1 - loss2) / (2 * self.eps))
            perturb(seed, 1)
        timers.wrap("update", self.update)(seed, projected_grad)


class Ours:
    """One of our optimizers with its perturbations and closure timed; "update" is the rest of
    the step (the fused restore-and-update and the step's bookkeeping, which is microseconds)."""

    def __init__(self, optimizer: adamezo.optim.base.ZerothOrderOptimizer) -> None:
        self.optimizer = optimizer

    def step(self, closure, timers: Timers) -> None:
        optimizer = self.optimizer
        # The step's public hook for in-place perturbations, timed on this instance only.
        optimizer.shift = timers.wrap("perturb", type(optimizer).shift.__get__(optimizer))
        start = CLOCK()
        optimizer.step(timers.wrap("forward", closure))
        total = CLOCK() - start
        timers.seconds["update"] = total - timers.seconds["forward"] - timers.seconds["perturb"]


def load_kernel(path: str) -> adamezo.kernels.Kernel:
    """The NumbaKernel of an older copy of kernels/numba_cpu.py, loaded as its own module."""
    spec = importlib.util.spec_from_file_location("baseline_numba_cpu", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's on-disk cache finds compiled code by module name
    spec.loader.exec_module(module)
    return module.NumbaKernel()


def prefill_history(optimizer: adamezo.AdaMeZO, pairs: int) -> None:
    """Give AdaMeZO a full history, so every timed update combines ``horizon`` directions."""
    state = optimizer.state_dict()
    state["zo"]["history"] = [[s, 0.1 * (s + 1)] for s in range(pairs)]
    state["zo"]["steps"] = state["zo"]["updates"] = pairs
    optimizer.load_state_dict(state)


def random_smollm2() -> tuple[nn.Module, object]:
    """(model, tokenizer): SmolLM2-135M's architecture from its config, with random weights
    (seeded), and its tokenizer; the same shapes and forward cost as the real model, without
    reading its weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from adamezo.finetune.models import resolve_model

    source = resolve_model("smollm2-135m")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(source), dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build_sst2(data_dir: str, batch_size: int = 16, random_weights: bool = False):
    """SmolLM2-135M under the fine-tuning pipeline's classification objective on SST-2 (with
    ``random_weights``, :func:`random_smollm2`'s model in its place)."""
    from adamezo.finetune.models import load_model, max_positions
    from adamezo.finetune.objective import TaskObjective, metric_function
    from adamezo.finetune.scoring import CausalLMRunner, TokenEncoder
    from adamezo.tasks import get_task, load_task_data

    model, tokenizer = random_smollm2() if random_weights else load_model("smollm2-135m")
    model.eval()
    task = get_task("sst2")
    data = load_task_data(task, data_dir, seed=0, n_train=1000, n_dev=0, n_test=0)
    runner = CausalLMRunner(model, None, pad_id=tokenizer.pad_token_id or 0)
    objective = TaskObjective(
        runner,
        TokenEncoder(tokenizer, max_positions(model, tokenizer)),
        task.kind,
        metric_function(task),
    )
    order = np.random.default_rng(0).permutation(len(data.train))
    batches = [
        [data.train[i] for i in order[start : start + batch_size]]
        for start in range(0, len(order) - batch_size + 1, batch_size)
    ]

    def closure_for(round_index: int):
        batch = batches[round_index % len(batches)]
        return lambda: objective.loss(batch)

    name = "SmolLM2-135M-Instruct"
    if random_weights:
        name += "'s architecture with random weights (seeded; the same forward cost)"
    description = (
        f"{name} (fp32), full tuning, SST-2 classification objective "
        f"(real training prompts, last-position logits, cross-entropy over the candidates), "
        f"batch {batch_size}"
    )
    return model, closure_for, description


def build(model_name: str, data_dir: str) -> tuple[nn.Module, callable, str]:
    """(model, closure_for(round) -> closure, description)."""
    if model_name == "smollm2-sst2":
        return build_sst2(data_dir)
    model, closure, description = build_fixed(model_name)
    return model, lambda round_index: closure, description


def build_fixed(model_name: str) -> tuple[nn.Module, callable, str]:
    generator = torch.Generator().manual_seed(0)
    if model_name == "smollm2":
        from adamezo.finetune.models import load_model

        model, _ = load_model("smollm2-135m")
        model.eval()
        ids = torch.randint(0, model.config.vocab_size, (16, 64), generator=generator)

        def closure():
            return model(input_ids=ids, labels=ids).loss

        return model, closure, "SmolLM2-135M-Instruct (fp32), batch 16, sequence 64"
    widths = [1024, 4096, 4096, 4096, 4096, 1024]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.GELU()]
    model = nn.Sequential(*layers[:-1])
    inputs = torch.randn(16, widths[0], generator=generator)
    targets = torch.randn(16, widths[-1], generator=generator)

    def closure():
        return nn.functional.mse_loss(model(inputs), targets)

    return model, closure, "MLP 1024-4096-4096-4096-4096-1024 (fp32), batch 16"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = smollm2_parser(__doc__)
    parser.add_argument("--model", choices=["smollm2-sst2", "smollm2", "mlp"], default="smollm2")
    parser.add_argument("--steps", type=int, default=None, help="timed rounds (default 5 / 10)")
    parser.add_argument(
        "--baseline-kernel",
        default=None,
        metavar="FILE",
        help="an older kernels/numba_cpu.py (e.g. from `git show REV:src/adamezo/kernels/"
        "numba_cpu.py`): its MeZO and AdaMeZO run as two more variants of the same rounds",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: time phases by the process's CPU time (time.process_time), which other jobs "
        "on a shared machine do not inflate; meant for --threads 1, where it is the one "
        "working thread's time",
    )
    return parser.parse_args(argv)


def make_variants(
    model: nn.Module, params: list[torch.Tensor], baseline_kernel: str | None
) -> tuple[dict[str, ReferenceMeZO | Ours], str]:
    """The variants by name (reference-style MeZO, our MeZO, our AdaMeZO with a full history;
    with ``baseline_kernel``, our MeZO and AdaMeZO on that kernel too) and the kernel ours use."""
    lr, mu = 1e-7, 1e-3
    adamezo_opt = adamezo.AdaMeZO(params, lr=lr, perturbation_scale=mu, horizon=HORIZON, seed=1)
    prefill_history(adamezo_opt, HORIZON - 1)
    variants = {
        "reference-style MeZO": ReferenceMeZO(model, lr=lr, eps=mu),
        "our MeZO": Ours(adamezo.MeZO(params, lr=lr, perturbation_scale=mu, seed=1)),
        f"our AdaMeZO K={HORIZON}": Ours(adamezo_opt),
    }
    if baseline_kernel:
        old = load_kernel(baseline_kernel)
        old_ada = adamezo.AdaMeZO(
            params, lr=lr, perturbation_scale=mu, horizon=HORIZON, seed=1, kernel=old
        )
        prefill_history(old_ada, HORIZON - 1)
        variants["our MeZO, baseline kernel"] = Ours(
            adamezo.MeZO(params, lr=lr, perturbation_scale=mu, seed=1, kernel=old)
        )
        variants[f"our AdaMeZO K={HORIZON}, baseline kernel"] = Ours(old_ada)
    config = adamezo_opt.config
    return variants, resolve_kernel(config.kernel, params[0], config.chunk_size).name


def run_rounds(
    variants: dict[str, ReferenceMeZO | Ours], closure_for, steps: int
) -> dict[str, list[dict[str, float]]]:
    """Each variant's phase seconds per timed round: round 0 warms up (numba compile, allocator)
    and is left out; the variants take turns going first."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(steps + 1):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        closure = closure_for(round_index)
        for name in order:
            timers = Timers()
            start = CLOCK()
            variants[name].step(closure, timers)
            total = CLOCK() - start
            if round_index:
                samples[name].append({**timers.seconds, "step": total})
        print(
            f"round {round_index}: "
            + ", ".join(f"{n} {samples[n][-1]['step']:.2f}s" for n in names if round_index),
            flush=True,
        )
    return samples


def median_ratio(samples: dict[str, list[dict[str, float]]], top: str, bottom: str) -> float:
    """The median over rounds of one round's step time of ``top`` over ``bottom``'s."""
    return median(
        [a["step"] / b["step"] for a, b in zip(samples[top], samples[bottom], strict=True)]
    )


def ratios(
    samples: dict[str, list[dict[str, float]]],
    summary: dict[str, dict[str, float]],
    baseline: bool,
) -> tuple[dict[str, float], float]:
    """(the ratios of the variants' step times, the pooled forward median they use)."""
    names = list(samples)
    # Ratios of per-round step times (same round = same machine load), then their median.
    paired = {
        "AdaMeZO / our MeZO": median_ratio(samples, names[2], names[1]),
        "AdaMeZO / reference-style MeZO": median_ratio(samples, names[2], names[0]),
        "our MeZO / reference-style MeZO": median_ratio(samples, names[1], names[0]),
    }
    # Forward passes are the same work in every variant; under a shared machine their times
    # swing by tens of percent between rounds. A second estimate therefore adds each variant's
    # own noise work to the forward median pooled over all variants.
    pooled_forward = median([s["forward"] for rows in samples.values() for s in rows])
    modelled = {
        name: pooled_forward + row["perturb"] + row["update"] for name, row in summary.items()
    }
    if baseline:
        paired["baseline kernel: AdaMeZO / our MeZO"] = median_ratio(samples, names[4], names[3])
        paired["baseline kernel: AdaMeZO / our MeZO (pooled forward)"] = (
            modelled[names[4]] / modelled[names[3]]
        )
    paired["AdaMeZO / our MeZO (pooled forward)"] = modelled[names[2]] / modelled[names[1]]
    paired["AdaMeZO / reference-style MeZO (pooled forward)"] = (
        modelled[names[2]] / modelled[names[0]]
    )
    return paired, pooled_forward


def step_markdown(result: dict, clock: str) -> list[str]:
    """The results page: the phases per variant, then the ratios."""
    summary, pooled_forward = result["median_seconds"], result["pooled_forward_seconds"]
    lines = [
        f"## Step time: {result['model']}",
        "",
        f"{result['parameters'] / 1e6:.1f} M parameters, kernel `{result['kernel']}`, median of "
        f"{result['timed_steps']} steps per variant (interleaved, after one warm-up round); "
        + ("CPU seconds (time.process_time)." if clock == "cpu" else "wall-clock seconds."),
        "",
        "| variant | forward (2 passes) s | perturb s | update s | step s | non-forward share |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        share = 1 - row["forward"] / row["step"]
        lines.append(
            f"| {name} | {row['forward']:.3f} | {row['perturb']:.3f} | {row['update']:.3f} | "
            f"{row['step']:.3f} | {share:.1%} |"
        )
    lines += [
        "",
        "Ratios: 'median over rounds' divides the step times of one round (measured); 'pooled "
        f"forward' is (F + perturb + update) with F = {pooled_forward:.3f} s, the median forward "
        "time over all variants' steps (derived: the forward work is identical in all three).",
        "",
        "| ratio | value |",
        "|---|---|",
    ]
    return lines + [f"| {k} | {v:.3f} |" for k, v in result["median_ratios_per_round"].items()]


def main() -> None:
    args = parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    steps = args.steps or (10 if args.model == "mlp" else 5)
    set_threads(args)
    info = machine()
    model, closure_for, description = build(args.model, args.data_dir)
    for param in model.parameters():
        param.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    variants, kernel = make_variants(model, params, args.baseline_kernel)
    samples = run_rounds(variants, closure_for, steps)
    phases = ["forward", "perturb", "update", "step"]
    summary = {
        name: {phase: median([s[phase] for s in rows]) for phase in phases}
        for name, rows in samples.items()
    }
    paired, pooled_forward = ratios(samples, summary, bool(args.baseline_kernel))
    result = {
        "machine": info,
        "pooled_forward_seconds": pooled_forward,
        "model": description,
        "parameters": sum(p.numel() for p in params),
        "kernel": kernel,
        "baseline_kernel": args.baseline_kernel,
        "clock": args.clock,
        "timed_steps": steps,
        "median_seconds": summary,
        "median_ratios_per_round": paired,
        "samples": samples,
    }
    name = f"step_time_{args.model}" + (f"_{args.threads}thread" if args.threads else "")
    name += "_cpu" if args.clock == "cpu" else ""
    write(name, result, step_markdown(result, args.clock), args.out)


if __name__ == "__main__":
    main()
