"""adamezo replay checks the log it replays: each step's record against the step it rebuilt, and
the rebuilt weights against the SHA-256 in the log's end record and the run's model/."""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from adamezo.cli import main
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.replay import replay_run
from adamezo.replay import ReplayError
from tests.finetune.golden_runs import GOLDEN
from tests.finetune.helpers import config, sentiment_data

WEIGHTS = "model.safetensors"


def finetune(tmp_path, model_dir, name="run", **overrides):
    settings = dict(model=str(model_dir), steps=5, eval_every=2, test=False, lr=1e-2)
    settings.update(overrides)
    cfg = config(tmp_path, **settings, output_dir=str(tmp_path / name))
    return run_finetune(cfg, data=sentiment_data()).run_dir


def read_records(run_dir):
    return [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]


def write_records(run_dir, records):
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def train_record(records, step):
    return next(r for r in records if r["type"] == "train" and r["step"] == step)


def replay(run_dir, out, *extra):
    return main(["replay", "--run", str(run_dir), "--output", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    """A finished run with keep-best (best step before the last) that later tests copy."""
    root = tmp_path_factory.mktemp("verify")
    return finetune(root, tiny_model_dir, optimizer="mezo", lr=0.5, eval_at_start=False)


@pytest.fixture
def run_dir(tmp_path, finished):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def test_the_log_ends_with_the_sha256_of_the_final_and_best_weights(run_dir):
    from adamezo.finetune.builder import trainable_sha256

    records = read_records(run_dir)
    end = records[-1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert end["type"] == "end" and end["step"] == metrics["steps"] == 5
    assert end["best_step"] == metrics["best_step"] not in (None, 5)
    assert [r["type"] for r in records].count("end") == 1
    for key in ("weights_sha256", "best_sha256"):
        assert len(end[key]) == 64 and int(end[key], 16) >= 0
    assert end["weights_sha256"] != end["best_sha256"]

    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(run_dir / "model")

    class Exported:  # model/ holds the best weights: their hash is the end record's best_sha256
        def named_trainable(self):
            return list(exported.named_parameters())

    assert trainable_sha256(Exported()) == end["best_sha256"]


def test_an_intact_log_replays_and_matches_the_run(run_dir, tmp_path, capsys):
    assert replay(run_dir, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "matches the run: yes" in out
    summary = json.loads(out.splitlines()[0])
    assert (
        summary["matches_the_run"] is True
        and summary["step"] == read_records(run_dir)[-1]["best_step"]
    )


def test_a_tampered_loss_fails_naming_its_step(run_dir, tmp_path, capsys):
    records = read_records(run_dir)
    train_record(records, 3)["losses"][0] += 0.001  # the edit: one pass's loss
    write_records(run_dir, records)
    assert replay(run_dir, tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "matches the run: no" in captured.out
    assert "step 3" in captured.err and "mean of its losses" in captured.err


def test_a_tampered_loss_with_its_mean_made_to_agree_fails_naming_its_step(
    run_dir, tmp_path, capsys
):
    records = read_records(run_dir)
    record = train_record(records, 2)
    # A careful forger: a float32 loss (as the run's), and the mean made to agree with it.
    first, second = torch.tensor(record["losses"][0] + 0.001), torch.tensor(record["losses"][1])
    record["losses"][0] = float(first)
    record["loss"] = float((first + second) / 2)
    write_records(run_dir, records)
    assert replay(run_dir, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "step 2" in err and "projected_grad" in err


def test_a_changed_lr_fails_naming_its_step(run_dir, tmp_path, capsys):
    records = read_records(run_dir)
    train_record(records, 4)["lr"] *= 1.001
    write_records(run_dir, records)
    assert replay(run_dir, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "step 4" in err and "update_norm" in err


def test_a_changed_weights_hash_fails_naming_the_steps_between_witnesses(run_dir, tmp_path, capsys):
    records = read_records(run_dir)
    records[-1]["weights_sha256"] = "0" * 64
    write_records(run_dir, records)
    assert replay(run_dir, tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "matches the run: no" in captured.out
    best = records[-1]["best_step"]
    assert "after step 5" in captured.err and f"steps {best + 1} to 5" in captured.err


def test_changed_weights_in_model_fail_the_comparison(run_dir, tmp_path, capsys):
    exported = load_file(str(run_dir / "model" / WEIGHTS))
    name = sorted(exported)[0]
    exported[name] = exported[name].clone()
    exported[name].view(-1)[0] += 1e-3
    save_file(exported, str(run_dir / "model" / WEIGHTS), metadata={"format": "pt"})
    assert replay(run_dir, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "model/" in err and name in err


@pytest.mark.parametrize("cut", ["lines", "mid-line"])
def test_a_truncated_log_fails_naming_the_first_missing_step(run_dir, tmp_path, capsys, cut):
    text = (run_dir / "log.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    last3 = next(i for i, x in enumerate(lines) if '"step": 4' in x and '"train"' in x)
    kept = "".join(lines[:last3])
    if cut == "mid-line":
        kept += lines[last3][:40]  # the write of step 4's record did not finish
    (run_dir / "log.jsonl").write_text(kept)
    assert replay(run_dir, tmp_path / "out") != 0
    err = capsys.readouterr().err
    assert "step 4" in err and "log ends after step 3" in err


def test_reordered_lines_fail_naming_the_step_out_of_place(run_dir, tmp_path, capsys):
    lines = (run_dir / "log.jsonl").read_text().splitlines(keepends=True)
    two = next(i for i, x in enumerate(lines) if '"step": 2' in x and '"train"' in x)
    three = next(i for i, x in enumerate(lines) if '"step": 3' in x and '"train"' in x)
    lines[two], lines[three] = lines[three], lines[two]
    (run_dir / "log.jsonl").write_text("".join(lines))
    assert replay(run_dir, tmp_path / "out") != 0
    err = capsys.readouterr().err
    assert "step 2" in err and "step 3" in err


def test_no_verify_replays_a_tampered_log_as_written(run_dir, tmp_path, capsys):
    records = read_records(run_dir)
    train_record(records, 3)["losses"][0] += 0.001
    write_records(run_dir, records)
    assert replay(run_dir, tmp_path / "out", "--no-verify") == 0
    out = capsys.readouterr().out
    assert "matches the run: not checked (--no-verify)" in out


def test_replay_run_reports_the_first_step_where_log_and_weights_part(run_dir, tmp_path):
    records = read_records(run_dir)
    train_record(records, 2)["losses"][1] -= 0.01
    train_record(records, 4)["losses"][1] -= 0.01
    write_records(run_dir, records)
    result = replay_run(run_dir, tmp_path / "out")
    assert result.verification.matches is False
    assert result.verification.first_step == 2
    assert (tmp_path / "out" / WEIGHTS).is_file()  # the weights the log says, to inspect


def test_a_resumed_finished_run_keeps_one_end_record(tmp_path, tiny_model_dir):
    run = finetune(tmp_path, tiny_model_dir, steps=3, checkpoint_every=3)
    before = read_records(run)
    finetune(tmp_path, tiny_model_dir, steps=3, checkpoint_every=3, resume=True)
    after = read_records(run)
    assert [r["type"] for r in after].count("end") == 1
    assert after[-1]["weights_sha256"] == before[-1]["weights_sha256"]


def old_run(tmp_path, tiny_model_dir):
    """The mezo-lora golden run's files as a run directory: a log written before end records."""
    run = tmp_path / "old"
    run.mkdir()
    saved = json.loads((GOLDEN / "mezo-lora" / "config.json").read_text())
    saved.update(model=str(tiny_model_dir), output_dir=str(run))
    (run / "config.json").write_text(json.dumps(saved))
    shutil.copy(GOLDEN / "mezo-lora" / "log.jsonl", run / "log.jsonl")
    steps = max(r["step"] for r in read_records(run) if r["type"] == "train")
    (run / "metrics.json").write_text(json.dumps({"steps": steps, "best_step": None}))
    return run


def test_a_log_from_before_the_weights_hash_needs_no_verify(tmp_path, tiny_model_dir, capsys):
    run = old_run(tmp_path, tiny_model_dir)
    assert "end" not in {r["type"] for r in read_records(run)}
    assert replay(run, tmp_path / "checked") == 2
    err = capsys.readouterr().err
    assert "no end record" in err and "--no-verify" in err and "--overwrite" not in err
    assert replay(run, tmp_path / "unchecked", "--no-verify") == 0
    assert "matches the run: not checked" in capsys.readouterr().out
    assert (tmp_path / "unchecked" / "adapter_model.safetensors").is_file()


def test_a_run_killed_before_its_end_record_needs_no_verify(run_dir, tmp_path, capsys):
    records = [r for r in read_records(run_dir) if r["type"] != "end"]
    write_records(run_dir, records)
    (run_dir / "metrics.json").unlink()
    with pytest.raises(ReplayError, match=r"no end record.*--no-verify"):
        replay_run(run_dir, tmp_path / "out")
    assert math.isfinite(replay_run(run_dir, tmp_path / "o2", verify=False).step)


def test_a_garbled_log_line_names_the_line_and_gives_replay_advice(run_dir, tmp_path, capsys):
    lines = (run_dir / "log.jsonl").read_text().splitlines(keepends=True)
    lines[3] = lines[3][:20] + "#garbled#" + lines[3][20:]
    (run_dir / "log.jsonl").write_text("".join(lines))
    assert replay(run_dir, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "log.jsonl:4: bad record" in err and "damaged" in err
    assert "--overwrite" not in err and "--resume" not in err  # finetune's flags, not replay's
