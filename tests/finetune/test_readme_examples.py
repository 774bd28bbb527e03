"""The README's marked code blocks run as written.

A block preceded by an HTML comment ``<!-- test: KIND -->`` is run by these tests:

- ``head PATH``: the block is the start of the repository file PATH, verbatim;
- ``tiny``: the block runs as written from a copy of the repository's ``examples/``, with a tiny
  random model and 2 steps in place of the default model and the block's step count
  (``adamezo`` command lines get ``--model DIR --steps 2 ...`` appended, which argparse lets win;
  Python blocks get the same through ``FinetuneConfig``); the ``slow`` variant keeps the real
  built-in model, cut to 2 layers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKED = re.compile(r"<!-- test: ([^>]*?) -->\n```(\w+)\n(.*?)```", re.S)
KINDS = ("head", "tiny")


def marked_blocks(kind: str) -> list[tuple[str, str, str]]:
    """(argument, language, code) of every block marked ``<!-- test: kind ... -->``."""
    found = []
    for marker, language, code in MARKED.findall(README.read_text()):
        name, _, argument = marker.partition(" ")
        if name == kind:
            found.append((argument, language, code))
    return found


def command_lines(code: str) -> list[list[str]]:
    """The ``adamezo`` command lines of a bash block (continuations joined), as argv lists."""
    lines = code.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def test_every_marker_is_known_and_every_kind_is_used():
    markers = re.findall(r"<!-- test: (\S+)", README.read_text())
    assert markers and set(markers) <= set(KINDS), markers
    assert all(marked_blocks(kind) for kind in KINDS)


@pytest.mark.parametrize("path, language, code", marked_blocks("head"))
def test_a_shown_file_is_the_start_of_the_file(path, language, code):
    assert (ROOT / path).read_text().startswith(code)


def run_tiny_blocks(tmp_path, monkeypatch, settings: dict) -> list[Path]:
    """Run each ``tiny`` block in a directory of its own holding a copy of ``examples/``, with
    ``settings`` (FinetuneConfig fields) over the block's; the run directories they wrote."""
    from adamezo import finetune
    from adamezo.cli import main

    settings = {**settings, "device": "cpu", "progress": False}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items() if k != "progress"]
    original = finetune.FinetuneConfig

    def tiny_config(*args, **kwargs):
        return dataclasses.replace(original(*args, **kwargs), **settings)

    monkeypatch.setattr(finetune, "FinetuneConfig", tiny_config)
    runs = []
    for number, (_, language, code) in enumerate(marked_blocks("tiny")):
        where = tmp_path / f"block{number}"
        shutil.copytree(ROOT / "examples", where / "examples")
        monkeypatch.chdir(where)
        if language == "python":
            exec(compile(code, "README.md", "exec"), {})
        else:
            for argv in command_lines(code):
                assert argv[0].endswith("bin/adamezo"), argv
                assert main([*argv[1:], *flags, "--no-progress"]) == 0, argv
        runs += sorted(p for p in (where / "runs").iterdir() if (p / "metrics.json").is_file())
    return runs


def check_own_data_runs(runs: list[Path]) -> None:
    # The README says the run is named after the file and its task is "reviews".
    assert [p.name for p in runs] == ["reviews-adamezo-lora-seed0"] * 2
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["task"] == "reviews"
        assert "test_accuracy" in metrics["test"]


def test_the_tiny_blocks_run_as_written(tmp_path, monkeypatch, tiny_model_dir):
    check_own_data_runs(
        run_tiny_blocks(tmp_path, monkeypatch, {"model": str(tiny_model_dir), "steps": 2})
    )


@pytest.mark.slow
def test_the_tiny_blocks_run_on_the_real_model(tmp_path, monkeypatch):
    check_own_data_runs(run_tiny_blocks(tmp_path, monkeypatch, {"num_layers": 2, "steps": 2}))
