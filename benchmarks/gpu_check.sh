#!/usr/bin/env bash
# The GPU check: one CUDA GPU, nothing from outside the machine, under 8 minutes.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        (default benchmarks/results/gpu)
#
# Runs from the repository root with $PYTHON (default: .venv/bin/python if scripts/setup.sh
# made one, else python3) and PYTHONPATH=src: torch with CUDA, triton and transformers must be
# importable; pytest is optional. Each stage has its own time limit, and the whole check stops at
# 8 minutes. Exits non-zero if torch, CUDA or triton is missing, or if any stage fails or runs out
# of time. Results, written as each section finishes (a crash keeps what came before):
# RESULTS_DIR/gpu_check.{json,md}, RESULTS_DIR/gpu_kernels.{json,md}, RESULTS_DIR/*.log.
set -u
# Lower-case names: the caller's variables (OUT, PY, ...) pass through to the stages untouched.
results_dir="${1:-}"
[ -z "$results_dir" ] || results_dir=$(realpath -m -- "$results_dir")  # relative to the caller
cd "$(dirname "$0")/.."
results_dir="${results_dir:-$PWD/benchmarks/results/gpu}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
default_python=python3
[ -x .venv/bin/python ] && default_python=.venv/bin/python
python="${PYTHON:-$default_python}"
deadline=$((SECONDS + 480))
failed=0

stage() {  # stage NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    local left=$((deadline - SECONDS))
    [ "$limit" -le "$left" ] || limit=$left
    if [ "$limit" -le 10 ]; then
        echo "== $name: not run, the check's 8 minutes are spent"
        failed=1
        return
    fi
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout -k 10 "$limit" "$@" >"$results_dir/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$results_dir/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start))s"
    [ "$rc" -eq 0 ] || failed=1
}

if ! "$python" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $python cannot import torch; nothing run (set PYTHON=/path/to/python)" >&2
    exit 2
fi
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to $python (torch.cuda.is_available() is False);" \
        "nothing run" >&2
    exit 3
fi
mkdir -p "$results_dir"
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

# 1. The gpu-marked tests (Triton kernels bitwise against the reference, 2^31-element bf16
#    tensors, no host waits inside the passes).
if "$python" -c "import pytest" 2>/dev/null; then
    stage gpu_tests 150 "$python" -m pytest -q -p no:cacheprovider -m gpu \
        tests/test_triton_kernel.py tests/test_gpu_only.py
else
    echo "== gpu_tests: skipped (pytest is not installed); gpu_kernels below checks the same kernels"
fi

# 2. Triton kernels bitwise against the reference, and pass throughput against a measured copy.
if "$python" -c "import triton" 2>/dev/null; then
    stage gpu_kernels 150 "$python" benchmarks/gpu_kernels.py "$results_dir"
else
    echo "== gpu_kernels: FAILED, triton is not installed (the GPU kernel cannot run)"
    failed=1
fi

# 3. Exact half-precision steps on the GPU, step time and peak memory on a 1.1B Llama (bf16).
stage gpu_check 170 "$python" benchmarks/gpu_check.py "$results_dir"

echo "gpu_check: results in $results_dir (exit $failed)"
exit $failed
