"""``adamezo toy``: the command writes every picture and the table it promises."""

import json

import pytest

from adamezo.cli import main
from adamezo.toy.cli import OUTPUTS
from adamezo.toy.experiment import OPTIMIZERS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_command_writes_every_picture_the_table_and_the_json(tmp_path, capsys):
    functions = ["quadratic", "abs"]
    argv = ["toy", "--function", *functions, "--optimizers", "all", "--seeds", "2"]
    assert main([*argv, "--steps", "4", "--directions", "2", "--out", str(tmp_path)]) == 0

    expected = {f"{f}_{kind}.png" for f in functions for kind in OUTPUTS}
    expected |= {"results.md", "results.json"}
    assert {p.name for p in tmp_path.iterdir()} == expected
    for name in expected - {"results.md", "results.json"}:
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    assert set(capsys.readouterr().out.split()) == {str(tmp_path / n) for n in expected}

    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| quadratic", "| abs"))]
    assert len(rows) == len(functions) * len(OPTIMIZERS)
    assert "directions: 2" in table
    every = " ".join(OPTIMIZERS)
    assert f"adamezo toy --function quadratic abs --optimizers {every} --seeds 2" in table
    assert f"--directions 2 --steps 4 --out {tmp_path}" in table
    record = json.loads((tmp_path / "results.json").read_text())
    assert len(record["results"]) == len(rows)
    assert {r["seeds"] for r in record["results"]} == {2}


def test_the_default_optimizers_are_adam_mezo_and_adamezo(tmp_path):
    assert (
        main(["toy", "--function", "abs", "--steps", "2", "--seeds", "1", "--out", str(tmp_path)])
        == 0
    )
    record = json.loads((tmp_path / "results.json").read_text())
    assert [r["optimizer"] for r in record["results"]] == ["adam", "mezo", "adamezo"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--seeds", "0"],
        ["--directions", "0"],
        ["--directions", "some"],
        ["--function", "sphere"],
        ["--optimizers", "sgd"],
    ],
)
def test_bad_arguments_stop_the_command_before_it_runs(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["toy", *argv, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and not (tmp_path / "out").exists()
    assert "error" in capsys.readouterr().err
