"""Check the Triton kernel against the plain-torch reference on a CUDA GPU, then time it.

Correctness: for every dtype, odd sizes and offsets, K = 1, 5, 10, 20 with and without second
moments, the Triton kernel's weights must equal the reference's bit for bit, both the reference
run on the GPU and on the CPU (the same z everywhere), and z itself must equal
``adamezo.noise.normal`` computed on the CPU.

Timing (median of CUDA-event timings via ``triton.testing.do_bench``): the perturb pass, the
fused MeZO restore+update and the fused AdaMeZO update at K = 1, 5, 10, 20 on one large tensor,
against a device-to-device copy (the bandwidth ceiling for a pass that reads and writes θ once)
and against the reference-style MeZO pass (``torch.manual_seed`` + ``torch.normal`` + ``add_``).
Then a whole SmolLM2-135M-shaped parameter list (272 tensors, 134.5 M parameters, shapes only):
the noise work of one step of reference-style MeZO, our MeZO and our AdaMeZO (K = 10).

    python benchmarks/gpu_kernels.py [DIR]        (default benchmarks/results/gpu)

DIR/gpu_kernels.{json,md} are rewritten after each section (checks, passes, model step), so a
crash in a later section keeps the earlier ones; a failed check or section exits 1.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import RESULTS, run_sections

from adamezo.kernels import FusedUpdate, Kernel, TorchKernel
from adamezo.kernels.triton_gpu import TritonKernel
from adamezo.noise import normal, step_seed, stream_base

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
HORIZONS = [1, 5, 10, 20]


def smollm2_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of SmolLM2-135M (hidden 576, MLP 1536, 30 layers, 3 KV heads, tied
    49152-token embedding)."""
    hidden, mlp, kv, layers, vocab = 576, 1536, 192, 30, 49152
    shapes: list[tuple[int, ...]] = [(vocab, hidden)]
    for _ in range(layers):
        shapes += [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden)]
        shapes += [(mlp, hidden), (mlp, hidden), (hidden, mlp), (hidden,), (hidden,)]
    return [*shapes, (hidden,)]


def adamezo_update(streams: int, second_moment: bool = True) -> FusedUpdate:
    grads = [((-1) ** k) * (0.5 + 0.1 * k) for k in range(streams)]
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(0.3 * 0.7**k * g for k, g in enumerate(grads)),
        v_coefs=tuple(0.1 * 0.9**k * g * g for k, g in enumerate(grads)) if second_moment else None,
        gain=1.0,
        eps=1e-8,
        lr=1e-2,
        weight_decay=0.1,
    )


def mezo_update(projected_grad: float = 0.7) -> FusedUpdate:
    return FusedUpdate(
        restore=1e-3,
        m_coefs=(projected_grad,),
        v_coefs=None,
        gain=1.0,
        eps=0.0,
        lr=1e-3,
        weight_decay=0.0,
    )


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach().cpu().reshape(-1), b.detach().cpu().reshape(-1)
    return a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


Record = Callable[..., None]
"""record(check name, ok, **what it was run on): one check's outcome."""
Kernels = tuple[Kernel, Kernel]
"""(the Triton kernel, the plain-torch reference)."""


def check_correctness(device: torch.device) -> list[dict]:
    kernels = (TritonKernel(), TorchKernel(1 << 18))
    checks = []

    def record(name: str, ok: bool, **info) -> None:
        checks.append({"check": name, "ok": bool(ok), **info})
        print(f"{'ok  ' if ok else 'FAIL'} {name} {info}", flush=True)

    generator = torch.Generator().manual_seed(0)
    check_add_noise(device, kernels, generator, record)
    check_fused_update(device, kernels, generator, record)
    check_noise_sq_sum(device, kernels, record)
    return checks


def check_add_noise(
    device: torch.device, kernels: Kernels, generator: torch.Generator, record: Record
) -> None:
    """z (added to zeros) equals ``noise.normal`` on the CPU; θ + 0.37 z equals the reference's,
    on the GPU and on the CPU, for every dtype, odd sizes and offsets."""
    triton_kernel, reference = kernels
    for numel, offset in [(1, 0), (7, 3), (4099, 5), (1_000_003, 2)]:
        base = stream_base(step_seed(11, numel), 4)
        zeros = torch.zeros(numel, device=device)
        triton_kernel.add_noise(zeros, base, 1.0, offset)
        record(
            "z equals noise.normal on CPU",
            same_bits(zeros, normal(base, numel, offset)),
            numel=numel,
            offset=offset,
        )
        for dtype in DTYPES:
            host = torch.randn(numel, generator=generator, dtype=torch.float64).to(dtype)
            gpu_triton = host.to(device, copy=True)
            gpu_reference = host.to(device, copy=True)
            cpu_reference = host.clone()
            triton_kernel.add_noise(gpu_triton, base, 0.37, offset)
            reference.add_noise(gpu_reference, base, 0.37, offset)
            reference.add_noise(cpu_reference, base, 0.37, offset)
            record(
                "add_noise",
                same_bits(gpu_triton, gpu_reference) and same_bits(gpu_triton, cpu_reference),
                dtype=str(dtype),
                numel=numel,
                offset=offset,
            )


def check_fused_update(
    device: torch.device, kernels: Kernels, generator: torch.Generator, record: Record
) -> None:
    """The fused AdaMeZO update at every K, with and without second moments: weights equal the
    reference's bit for bit (GPU and CPU), Σ(Δθ)² within 1e-12 of the CPU reference's."""
    triton_kernel, reference = kernels
    numel, offset = 300_007, 3
    for dtype in DTYPES:
        for streams in HORIZONS:
            for second_moment in (True, False):
                bases = [stream_base(step_seed(5, s), 2) for s in range(streams)]
                update = adamezo_update(streams, second_moment)
                host = torch.randn(numel, generator=generator, dtype=torch.float64).to(dtype)
                gpu_triton = host.to(device, copy=True)
                gpu_reference = host.to(device, copy=True)
                cpu_reference = host.clone()
                sq = triton_kernel.fused_update(gpu_triton, bases, update, offset)
                sq_gpu = reference.fused_update(gpu_reference, bases, update, offset)
                sq_cpu = reference.fused_update(cpu_reference, bases, update, offset)
                ok = same_bits(gpu_triton, gpu_reference) and same_bits(gpu_triton, cpu_reference)
                ok = ok and abs(sq - sq_cpu) <= 1e-12 * abs(sq_cpu) and sq_gpu == sq_gpu
                record(
                    "fused_update",
                    ok,
                    dtype=str(dtype),
                    K=streams,
                    second_moment=second_moment,
                    sq=sq,
                    sq_cpu_reference=sq_cpu,
                )


def check_noise_sq_sum(device: torch.device, kernels: Kernels, record: Record) -> None:
    """Σz² over a large tensor within 1e-12 of the CPU reference's."""
    triton_kernel, reference = kernels
    tensor = torch.empty(1_000_003, device=device)
    base = stream_base(step_seed(1, 2), 3)
    got = triton_kernel.noise_sq_sum(tensor, base, 1)
    want = reference.noise_sq_sum(tensor.cpu(), base, 1)
    record("noise_sq_sum", abs(got - want) <= 1e-12 * want, got=got, want=want)


def bench_ms(fn) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=50, rep=300, return_mode="median"))


def time_passes(device: torch.device, numel: int) -> list[dict]:
    kernel = TritonKernel()
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        theta = torch.randn(numel, device=device).to(dtype)
        other = torch.empty_like(theta)
        nbytes = 2 * theta.numel() * theta.element_size()  # read θ once, write θ once
        copy_ms = bench_ms(lambda: other.copy_(theta))  # noqa: B023
        copy_gbs = nbytes / copy_ms / 1e6

        def reference_pass(theta=theta):
            torch.manual_seed(1)
            z = torch.normal(0, 1, size=theta.shape, device=theta.device, dtype=theta.dtype)
            theta.add_(z, alpha=1e-3)

        cases = [
            ("copy (ceiling)", lambda: other.copy_(theta)),  # noqa: B023
            ("reference MeZO pass: manual_seed + normal + add_", reference_pass),
            ("perturb (add_noise)", lambda: kernel.add_noise(theta, 12345, 1e-3)),  # noqa: B023
            (
                "MeZO restore+update (fused, K=1, no v)",
                lambda theta=theta: kernel.fused_update(theta, [12345], mezo_update()),
            ),
        ]
        for streams in HORIZONS:
            bases = [stream_base(step_seed(3, s), 1) for s in range(streams)]
            update = adamezo_update(streams)
            cases.append(
                (
                    f"AdaMeZO update K={streams}",
                    lambda b=bases, u=update, theta=theta: kernel.fused_update(theta, b, u),
                )
            )
        for name, fn in cases:
            ms = copy_ms if name.startswith("copy") else bench_ms(fn)
            gbs = nbytes / ms / 1e6
            rows.append(
                {
                    "dtype": str(dtype),
                    "numel": numel,
                    "pass": name,
                    "ms": ms,
                    "G_elem_per_s": numel / ms / 1e6,
                    "GB_per_s": gbs,
                    "fraction_of_copy": gbs / copy_gbs,
                }
            )
            print(
                f"{dtype} {name:55s} {ms:8.3f} ms {numel / ms / 1e6:8.1f} G/s "
                f"{gbs:8.0f} GB/s {gbs / copy_gbs:6.2f} of copy",
                flush=True,
            )
    return rows


def time_model_step(device: torch.device) -> list[dict]:
    """Noise work of one step over SmolLM2-135M-shaped fp32 parameters (no forward pass)."""
    kernel = TritonKernel()
    params = [torch.randn(shape, device=device) for shape in smollm2_shapes()]
    mu, lr = 1e-3, 1e-6

    def reference_step():
        # The original MeZO code: perturb +μ, −2μ, +μ, then regenerate z for the update.
        for scale in (1.0, -2.0, 1.0):
            torch.manual_seed(7)
            for p in params:
                z = torch.normal(0, 1, size=p.shape, device=p.device, dtype=p.dtype)
                p.data = p.data + scale * z * mu
        torch.manual_seed(7)
        for p in params:
            z = torch.normal(0, 1, size=p.shape, device=p.device, dtype=p.dtype)
            p.data = p.data - lr * (0.5 * z)

    def ours(streams: int):
        seeds = [step_seed(9, s) for s in range(streams)]
        update = mezo_update() if streams == 1 else adamezo_update(streams)

        def step():
            for scale in (mu, -2 * mu):
                for key, p in enumerate(params):
                    kernel.add_noise(p, stream_base(seeds[0], key), scale)
            for key, p in enumerate(params):
                kernel.fused_update(p, [stream_base(s, key) for s in seeds], update)

        return step

    rows = []
    for name, fn in [
        ("reference-style MeZO", reference_step),
        ("our MeZO", ours(1)),
        ("our AdaMeZO K=10", ours(10)),
    ]:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(10):
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        times.sort()
        rows.append(
            {"variant": name, "median_ms": 1e3 * times[len(times) // 2], "min_ms": 1e3 * times[0]}
        )
        print(f"model step noise work: {name:22s} {rows[-1]['median_ms']:8.2f} ms", flush=True)
    return rows


def markdown(result: dict) -> list[str]:
    info, checks = result["info"], result.get("checks", [])
    failed = [c for c in checks if not c["ok"]]
    lines = [
        f"# Triton kernel on {info['device']}",
        "",
        f"torch {info['torch']}, triton {info['triton']}. Command: `{info['command']}`.",
        "",
    ]
    if "checks" in result:
        lines += [f"Correctness: {len(checks) - len(failed)}/{len(checks)} checks bitwise equal."]
        lines += [f"- FAILED: {c}" for c in failed]
    if "passes" in result:
        lines += [
            "",
            "| dtype | pass | ms | G elem/s | GB/s | of copy |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['dtype']} | {r['pass']} | {r['ms']:.3f} | {r['G_elem_per_s']:.1f} | "
            f"{r['GB_per_s']:.0f} | {r['fraction_of_copy']:.2f} |"
            for r in result["passes"]
        ]
    if "model_step" in result:
        lines += ["", "Noise work of one step, SmolLM2-135M shapes (fp32):", ""]
        lines += ["| variant | median ms |", "|---|---|"]
        lines += [f"| {r['variant']} | {r['median_ms']:.2f} |" for r in result["model_step"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=RESULTS / "gpu")
    parser.add_argument("--numel", type=int, default=1 << 26)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_kernels.py: no CUDA device", file=sys.stderr)
        return 3
    device = torch.device("cuda")
    import triton

    info = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "command": "python benchmarks/gpu_kernels.py DIR",
    }
    print(info, flush=True)
    result: dict = {"info": info}
    sections = [
        ("checks", lambda: check_correctness(device)),
        ("passes", lambda: time_passes(device, args.numel)),
        ("model_step", lambda: time_model_step(device)),
    ]
    ran = run_sections(args.out, "gpu_kernels", result, sections, markdown)
    failed = [c for c in result.get("checks", []) if not c["ok"]]
    print("\n".join(markdown(result)))
    return 0 if ran and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
