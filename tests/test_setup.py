"""scripts/setup.sh on an air-gapped machine: a venv on the interpreter's own torch, adamezo
installed from the checkout without a registry, and a report of what is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("src", "scripts", "pyproject.toml", "README.md", "LICENSE")


def _offline_env() -> dict[str, str]:
    """This environment with pip cut off from every registry: no config files (they may name
    local indexes), no index, and an index URL that refuses connections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.pop("PYTHONPATH", None)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/")
    return env


@pytest.mark.slow
def test_setup_installs_adamezo_offline_on_the_interpreters_torch(tmp_path):
    repo = tmp_path / "repo"
    for name in NEEDED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, repo / name)
    env = {**_offline_env(), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no package registry answers" in output
    assert "building .venv on it, keeping its torch" in output
    probe = subprocess.run(
        [
            str(repo / ".venv/bin/python"),
            "-c",
            "import adamezo, torch; print(adamezo.__file__); print(torch.__file__)",
        ],
        cwd=tmp_path,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    adamezo_file, torch_file = probe.stdout.split()
    assert Path(adamezo_file).is_relative_to(repo / "src")
    # torch is the interpreter's own, not a copy installed into the venv.
    assert not Path(torch_file).is_relative_to(repo / ".venv")
    cli = subprocess.run(
        [str(repo / ".venv/bin/adamezo"), "--help"],
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "usage: adamezo" in cli.stdout, cli.stderr


def _environment_module():
    spec = importlib.util.spec_from_file_location("environment", ROOT / "scripts/environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment_without(monkeypatch, *missing: str):
    """scripts/environment.py, loaded, seeing the packages ``missing`` as not installed."""
    environment = _environment_module()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        environment.importlib.util,
        "find_spec",
        lambda name, *a: None if name in missing else real(name, *a),
    )
    return environment


def test_setup_report_names_what_a_missing_package_disables(monkeypatch, capsys):
    environment = _environment_without(monkeypatch, "triton", "peft")
    monkeypatch.setattr(environment.subprocess, "call", lambda argv: 0)
    assert environment.report() == 0
    out = capsys.readouterr().out
    assert "optional package triton is missing, which disables the GPU kernel" in out
    assert "optional package peft is missing, which disables LoRA adapters" in out
    assert "optional package numba is missing" not in out


def test_setup_report_fails_without_a_required_package(monkeypatch, capsys):
    environment = _environment_without(monkeypatch, "numpy")
    assert environment.report() == 1
    assert "REQUIRED packages missing: numpy" in capsys.readouterr().out
