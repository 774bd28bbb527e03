"""The layers of docs/architecture.md hold (import-linter's contracts in pyproject.toml), no
module takes another's private name, there is no import cycle, and the fine-tuning package keeps
its functions and modules short. Each check is shown to fail on a tree that breaks it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from function_lengths import long_functions  # noqa: E402
from import_checks import cycles, import_graph, private_imports, private_reaches  # noqa: E402

FINETUNE = ROOT / "src" / "adamezo" / "finetune"


def lint_imports(source_root: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("lint-imports")
    command = [str(script)] if script.exists() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run(
        [*command, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source_root,
        env={"PYTHONPATH": str(source_root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_the_sources(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "adamezo", tmp_path / "adamezo")
    return tmp_path


def test_the_layers_contracts_hold():
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_the_layers_contracts_catch_an_upward_import_inside_a_function(tmp_path):
    root = copy_of_the_sources(tmp_path)
    with open(root / "adamezo" / "finetune" / "records.py", "a") as f:
        f.write("\n\ndef upward():\n    from adamezo.finetune.loop import run_finetune\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "1 kept, 1 broken" in result.stdout


def test_no_module_takes_another_modules_private_name():
    assert private_imports(ROOT / "src", "adamezo") == []


def test_the_private_name_check_catches_an_import_and_an_attribute(tmp_path):
    root = copy_of_the_sources(tmp_path)
    with open(root / "adamezo" / "finetune" / "records.py", "a") as f:
        f.write("\n\ndef peek():\n    from adamezo.finetune.files import _x\n")
    with open(root / "adamezo" / "finetune" / "plots.py", "a") as f:
        f.write("\n\nfrom adamezo import noise\n\nY = noise._z\n")
    found = sorted(private_imports(root, "adamezo"))
    assert len(found) == 2
    assert "plots.py" in found[0] and "reaches _z of adamezo.noise" in found[0]
    assert "records.py" in found[1] and "imports _x from adamezo.finetune.files" in found[1]


def test_no_module_or_benchmark_reaches_into_another_modules_private_members():
    assert private_reaches(ROOT / "src", "adamezo", [ROOT / "benchmarks", ROOT / "scripts"]) == []


def test_the_private_member_check_catches_a_call_into_an_optimizers_private_method(tmp_path):
    """The known cases: the perturbation module calling the optimizer's private hooks, and a
    benchmark reading its private state; the optimizers' own uses stay unreported."""
    root = copy_of_the_sources(tmp_path)
    path = root / "adamezo" / "perturbation.py"
    text = path.read_text().replace("optimizer.perturbed_copy(", "optimizer._query_seed(")
    path.write_text(
        text + "\n\ndef peek(optimizer):\n    return optimizer._zo, optimizer._slots()\n"
    )
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "timing.py").write_text("def run(opt):\n    opt._update = None\n")
    found = private_reaches(root, "adamezo", [bench])
    reached = sorted(
        (Path(f.split(":")[0]).name, f.split(": reaches ")[1].split(" (")[0]) for f in found
    )
    assert reached == [
        ("perturbation.py", "optimizer._query_seed"),
        ("perturbation.py", "optimizer._slots"),
        ("perturbation.py", "optimizer._zo"),
        ("timing.py", "opt._update"),
    ]


def test_there_is_no_import_cycle_even_inside_functions():
    assert cycles(import_graph(ROOT / "src", "adamezo")) == []


def test_the_cycle_check_catches_one_hidden_inside_a_function(tmp_path):
    root = copy_of_the_sources(tmp_path)
    with open(root / "adamezo" / "finetune" / "files.py", "a") as f:
        f.write("\n\ndef late():\n    from adamezo.finetune import checkpoints\n")
    assert cycles(import_graph(root, "adamezo")) == [
        ["adamezo.finetune.checkpoints", "adamezo.finetune.files"]
    ]


def test_no_function_of_the_finetune_package_is_longer_than_60_lines():
    assert long_functions(FINETUNE, 60) == []


@pytest.mark.parametrize("path", sorted(FINETUNE.glob("*.py")), ids=lambda p: p.name)
def test_no_finetune_module_is_longer_than_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def finetune_contract_modules() -> set[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["containers"] == ["adamezo.finetune"]
    ]
    return {m.strip() for layer in contract["layers"] for m in layer.replace("|", ":").split(":")}


def test_every_finetune_module_has_a_place_in_the_layers_contract():
    # A module the contract does not name is not checked at all: lint-imports is silent on it.
    modules = {p.stem for p in FINETUNE.glob("*.py")} - {"__init__"}
    assert modules - finetune_contract_modules() == set()
