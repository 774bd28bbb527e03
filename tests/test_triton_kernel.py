"""The Triton kernel passes its equality checks (``triton_checks.py``): under the interpreter
here, compiled on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


def _run_checks(env: dict[str, str]) -> subprocess.CompletedProcess:
    checks = Path(__file__).with_name("triton_checks.py")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(checks)],
        cwd=checks.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_triton_kernel_equals_reference_under_the_interpreter():
    result = _run_checks({**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


@pytest.mark.gpu
def test_compiled_triton_kernel_equals_reference_on_gpu():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = _run_checks(env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
