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
