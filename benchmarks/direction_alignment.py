"""How well does each optimizer's actual update point along the true gradient, per forward pass?

A linearised-loss probe on SmolLM2-135M at its pretrained weights θ₀ and one fixed SST-2 training
batch (the batch and objective of second_moment_signal.py):

1. g = ∇L(θ₀) by one backward pass (float32, held in float64 afterwards);
2. every optimizer, the library's own class at its registry defaults (weight decay 0), runs over a
   float64 copy of the weights with a closure that returns the *linearised* loss
   ℓ(θ) = L₀ + ⟨θ − θ₀, g⟩, summed in float64: no forward pass, and exact as μ → 0;
3. per step it records the update Δ = θ_after − θ_before, cos(Δ, −g), ‖Δ‖/η and the first-order
   decrease ⟨−Δ, g⟩, split over the embedding, the other matrices and the one-dimensional tensors
   (biases, norm weights), which low-rank methods treat apart; and, after the last step, the
   cosine of the whole displacement θ_S − θ₀ with −g.

g does not change as θ moves, so the probe measures each estimator's alignment, not curvature, and
with λ = 0 nothing an update reads depends on θ: the directions do not depend on η (η only scales
them). Its figure of merit is a model, not a measurement of training: for a quadratic loss with
isotropic curvature h, a step of length α along Δ lowers the loss by α⟨−Δ,g⟩ − hα²‖Δ‖²/2, so at
the best fixed α the decrease per step is E⟨−Δ,g⟩² / (2h E‖Δ‖²) = ‖g‖²/(2h) times
ρ = E⟨−Δ,g⟩² / (E‖Δ‖² ‖g‖²) (≈ E[cos]² when ‖Δ‖ hardly varies); ρ per forward pass, relative to
MeZO's, says how much more a forward pass buys. For MeZO's Gaussian z, ρ = E cos² = 1/(d + 2).
Momentum methods repeat a direction over several steps, which raises their per-step cosine without
adding information; the displacement's cos² over S steps, per forward pass, counts that honestly.

    OMP_NUM_THREADS=1 python benchmarks/direction_alignment.py --data-dir DATA
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import machine, write
from second_moment_signal import batch_arguments, build, true_gradient

from adamezo.kernels.lowrank import is_matrix
from adamezo.optim import OPTIMIZERS, optimizer_entry
from adamezo.optim.base import ZerothOrderConfig

BASELINE = "mezo"

SHARED = {f.name for f in dataclasses.fields(ZerothOrderConfig)}
"""Config fields every optimizer has: left out of each probe's record (the settings say them)."""


@dataclass(frozen=True)
class Probe:
    """One optimizer setting to probe: a registry name and the options it overrides."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    sweep: str | None = None
    """The knob this point varies (None: the optimizer at its defaults)."""

    @property
    def label(self) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in self.options.items())
        return f"{self.name} ({settings})" if settings else self.name


def probes() -> list[Probe]:
    """Every method at its defaults, then the sweeps of the knobs issue 24 names (points equal
    to a default left out)."""
    base = [Probe(name) for name in ("mezo", "adamezo", "fzoo", "lozo", "lozo-m", "zo-muon")]
    sweep = [
        Probe("lozo", {"rank": r, "lazy_interval": nu}, "rank × lazy interval")
        for nu in (1, 50)
        for r in (1, 2, 8, 32)
    ]
    sweep += [
        Probe("zo-muon", {"rank": r, "queries": q}, "rank × queries")
        for r in (8, 64)
        for q in (1, 4, 16)
    ]
    sweep += [Probe("fzoo", {"queries": q}, "queries") for q in (2, 8, 32)]
    return base + [p for p in sweep if not _is_default(p)]


def _is_default(probe: Probe) -> bool:
    config = OPTIMIZERS[probe.name].cls.config_type
    defaults = config.__dataclass_fields__
    return all(defaults[k].default == v for k, v in probe.options.items())


def tensor_class(name: str, tensor: torch.Tensor) -> str:
    """Which part of the model a tensor is, as the low-rank methods see it."""
    if not is_matrix(tensor):
        return "vectors"
    return "embedding" if "embed" in name else "matrices"


class LinearisedLoss:
    """ℓ(θ) = L₀ + Σ_i ⟨θ_i − θ₀_i, g_i⟩ over float64 copies θ_i of the weights (the tensors an
    optimizer steps), summed in float64; differentiable (its gradient is g) when grad is on."""

    def __init__(self, origin: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], value: float):
        self.origin = [t.detach().to(torch.float64).contiguous() for t in origin]
        self.grads = [t.detach().to(torch.float64).contiguous() for t in grads]
        self.params = [t.clone().requires_grad_() for t in self.origin]
        self.value = value
        self.grad_sq = math.fsum(float(torch.dot(g.view(-1), g.view(-1))) for g in self.grads)
        self._scratch = torch.empty(max(t.numel() for t in self.origin), dtype=torch.float64)

    def __call__(self) -> torch.Tensor:
        terms = [
            torch.dot(self.difference(p, o).view(-1), g.view(-1))
            for p, o, g in zip(self.params, self.origin, self.grads, strict=True)
        ]
        return self.value + torch.stack(terms).sum()

    def difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a − b, in a buffer reused from call to call when grad is off (a step would otherwise
        allocate and fault in a model's worth of memory per pass), valid until the next call."""
        if torch.is_grad_enabled():
            return a - b
        return torch.sub(a, b, out=self._scratch[: a.numel()].view(a.shape))

    def reset(self) -> None:
        """θ ← θ₀, for the next optimizer."""
        with torch.no_grad():
            for p, o in zip(self.params, self.origin, strict=True):
                p.copy_(o)
                p.grad = None


def split(
    loss: LinearisedLoss, reference: Sequence[torch.Tensor], classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """For Δ = θ − ``reference``: Σ Δ² and ⟨−Δ, g⟩ per tensor class, in float64."""
    sq = dict.fromkeys(classes, 0.0)
    decrease = dict.fromkeys(classes, 0.0)
    with torch.no_grad():
        for p, r, g, c in zip(loss.params, reference, loss.grads, classes, strict=True):
            delta = loss.difference(p, r).view(-1)
            sq[c] += float(torch.dot(delta, delta))
            decrease[c] -= float(torch.dot(delta, g.view(-1)))
    return {"sq": sq, "decrease": decrease}


def alignment(parts: dict[str, dict[str, float]], grad_sq: float) -> dict[str, float]:
    """cos(Δ, −g), ‖Δ‖ and ⟨−Δ, g⟩ from :func:`split`'s sums."""
    sq, decrease = math.fsum(parts["sq"].values()), math.fsum(parts["decrease"].values())
    norm = math.sqrt(sq)
    return {
        "cos": decrease / (norm * math.sqrt(grad_sq)) if norm > 0 else math.nan,
        "norm": norm,
        "decrease": decrease,
    }


def run_probe(
    probe: Probe,
    loss: LinearisedLoss,
    before: Sequence[torch.Tensor],
    classes: Sequence[str],
    args: argparse.Namespace,
    directions: int,
) -> dict[str, Any]:
    """Steps of ``probe``'s optimizer on the linearised loss from θ₀: enough to explore about
    ``directions`` directions (its queries per step times the steps), at least ``args.min_steps``,
    so that every setting's E cos² is about as precise (its spread shrinks as 1/√queries)."""
    loss.reset()
    with torch.no_grad():
        for b, o in zip(before, loss.origin, strict=True):
            b.copy_(o)
    optimizer = optimizer_entry(probe.name).build(
        loss.params,
        lr=args.lr,
        weight_decay=0.0,
        seed=args.seed,
        perturbation_scale=args.mu,
        **probe.options,
    )
    steps = max(args.min_steps, math.ceil(directions / optimizer.estimator.queries))
    rows, seconds, cpu = [], [], []
    for _ in range(steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        optimizer.step(loss)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        parts = split(loss, before, classes)
        rows.append({**alignment(parts, loss.grad_sq), "parts": parts})
        with torch.no_grad():
            for b, p in zip(before, loss.params, strict=True):
                b.copy_(p)
    passes = optimizer.state_dict()["zo"]["forward_passes"] / steps
    displacement = alignment(split(loss, loss.origin, classes), loss.grad_sq)
    return summarise(rows, passes, displacement, args.lr) | {
        "label": probe.label,
        "optimizer": probe.name,
        "options": probe.options,
        "config": {k: v for k, v in optimizer.config.saved().items() if k not in SHARED},
        "sweep": probe.sweep,
        "steps": steps,
        "seconds_per_step": statistics.fmean(seconds),
        "cpu_seconds_per_step": statistics.fmean(cpu),
    }


def summarise(
    rows: list[dict[str, Any]], passes: float, displacement: dict[str, float], lr: float
) -> dict[str, Any]:
    """Per-step statistics of one probe (see the module docstring for ρ)."""
    cos = [r["cos"] for r in rows]
    mean_sq = statistics.fmean(r["norm"] ** 2 for r in rows)
    mean_decrease = statistics.fmean(r["decrease"] for r in rows)
    total_sq, total_decrease = (
        {c: math.fsum(r["parts"][key][c] for r in rows) for c in rows[0]["parts"][key]}
        for key in ("sq", "decrease")
    )
    all_sq, all_decrease = math.fsum(total_sq.values()), math.fsum(total_decrease.values())
    return {
        "passes_per_step": passes,
        "cos": cos,
        "cos_mean": statistics.fmean(cos),
        "cos_std": statistics.stdev(cos) if len(cos) > 1 else math.nan,
        "cos_sq_mean": statistics.fmean(c * c for c in cos),
        # ρ·‖g‖², kept unnormalised here; the caller divides by ‖g‖².
        "decrease_sq_over_sq": mean_decrease**2 / mean_sq,
        "norm_over_lr": [r["norm"] / lr for r in rows],
        "decrease_over_lr_mean": mean_decrease / lr,
        "sq_over_lr2_mean": mean_sq / lr**2,
        "sq_share": {c: v / all_sq for c, v in total_sq.items()},
        "decrease_share": {c: v / all_decrease for c, v in total_decrease.items()},
        "displacement_cos": displacement["cos"],
    }


def prepare(args: argparse.Namespace) -> tuple[LinearisedLoss, list[str], dict[str, Any]]:
    """The linearised loss at the pretrained weights on one batch, and each tensor's class."""
    objective, params, batch = build(args)
    names = {id(p): n for n, p in objective.runner.model.named_parameters()}
    classes = [tensor_class(names[id(p)], p) for p in params]
    g = true_gradient(objective, params, batch)
    with torch.no_grad():
        value = float(objective.loss(batch))
    pieces = g.split([p.numel() for p in params])
    loss = LinearisedLoss(
        params, [t.view(p.shape) for t, p in zip(pieces, params, strict=True)], value
    )
    return loss, classes, gradient_facts(loss, classes)


def gradient_facts(loss: LinearisedLoss, classes: Sequence[str]) -> dict[str, Any]:
    """d, L₀, ‖g‖, and per tensor class its tensors, elements and share of ‖g‖²."""
    grad_sq, elements = dict.fromkeys(classes, 0.0), dict.fromkeys(classes, 0)
    for t, c in zip(loss.grads, classes, strict=True):
        grad_sq[c] += float(torch.dot(t.view(-1), t.view(-1)))
        elements[c] += t.numel()
    return {
        "parameters": sum(elements.values()),
        "tensors": {c: classes.count(c) for c in grad_sq},
        "elements": elements,
        "loss": loss.value,
        "g_norm": math.sqrt(loss.grad_sq),
        "grad_sq_share": {c: v / loss.grad_sq for c, v in grad_sq.items()},
    }


def mezo_theory(d: int) -> dict[str, float]:
    """MeZO's figures per forward pass in the linearised probe, z ~ N(0, I_d), p = gᵀz exactly:
    E⟨−Δ,g⟩ = η‖g‖² and E‖Δ‖² = η²‖g‖²(d + 2), so ρ = E cos² = 1/(d + 2); E cos ≈ √(2/(πd)) as
    ‖z‖ ≈ √d; S independent steps sum to a displacement with E cos² ≈ S/(d + 2)."""
    return {
        "mean_cos_squared": 2 / (math.pi * d) / 2,
        "cos_sq": 1 / (d + 2) / 2,
        "rho": 1 / (d + 2) / 2,
        "displacement_cos_sq": 1 / (d + 2) / 2,
    }


def theory(r: dict[str, Any], facts: dict[str, Any]) -> float | None:
    """E cos² per forward pass over MeZO's where a closed form exists (None elsewhere).

    FZOO, N Rademacher queries r_j with a_j = gᵀr_j: Δ ∝ Σ a_j r_j, ‖Σ a_j r_j‖² ≈ d Σ a_j², so
    cos² ≈ Σ a_j² / (d‖g‖²), E cos² ≈ N/d from N + 1 passes: 2N/(N + 1) times MeZO's.
    LOZO, rank r: p = ⟨UVᵀ, G⟩ summed over matrices has variance r‖G‖², a 1-D tensor's p·z adds
    ‖g_v‖², and E‖UVᵀ‖² = r·m·n, so E cos² ≈ (r s_M + s_v) / (r d_M + d_v) with s the shares of
    ‖g‖² and d the element counts of matrices (M) and 1-D tensors (v): low rank and a lazy V do
    not change it, except that a larger r weights the 1-D tensors less.
    """
    d, share, elements = facts["parameters"], facts["grad_sq_share"], facts["elements"]
    config = r["config"]
    if r["optimizer"] == BASELINE:
        return 1.0
    if r["optimizer"] == "fzoo":
        n = config["queries"]
        return 2 * n / (n + 1)
    if r["optimizer"] == "lozo" and config["momentum"] == 0:
        rank = config["rank"]
        s_v, d_v = share.get("vectors", 0.0), elements.get("vectors", 0)
        return (rank * (1 - s_v) + s_v) * (d + 2) / (rank * (d - d_v) + d_v)
    return None


def relative(
    results: list[dict[str, Any]], facts: dict[str, Any], grad_sq: float, tuned_lr: float
) -> None:
    """Add the per-forward-pass figures over MeZO's exact values (:func:`mezo_theory`; the MeZO
    row measures them again), the closed forms of :func:`theory`, and the quadratic model's lr:
    the η at which a method's best fixed step is as long, for its decrease, as MeZO's at its
    tuned lr."""
    d = facts["parameters"]
    base = mezo_theory(d)
    for r in results:
        passes = r["passes_per_step"]
        r["rho"] = r["decrease_sq_over_sq"] / grad_sq
        figures = {
            "mean_cos_squared": r["cos_mean"] ** 2 / passes,
            "cos_sq": r["cos_sq_mean"] / passes,
            "rho": r["rho"] / passes,
            "displacement_cos_sq": r["displacement_cos"] ** 2 / (r["steps"] * passes),
        }
        r["per_pass_over_mezo"] = {k: v / base[k] for k, v in figures.items()}
        r["theory_cos_sq_per_pass_over_mezo"] = theory(r, facts)
        # Relative standard error of E[cos]² from the steps' spread (steps taken independent).
        r["mean_cos_squared_rel_se"] = (
            2 * r["cos_std"] / (math.sqrt(r["steps"]) * abs(r["cos_mean"]))
        )
        # The best fixed step scales as E⟨−Δ,g⟩/E‖Δ‖²; MeZO's is 1/(d + 2) per unit lr.
        r["model_lr"] = tuned_lr * r["decrease_over_lr_mean"] / r["sq_over_lr2_mean"] * (d + 2)


def _share(shares: dict[str, float], key: str) -> str:
    return f"{shares.get(key, 0.0):.3f}"


def _density(facts: dict[str, Any], part: str) -> str:
    """A class's share of ‖g‖², its element count and the share over its share of elements."""
    share, elements = facts["grad_sq_share"].get(part, 0.0), facts["elements"].get(part, 0)
    density = share / (elements / facts["parameters"]) if elements else math.nan
    return f"{part} {share:.3f} of ‖g‖² on {elements:,} elements ({density:.3g}× the average)"


def markdown(result: dict[str, Any]) -> list[str]:
    facts, settings, d = result["facts"], result["settings"], result["facts"]["parameters"]
    parts = ("embedding", "matrices", "vectors")
    return [
        f"SmolLM2-135M at its pretrained weights, one SST-2 batch of {settings['batch_size']}: "
        f"d = {d:,} parameters, L₀ = {facts['loss']:.4f}, ‖g‖ = {facts['g_norm']:.4g}; "
        + "; ".join(_density(facts, p) for p in parts)
        + f". Linearised loss, η = {settings['lr']:g}, μ = {settings['mu']:g}, weight decay 0, "
        f"seed {settings['seed']}.",
        "",
        f"MeZO's Gaussian z in theory: E cos² = 1/(d+2) = {1 / (d + 2):.3e}, E cos ≈ "
        f"√(2/(πd)) = {math.sqrt(2 / (math.pi * d)):.3e}.",
        "",
        "Per forward pass, over MeZO's exact value (1 = MeZO in theory; the mezo row measures it "
        "again): E[cos]²/passes (± one standard error from the steps' spread); E cos²/passes and "
        "its closed form where there is one (theory); ρ/passes, ρ = E⟨−Δ,g⟩²/(E‖Δ‖²‖g‖²), the "
        "quadratic model's figure; the displacement's cos(θ_S − θ₀, −g)²/(S·passes), which does "
        "not credit momentum for repeating a direction. Model lr: the η at which the method's "
        "best fixed step E⟨−Δ,g⟩/(h E‖Δ‖²) is as long as MeZO's best at its tuned lr "
        f"{settings['tuned_lr']:g} (quadratic model, isotropic curvature h).",
        "",
        *alignment_table(result["probes"]),
        "",
        "Where the update goes: share of Σ‖Δ‖² and of the first-order decrease Σ⟨−Δ,g⟩ on the "
        "embedding, the other matrices and the 1-D tensors (biases, norm weights); ‖Δ‖/η, mean.",
        "",
        "| setting | ‖Δ‖² emb / mat / 1-D | decrease emb / mat / 1-D | ‖Δ‖/η |",
        "|---|---|---|---|",
        *(
            f"| {r['label']} | {' / '.join(_share(r['sq_share'], p) for p in parts)} | "
            f"{' / '.join(_share(r['decrease_share'], p) for p in parts)} | "
            f"{statistics.fmean(r['norm_over_lr']):.3g} |"
            for r in result["probes"]
        ),
    ]


def alignment_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| setting | steps | passes/step | cos mean ± std | E[cos]²/pass | E cos²/pass | theory "
        "| ρ/pass | displacement/pass | model lr | CPU s/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rel, predicted = r["per_pass_over_mezo"], r["theory_cos_sq_per_pass_over_mezo"]
        se = rel["mean_cos_squared"] * r["mean_cos_squared_rel_se"]
        lines.append(
            f"| {r['label']} | {r['steps']} | {r['passes_per_step']:g} | {r['cos_mean']:.3e} ± "
            f"{r['cos_std']:.1e} | {rel['mean_cos_squared']:.2f} ± {se:.2f} | "
            f"{rel['cos_sq']:.2f} | {'—' if predicted is None else f'{predicted:.2f}'} | "
            f"{rel['rho']:.2f} | {rel['displacement_cos_sq']:.2f} | {r['model_lr']:.2g} | "
            f"{r['cpu_seconds_per_step']:.1f} |"
        )
    return lines


def measure(args: argparse.Namespace) -> dict[str, Any]:
    loss, classes, facts = prepare(args)
    print(f"g ready: ‖g‖ {facts['g_norm']:.4g}, L₀ {facts['loss']:.4f}", flush=True)
    before = [p.detach().clone() for p in loss.params]
    selected = [p for p in probes() if not args.only or p.label in args.only]
    results = []
    for probe in selected:
        directions = args.directions if probe.sweep is None else args.sweep_directions
        results.append(run_probe(probe, loss, before, classes, args, directions))
        r = results[-1]
        print(
            f"{r['label']}: cos {r['cos_mean']:.3e} ± {r['cos_std']:.1e}, "
            f"{r['passes_per_step']:g} passes, {r['seconds_per_step']:.1f} s/step "
            f"({r['cpu_seconds_per_step']:.1f} s CPU)",
            flush=True,
        )
    relative(results, facts, loss.grad_sq, args.tuned_lr)
    return {"facts": facts, "probes": results}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    batch_arguments(parser)  # --seed seeds the batch and every optimizer's directions
    parser.add_argument(
        "--directions", type=int, default=30, help="directions per method at its defaults"
    )
    parser.add_argument("--sweep-directions", type=int, default=12, help="per sweep point")
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-6, help="η of every method (scale only)")
    parser.add_argument("--mu", type=float, default=1e-3)
    parser.add_argument(
        "--only", nargs="+", default=None, help="labels of the settings to probe (default: all)"
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    if args.min_steps < 2 or min(args.directions, args.sweep_directions) < 1:
        parser.error("--min-steps must be at least 2 (a spread needs two), directions at least 1")
    args.tuned_lr = OPTIMIZERS[BASELINE].default_lr["full"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    result: dict[str, Any] = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)}}
    result |= measure(args)
    write("direction_alignment", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
