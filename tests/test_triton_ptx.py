"""The Triton kernel hashes each 64-bit word once: read from its PTX, compiled ahead of time for
sm_90 (no GPU needed). Broadcasting the words to [WORDS, 4] had every lane hash its word again:
2.19 64-bit multiplies per element instead of 0.75."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    pytest.skip("compiles the kernels: run without TRITON_INTERPRET", allow_module_level=True)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_each_hash_word_is_hashed_once_per_stream():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import kernel_ptx
    finally:
        sys.path.remove(str(BENCHMARKS))
    rows = kernel_ptx.measure(kernel_ptx.load_kernels(None))
    # mix64 has 2 multiplies and the word index 1 (q·γ, shared by the streams): per element of
    # a 4-element word, 3/4 for the first stream and 2/4 for each further one.
    assert rows["add_noise (float32)"]["int64_multiplies_per_element"] == 0.75
    assert rows["fused update K=1 (float32)"]["int64_multiplies_per_element"] == 0.75
    assert rows["fused update K=2 with v (float32)"]["int64_multiplies_per_element"] == 1.25


@pytest.mark.slow
@pytest.mark.parametrize(("f64", "half"), [(False, 0), (False, 1), (False, 2), (True, 0)])
def test_the_state_programs_round_sqrt_and_division_and_never_fuse(f64, half):
    """ZO-Adam's and HiZOO's programs, compiled for sm_90: correctly rounded square roots and
    quotients (Triton's float32 defaults are approximate) and no fused multiply-add, as the
    bitwise agreement with the other kernels needs."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import kernel_ptx
    finally:
        sys.path.remove(str(BENCHMARKS))
    module = kernel_ptx.load_kernels(None)
    storage = "*i16" if half else "*fp64" if f64 else "*fp32"
    compute = "*fp64" if f64 else "*fp32"
    types = {"table": "*fp32", "coefs": compute, "partials": "*fp64"}
    types |= {"offset": "i64", "n": "i64", "high": "i32", "low": "i32"}
    width = "f64" if f64 else "f32"
    programs = [(module._state_update_kernel, {"MOMENTS": m}) for m in (True, False)]
    for program, flags in [*programs, (module._preconditioned_noise_kernel, {})]:
        signature = {
            p: "constexpr" if p.isupper() else types.get(p, storage) for p in program.arg_names
        }
        constants = {"F64": f64, "HALF": half, "BLOCK": module.BLOCK, **flags}
        counts, _ = kernel_ptx.ptx_counts(program, signature, constants)
        ops = {op for op in counts if op.startswith(("fma", "sqrt", "div", "rcp", "mad.rn"))}
        assert ops == {f"sqrt.rn.{width}", f"div.rn.{width}"}, (program.fn.__name__, ops)
