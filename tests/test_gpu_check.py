"""The GPU check cannot fail silently: no torch or no CUDA is a non-zero exit, and results are
written section by section, so a crash in a later section keeps the earlier ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}
    env.pop("TRITON_INTERPRET", None)
    return env


def _no_torch_python(tmp_path: Path) -> str:
    """An interpreter without site-packages, so without torch."""
    script = tmp_path / "python-without-torch"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    script.chmod(0o755)
    return str(script)


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=600
    )


def test_gpu_check_fails_without_cuda(tmp_path):
    result = _run(
        ["bash", "benchmarks/gpu_check.sh", str(tmp_path / "out")],
        PYTHON=sys.executable,
        CUDA_VISIBLE_DEVICES="",
        OUT="caller's",
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "no CUDA device" in result.stderr


def test_gpu_check_fails_without_torch(tmp_path):
    result = _run(["bash", "benchmarks/gpu_check.sh"], PYTHON=_no_torch_python(tmp_path))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "cannot import torch" in result.stderr


def test_study_gpu_fails_without_cuda():
    result = _run(
        ["bash", "benchmarks/study_gpu.sh"], PYTHON=sys.executable, CUDA_VISIBLE_DEVICES=""
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "no CUDA device" in result.stderr


@pytest.mark.parametrize("script", ["gpu_check.py", "gpu_kernels.py"])
def test_gpu_scripts_fail_without_cuda(tmp_path, script):
    pytest.importorskip("triton")
    result = _run(
        [sys.executable, str(BENCHMARKS / script), str(tmp_path)], CUDA_VISIBLE_DEVICES=""
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert not any(tmp_path.iterdir())


_CRASHING_RUN = """
import os, sys
sys.path.insert(0, {benchmarks!r})
import gpu_check
gpu_check.DRY["steps"] = 2
def crash(*args, **kwargs):
    os._exit(9)  # the process dies as on a CUDA fault: no exception handler runs
gpu_check.{section} = crash
sys.exit(gpu_check.main([{out!r}, "--dry-run"]))
"""


@pytest.mark.slow
def test_gpu_check_keeps_finished_sections_when_a_later_one_kills_the_process(tmp_path):
    pytest.importorskip("transformers")
    code = _CRASHING_RUN.format(benchmarks=str(BENCHMARKS), section="step_time", out=str(tmp_path))
    result = _run([sys.executable, "-c", code], OMP_NUM_THREADS="1")
    assert result.returncode == 9, result.stdout + result.stderr
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["sections_done"] == ["exact"]
    assert [r["dtype"] for r in saved["exact"]] == ["torch.bfloat16", "torch.float16"]
    assert all(r["unchanged"] and r["perturbed_copies_equal_torch"] for r in saved["exact"])
    assert "step_time" not in saved
    assert "bitwise unchanged: True" in (tmp_path / "gpu_check.md").read_text()


def test_a_failing_section_is_recorded_and_the_rest_still_run(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from _common import run_sections
    finally:
        sys.path.remove(str(BENCHMARKS))

    def broken() -> None:
        raise RuntimeError("simulated failure")

    result: dict = {"info": "x"}
    sections = [("first", lambda: 1), ("second", broken), ("third", lambda: 3)]
    ok = run_sections(tmp_path, "check", result, sections, lambda r: ["# check"])
    assert not ok
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved["first"] == 1 and saved["third"] == 3 and "second" not in saved
    assert saved["sections_done"] == ["first", "third"]
    assert "simulated failure" in saved["errors"]["second"]
    assert "## FAILED: second" in (tmp_path / "check.md").read_text()
