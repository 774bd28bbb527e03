#!/usr/bin/env bash
# The GPU check: one CUDA GPU, nothing from outside the machine, under 8 minutes.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default benchmarks/results/gpu)
#
# Runs from the repository root with the system python3 and PYTHONPATH=src (no virtual
# environment needed): torch, triton, numba and transformers must be importable; pytest is
# optional. Each stage has its own time limit and a stage that cannot run says why and is
# skipped. Results: OUT_DIR/gpu_check.{json,md}, OUT_DIR/gpu_kernels.{json,md}, OUT_DIR/*.log.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/gpu}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
status=0

stage() {  # stage NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$OUT/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start))s"
    [ "$rc" -eq 0 ] || status=1
}

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $PY cannot import torch; nothing run (set PYTHON=/path/to/python)"
    exit 0
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False); nothing run"
    exit 0
fi
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

# 1. The gpu-marked tests (Triton kernels bitwise against the reference), where pytest exists.
if "$PY" -c "import pytest" 2>/dev/null; then
    stage gpu_tests 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_triton_kernel.py
else
    echo "== gpu_tests: skipped (pytest is not installed); gpu_kernels below checks the same kernels"
fi

# 2. Triton kernels bitwise against the reference, and pass throughput against a measured copy.
if "$PY" -c "import triton" 2>/dev/null; then
    stage gpu_kernels 150 "$PY" benchmarks/gpu_kernels.py --out "$OUT"
else
    echo "== gpu_kernels: skipped (triton is not installed)"
fi

# 3. Exact half-precision steps on the GPU, step time and peak memory on a 1.1B Llama (bf16).
stage gpu_check 170 "$PY" benchmarks/gpu_check.py --out "$OUT"

echo "gpu_check: results in $OUT (exit $status)"
exit $status
