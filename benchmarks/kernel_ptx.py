"""PTX instruction counts of the Triton kernel, compiled ahead of time for sm_90 (no GPU needed).

Counts the static PTX instructions of each program per element (a thread covers BLOCK / (32 ·
warps) elements), above all the 64-bit integer multiplies of the hash (``mul.lo.s64`` and
``mad.lo.s64``: 3 per 64-bit word, so 3/4 per element, when each word is hashed once). The
fused update's stream loop is not unrolled, so its count at K = 2 is stream 0 plus one pass of the
loop body. ``--before REV`` compiles the kernel module as it was at a git revision, for a side
by side comparison.

    python benchmarks/kernel_ptx.py [--before REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType

from _common import machine, write

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/adamezo/kernels/triton_gpu.py"
MULTIPLIES = ("mul.lo.s64", "mad.lo.s64", "mul.lo.u64", "mad.lo.u64")


def load_kernels(revision: str | None) -> ModuleType:
    """The kernel module of the working tree, or of git revision ``revision``."""
    path = ROOT / MODULE
    if revision is not None:
        source = subprocess.run(
            ["git", "show", f"{revision}:{MODULE}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        path = Path(tempfile.mkdtemp()) / "triton_gpu_before.py"
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"kernels_{revision or 'now'}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ptx_counts(kernel, signature: dict, constants: dict) -> tuple[Counter, int]:
    """(instruction mnemonic -> static count, threads per program) of ``kernel`` on sm_90."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    compiled = triton.compile(
        source, target=GPUTarget("cuda", 90, 64), options={"enable_fp_fusion": False}
    )
    counts: Counter = Counter()
    for line in compiled.asm["ptx"].splitlines():
        line = line.strip()
        if not line or line.startswith(("//", ".", "{", "}", "$")) or line.endswith(":"):
            continue
        counts[line.split()[0].rstrip(";")] += 1
    return counts, 32 * compiled.metadata.num_warps


def signatures(module: ModuleType) -> dict[str, tuple]:
    """(kernel, argument types, constants) of each program measured, by name."""
    params = [p for p in module._add_noise_kernel.arg_names if p not in ("HALF", "BF16", "BLOCK")]
    scalar = {"theta": "*fp32", "table": "*fp32", "coefs": "*fp32", "partials": "*fp64"}
    scalar |= {"bases": "*i64", "offset": "i64", "n": "i64", "base": "i64"}
    scalar |= {"high": "i32", "low": "i32"}
    flag = "HALF" if "HALF" in module._add_noise_kernel.arg_names else "BF16"
    noise = {p: scalar[p] for p in params} | {flag: "constexpr", "BLOCK": "constexpr"}
    fused_params = [p for p in module._fused_update_kernel.arg_names if p.islower()]
    fused = {p: scalar[p] for p in fused_params}
    fused |= {c: "constexpr" for c in ("STREAMS", "USE_V", "F64", flag, "BLOCK")}
    off = {flag: 0 if flag == "HALF" else False, "BLOCK": module.BLOCK}
    rows = {"add_noise (float32)": (module._add_noise_kernel, noise, off)}
    for streams in (1, 2):
        constants = {"STREAMS": streams, "USE_V": streams > 1, "F64": False, **off}
        rows[f"fused update K={streams}{' with v' if streams > 1 else ''} (float32)"] = (
            module._fused_update_kernel,
            fused,
            constants,
        )
    return rows


def measure(module: ModuleType) -> dict[str, dict]:
    result = {}
    for name, (kernel, signature, constants) in signatures(module).items():
        counts, threads = ptx_counts(kernel, signature, constants)
        per_thread = module.BLOCK / threads
        multiplies = sum(counts[op] for op in MULTIPLIES)
        result[name] = {
            "elements_per_thread": per_thread,
            "int64_multiplies_per_element": multiplies / per_thread,
            "instructions_per_element": sum(counts.values()) / per_thread,
            "counts": dict(counts),
        }
        print(name, {k: v for k, v in result[name].items() if k != "counts"}, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare with (e.g. main)")
    args = parser.parse_args()
    result = {"machine": machine(), "now": measure(load_kernels(None))}
    if args.before:
        result["before"] = measure(load_kernels(args.before))
        result["before_revision"] = args.before
    lines = [
        "PTX of the Triton programs compiled ahead of time for sm_90 (static counts per element;",
        "the hash needs 3 64-bit multiplies per 64-bit word, so 0.75 per element).",
        "",
        "| program | version | int64 multiplies / element | instructions / element |",
        "|---|---|---|---|",
    ]
    for version in ("before", "now"):
        label = f"before ({args.before})" if version == "before" else "now"
        for name, row in result.get(version, {}).items():
            lines.append(
                f"| {name} | {label} | {row['int64_multiplies_per_element']:.2f} | "
                f"{row['instructions_per_element']:.1f} |"
            )
    write("kernel_ptx", result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
