"""Does AdaMeZO's second moment carry per-coordinate information on a real model?

docs/results.md argues that it hardly can: with p ≈ gᵀz and Gaussian z, the expected second
moment of coordinate j is E[(gᵀz)² z_j²] = ‖g‖² + 2 g_j², and in 134.5 M dimensions the ‖g‖²
term, the same for every coordinate, swamps 2 g_j². This script measures it on SmolLM2-135M at
its pretrained weights, on one training batch (fixed, so that g is one vector):

1. g, the batch's true gradient, by one backward pass;
2. ``--directions`` Gaussian directions z_i, each with its two-point estimate
   p_i = (L(θ + μ z_i) − L(θ − μ z_i)) / 2μ, and the check p_i ≈ gᵀz_i;
3. for each horizon K, AdaMeZO's moments over the last K directions with its default weights
   (docs/algorithms.md §3), m = Σ a_k p z and v = Σ b_k (p z)², and three update directions:
   AdaMeZO's m / √v, the same m over one scalar √mean(v) (a normalised momentum MeZO step), and
   MeZO's p z of the newest direction. It reports the cosine of each with g and with each other,
   the correlation of v_j with g_j², and the expected per-coordinate share 2 g_j² / ‖g‖².

If v carried per-coordinate information, m / √v would point closer to g than m / √mean(v).

    OMP_NUM_THREADS=1 python benchmarks/second_moment_signal.py --data-dir DATA
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from _common import machine, write
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from adamezo.rules import truncated_ema_weights

EPS = 1e-8
"""AdaMeZO's default ε."""


CHUNK = 1 << 24
"""Elements per float64 chunk: sums run in double precision without a double copy of the model."""


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(
        float(torch.dot(a[i : i + CHUNK].double(), b[i : i + CHUNK].double()))
        for i in range(0, a.numel(), CHUNK)
    )


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) summed in double precision; NaN when either is zero (a constant v, say)."""
    norms = math.sqrt(_dot(a, a) * _dot(b, b))
    return _dot(a, b) / norms if norms > 0 else math.nan


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return cosine(a - float(a.mean(dtype=torch.float64)), b - float(b.mean(dtype=torch.float64)))


def coordinate_signal(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> dict[str, float]:
    """How AdaMeZO's per-coordinate step m / (√v + ε) compares, as an estimate of g's direction,
    with the same momentum over one scalar √mean(v) and over v's expectation ‖g‖² + 2 g_j²
    (all flat vectors of one length; cosines of one window are noisy, compare them paired)."""
    adaptive = m / (v.sqrt() + EPS)
    flat = m / math.sqrt(float(v.mean(dtype=torch.float64)))
    expected = m / (_dot(g, g) + 2 * g.square()).sqrt()
    return {
        "cos_adaptive_g": cosine(adaptive, g),
        "cos_flat_g": cosine(flat, g),
        "cos_expected_v_g": cosine(expected, g),
        "cos_adaptive_flat": cosine(adaptive, flat),
        "corr_v_g2": pearson(v, g.square()),
        "mean_v_over_g_norm2": float(v.mean(dtype=torch.float64)) / _dot(g, g),
    }


def expected_share(g: torch.Tensor) -> dict[str, float]:
    """The spread of E[v_j] = ‖g‖² + 2 g_j² over coordinates, as 2 g_j² / ‖g‖²."""
    share = 2 * g.square() / _dot(g, g)
    return {
        "max": float(share.max()),
        "fraction_over_1pct": float((share > 0.01).mean(dtype=torch.float64)),
        "fraction_over_0.1pct": float((share > 0.001).mean(dtype=torch.float64)),
        "mean": float(share.mean(dtype=torch.float64)),
    }


def build(args):
    from adamezo.finetune.models import load_model
    from adamezo.finetune.objective import build_objective
    from adamezo.finetune.tuning import prepare_tuning
    from adamezo.tasks import get_task, load_task_data

    task = get_task(args.task)
    data = load_task_data(task, args.data_dir, seed=args.seed, n_train=1000, n_dev=0, n_test=0)
    model, tokenizer = load_model(args.model, num_layers=args.num_layers)
    model.eval()
    tuned = prepare_tuning(model, "full")
    objective = build_objective(tuned, tokenizer, task, args.max_length)
    return objective, tuned.trainable_parameters(), data.train[: args.batch_size]


def true_gradient(objective, params, batch) -> torch.Tensor:
    for p in params:
        p.grad = None
    objective.loss(batch).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    for p in params:
        p.grad = None
    return g


def directions(base, objective, params, batch, args):
    """Yield (z_i, p_i) for each seeded Gaussian direction, leaving the weights as they were."""
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.directions):
        z = torch.randn(base.shape, generator=generator)
        losses = []
        for sign in (1.0, -1.0):
            vector_to_parameters(base + sign * args.mu * z, params)
            losses.append(float(objective.loss(batch)))
        vector_to_parameters(base, params)
        yield z, (losses[0] - losses[1]) / (2 * args.mu)


def measure(args) -> dict:
    """AdaMeZO's moments over disjoint windows of K directions each, for every K asked."""
    objective, params, batch = build(args)
    g = true_gradient(objective, params, batch)
    base = parameters_to_vector(params).detach().clone()
    weights = {
        k: (truncated_ema_weights(0.7, k), truncated_ema_weights(0.9, k)) for k in args.horizons
    }
    moments = {k: (torch.zeros_like(base), torch.zeros_like(base)) for k in args.horizons}
    windows: dict[str, list[dict[str, float]]] = {str(k): [] for k in args.horizons}
    projections, mezo_cosines, started = [], [], time.perf_counter()
    with torch.no_grad():
        for i, (z, p) in enumerate(directions(base, objective, params, batch, args)):
            projections.append({"p": p, "g_dot_z": _dot(g, z)})
            pz = p * z
            mezo_cosines.append(cosine(pz, g))
            for k, (m, v) in moments.items():
                age = k - 1 - i % k  # k = 0 is a window's newest direction
                m.add_(pz, alpha=weights[k][0][age])
                v.addcmul_(pz, pz, value=weights[k][1][age])
                if age == 0:
                    windows[str(k)].append(coordinate_signal(g, m, v))
                    m.zero_(), v.zero_()
            print(f"direction {i + 1}/{args.directions}: p {p:.4g}", flush=True)
    ps = torch.tensor([r["p"] for r in projections])
    gz = torch.tensor([r["g_dot_z"] for r in projections])
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "parameters": base.numel(),
        "g_norm": math.sqrt(_dot(g, g)),
        "corr_p_g_dot_z": pearson(ps, gz),
        "p_over_g_dot_z_median": float((ps / gz).median()),
        "expected_share_2g2_over_g_norm2": expected_share(g),
        "cos_mezo_g_mean": sum(mezo_cosines) / len(mezo_cosines),
        "windows": windows,
        "projections": projections,
    }


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def markdown(result: dict) -> list[str]:
    share = result["expected_share_2g2_over_g_norm2"]
    lines = [
        f"{result['parameters']:,} parameters, {result['settings']['directions']} directions on "
        f"one batch; corr(p, gᵀz) = {result['corr_p_g_dot_z']:.4f}, median p / gᵀz = "
        f"{result['p_over_g_dot_z_median']:.3f}.",
        "",
        f"Expected per-coordinate share 2g_j²/‖g‖²: max {share['max']:.2e}, coordinates above 1% "
        f"{share['fraction_over_1pct']:.2e}, above 0.1% {share['fraction_over_0.1pct']:.2e}.",
        "",
        "Means over disjoint windows of K directions (the window count in brackets):",
        "",
        "| K | cos(m/√v, g) | cos(m/√mean v, g) | cos(m/√E[v], g) | cos(m/√v, m/√mean v) "
        "| corr(v, g²) |",
        "|---|---|---|---|---|---|",
    ]
    keys = ("cos_adaptive_g", "cos_flat_g", "cos_expected_v_g", "cos_adaptive_flat", "corr_v_g2")
    for k, rows in result["windows"].items():
        cells = [f"{_mean(rows, key):.3e}" for key in keys]
        lines.append(f"| {k} ({len(rows)}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"MeZO's step p z, one direction: mean cos with g {result['cos_mezo_g_mean']:.3e}.",
    ]
    return lines


def batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments :func:`build` reads: the model, the task, the batch and the data's seed."""
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--num-layers", type=int, default=None, help="keep the first N blocks")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    batch_arguments(parser)
    parser.add_argument("--directions", type=int, default=40)
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--mu", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    if any(args.directions % k for k in args.horizons):
        parser.error(f"each of --horizons must divide --directions ({args.directions})")
    info = machine()
    result = {"machine": info, "settings": vars(args) | {"out": str(args.out)}}
    result |= measure(args)
    write("second_moment_signal", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
