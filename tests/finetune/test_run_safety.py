"""Broken files, crashes mid-checkpoint, full disks and diverged runs: each ends in a clear error
that names the file, or resumes from the newest complete checkpoint bitwise."""

import errno
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adamezo.cli import main
from adamezo.finetune import checkpoints, filemodes, rundir
from adamezo.finetune.checkpoints import Checkpoints, check_tensors
from adamezo.finetune.files import CheckpointError, RunDirectoryError, RunFileError, RunWriteError
from adamezo.finetune.loop import TrainingDivergedError, run_finetune
from adamezo.finetune.replay import replay_run
from tests.finetune.helpers import (
    Interrupt,
    config,
    sentiment_data,
    stop_at_step,
    train,
    weights,
    write_sst2,
)

SETTINGS = dict(steps=6, eval_every=2, checkpoint_every=2, test=False, save_model=False)


class Crash(BaseException):
    """The process dies here (nothing after it runs, no handler catches it)."""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tokenizer):
    result = train(config(tmp_path_factory.mktemp("whole"), **SETTINGS), tokenizer)
    return weights(result.model)


def resumed(tmp_path, tokenizer, **overrides):
    return train(config(tmp_path, resume=True, **SETTINGS, **overrides), tokenizer)


def assert_bitwise(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def crash_on(monkeypatch, target, name, nth):
    """Make ``target.name`` raise Crash on its ``nth`` call."""
    original, calls = getattr(target, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


# ----------------------------------------------------------- crashes while checkpointing


@pytest.mark.parametrize(
    ("where", "nth", "resumes_from"),
    [
        # torch.save of the step-4 state: the step-2 checkpoint is the newest complete one.
        ("save_state", 2, 2),
        # Path.rename calls of the step-4 swap: 1 = step 2's tmp->checkpoint; 2 = step 4's
        # checkpoint->checkpoint.old; 3 = step 4's checkpoint.tmp->checkpoint.
        ("rename", 2, 4),
        ("rename", 3, 4),
    ],
)
def test_a_crash_at_any_point_of_a_checkpoint_write_resumes_from_the_newest_complete_one(
    tmp_path, tokenizer, uninterrupted, monkeypatch, where, nth, resumes_from
):
    if where == "save_state":
        crash_on(monkeypatch, torch, "save", nth)
    else:
        crash_on(monkeypatch, Path, "rename", nth)
    with pytest.raises(Crash):
        train(config(tmp_path, **SETTINGS), tokenizer)
    monkeypatch.undo()
    messages = []
    result = train(
        config(tmp_path, resume=True, **SETTINGS), tokenizer, callbacks=[messages.append]
    )
    assert messages[0]["step"] == resumes_from + 1
    assert_bitwise(weights(result.model), uninterrupted)
    leftovers = {p.name for p in (tmp_path / "run").iterdir()}
    assert not leftovers & {"checkpoint.tmp", "checkpoint.old", "best.safetensors.tmp"}


def test_an_incomplete_checkpoint_left_by_a_killed_process_is_passed_over(
    tmp_path, tokenizer, uninterrupted
):
    interrupt_after(tmp_path, tokenizer, 5)
    run = tmp_path / "run"
    # A checkpoint.tmp as a kill -9 leaves it: files written, no manifest.
    (run / "checkpoint.tmp").mkdir()
    (run / "checkpoint.tmp" / "state.pt").write_bytes(b"half")
    result = resumed(tmp_path, tokenizer)
    assert_bitwise(weights(result.model), uninterrupted)


def interrupt_after(tmp_path, tokenizer, step):
    with pytest.raises(Interrupt):
        train(config(tmp_path, **SETTINGS), tokenizer, callbacks=[stop_at_step(step)])


# --------------------------------------------------------------------- --resume with nothing


def test_resume_without_a_run_says_so_and_creates_nothing(tmp_path, tokenizer):
    with pytest.raises(RunDirectoryError, match="no run to resume"):
        resumed(tmp_path, tokenizer)
    assert not (tmp_path / "run").exists()


def test_resume_of_a_run_without_a_checkpoint_says_so_and_keeps_its_log(tmp_path, tokenizer):
    interrupt_after(tmp_path, tokenizer, 1)  # before the first checkpoint (step 2)
    log = (tmp_path / "run" / "log.jsonl").read_text()
    with pytest.raises(RunDirectoryError, match=r"no complete checkpoint.*--overwrite"):
        resumed(tmp_path, tokenizer)
    assert (tmp_path / "run" / "log.jsonl").read_text() == log


@pytest.mark.usefixtures("no_hub")
def test_the_cli_exits_non_zero_when_there_is_nothing_to_resume(tmp_path, tiny_model_dir, capsys):
    data = write_sst2(tmp_path / "data", n_validation=8)
    args = ["finetune", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "r")]
    args += ["--data-dir", str(data), "--n-train", "8", "--n-dev", "4", "--batch-size", "4"]
    args += ["--resume", "--no-progress", "--device", "cpu"]
    assert main(args) == 2
    assert "no run to resume" in capsys.readouterr().err


# ------------------------------------------------------------------------- broken files


def checkpoint_run(tmp_path, tokenizer):
    interrupt_after(tmp_path, tokenizer, 5)  # the last checkpoint is step 4
    return tmp_path / "run"


def test_a_truncated_checkpoint_tensor_file_is_named_with_what_to_do(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    path = run / "checkpoint" / "trainable.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"trainable\.safetensors is damaged.*--overwrite"):
        resumed(tmp_path, tokenizer)


def test_a_garbled_state_file_is_named_with_what_to_do(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    path = run / "checkpoint" / "state.pt"
    data = bytearray(path.read_bytes())
    data[100:110] = b"0123456789"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"state\.pt is damaged"):
        resumed(tmp_path, tokenizer)


class _Payload:
    def __reduce__(self):
        return (exec, (f"open({str(MARKER)!r}, 'w').close()",))


MARKER = Path("/tmp/adamezo-test-pickle-ran")


def test_a_state_file_holding_a_code_pickle_is_refused_without_running_it(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    MARKER.unlink(missing_ok=True)
    # A checkpoint without a manifest (as older adamezo wrote them), so only the loader guards.
    (run / "checkpoint" / "manifest.json").unlink()
    with open(run / "checkpoint" / "state.pt", "wb") as f:
        pickle.dump({"loop": {"step": 4}, "evil": _Payload()}, f)
    with pytest.raises(CheckpointError, match=r"state\.pt cannot be read"):
        resumed(tmp_path, tokenizer)
    assert not MARKER.exists()


def test_a_checkpoint_of_other_tensors_is_refused_naming_them(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    folder = Checkpoints(run).latest()
    loaded = Checkpoints(run).load()[0]
    other = {k: v[..., :1].clone() if v.dim() else v for k, v in loaded.items()}
    with pytest.raises(
        CheckpointError, match=r"does not match the model's trainable tensors.*\[32"
    ):
        check_tensors(other, loaded, folder / "trainable.safetensors")


def test_a_log_that_does_not_reach_the_checkpoint_is_refused(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    lines = (run / "log.jsonl").read_text().splitlines()
    kept = [x for x in lines if json.loads(x)["step"] < 4]
    (run / "log.jsonl").write_text("\n".join(kept) + "\n")
    with pytest.raises(CheckpointError, match=r"log\.jsonl has no record of step 4"):
        resumed(tmp_path, tokenizer)


def test_a_log_cut_mid_record_resumes_bitwise(tmp_path, tokenizer, uninterrupted):
    run = checkpoint_run(tmp_path, tokenizer)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"type": "train", "step": 6, "lo')  # what a crash mid-write leaves
    assert_bitwise(weights(resumed(tmp_path, tokenizer).model), uninterrupted)


def test_a_garbled_log_line_is_named_by_file_and_line(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    lines = (run / "log.jsonl").read_text().splitlines()
    lines[2] = lines[2][:20]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFileError, match=r"log\.jsonl:3: bad record.*--overwrite"):
        resumed(tmp_path, tokenizer)


def test_a_garbled_config_is_named_and_overwrite_replaces_the_run(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    (run / "config.json").write_text('{"model": "tiny')
    with pytest.raises(RunFileError, match=r"config\.json is not valid JSON.*--overwrite"):
        resumed(tmp_path, tokenizer)
    result = train(config(tmp_path, overwrite=True, **SETTINGS), tokenizer)
    assert result.metrics["steps"] == 6


def test_garbled_metrics_are_named_when_read(tmp_path, tiny_model_dir):
    cfg = config(tmp_path, model=str(tiny_model_dir), steps=2, test=False)
    run = run_finetune(cfg, data=sentiment_data()).run_dir
    (run / "metrics.json").write_text("{")
    with pytest.raises(RunFileError, match=r"metrics\.json is not valid JSON"):
        replay_run(run, tmp_path / "out")


@pytest.mark.usefixtures("no_hub")
def test_a_truncated_exported_model_gives_an_error_naming_its_directory(
    tmp_path, tiny_model_dir, capsys
):
    data = write_sst2(tmp_path / "data", n_validation=8)
    cfg = config(tmp_path, model=str(tiny_model_dir), steps=2, test=False, data_dir=str(data))
    run = run_finetune(cfg, data=sentiment_data()).run_dir
    path = run / "model" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    code = main(["eval", "--run", str(run), "--weights", "model", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "damaged or cut short" in err and str(run / "model") in err


# ------------------------------------------------------------- checked before the model loads


@pytest.fixture
def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("adamezo.finetune.builder.load_model", refuse)


@pytest.mark.parametrize(
    ("device", "message"),
    [("nope", "not a device name torch knows"), ("cuda", "no CUDA GPU")],
)
def test_a_device_this_machine_lacks_is_refused_before_the_model_loads(
    tmp_path, tiny_model_dir, no_model_loading, device, message
):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = config(tmp_path, model=str(tiny_model_dir), device=device)
    with pytest.raises(ValueError, match=message):
        run_finetune(cfg, data=sentiment_data())


def test_an_output_dir_that_is_a_file_is_refused_before_the_model_loads(
    tmp_path, tiny_model_dir, no_model_loading
):
    (tmp_path / "run").write_text("a file")
    cfg = config(tmp_path, model=str(tiny_model_dir))
    with pytest.raises(RunDirectoryError, match="is a file"):
        run_finetune(cfg, data=sentiment_data())


def test_a_read_only_output_dir_is_refused_before_the_model_loads(
    tmp_path, tiny_model_dir, no_model_loading, monkeypatch
):
    # Tests may run as root, who may write anywhere: ask os.access the question a user would.
    real_access = os.access
    monkeypatch.setattr(
        rundir.os, "access", lambda p, mode: Path(p) != tmp_path and real_access(p, mode)
    )
    cfg = config(tmp_path, model=str(tiny_model_dir))
    with pytest.raises(RunDirectoryError, match="not writable"):
        run_finetune(cfg, data=sentiment_data())


# ------------------------------------------------------------------------ diverged runs


def nan_losses(monkeypatch):
    from adamezo.finetune import objective

    loss = objective.TaskObjective.loss
    monkeypatch.setattr(
        objective.TaskObjective, "loss", lambda self, batch: loss(self, batch) * float("nan")
    )


def test_a_run_whose_steps_are_all_skipped_stops_with_an_error_and_a_strict_json_log(
    tmp_path, tokenizer, monkeypatch
):
    nan_losses(monkeypatch)
    monkeypatch.setattr("adamezo.finetune.loop.MAX_NONFINITE_STEPS", 3)
    cfg = config(tmp_path, steps=8, eval_every=100, eval_at_start=False)
    with pytest.raises(TrainingDivergedError, match=r"steps 1 to 3 were all skipped.*lower --lr"):
        train(cfg, tokenizer)

    def reject(token):
        raise AssertionError(f"bare {token} in log.jsonl")

    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    records = [json.loads(x, parse_constant=reject) for x in lines]
    assert [r["loss"] for r in records if r["type"] == "train"] == [None, None, None]


def test_a_short_run_with_every_step_skipped_fails_too(tmp_path, tokenizer, monkeypatch):
    nan_losses(monkeypatch)
    with pytest.raises(TrainingDivergedError, match="steps 1 to 4"):
        train(config(tmp_path, steps=4, eval_every=100), tokenizer)


def test_the_cli_exits_non_zero_on_a_diverged_run(tmp_path, tiny_model_dir, monkeypatch, capsys):
    nan_losses(monkeypatch)
    data = write_sst2(tmp_path / "data", n_validation=8)
    args = ["finetune", "--model", str(tiny_model_dir), "--data-dir", str(data), "--steps", "3"]
    args += ["--n-train", "8", "--n-dev", "4", "--batch-size", "4", "--device", "cpu"]
    args += ["--output-dir", str(tmp_path / "run"), "--no-progress", "--no-test"]
    monkeypatch.setattr("adamezo.tasks.sources.hub_reachable", lambda *a, **k: False)
    assert main(args) == 2
    assert "were all skipped" in capsys.readouterr().err


# ------------------------------------------------------------------- the best weights files


def test_resume_leaves_no_stray_tmp_and_best_files_are_not_hard_linked(tmp_path, tokenizer):
    run = checkpoint_run(tmp_path, tokenizer)
    resumed(tmp_path, tokenizer)
    assert not (run / "best.safetensors.tmp").exists()
    assert (run / "best.safetensors").stat().st_nlink == 1
    assert (run / "checkpoint" / "best.safetensors").stat().st_nlink == 1


# A stand-in for safetensors' save_file that dies as a kill -9 would, halfway through the write:
# its temporary file (safetensors writes ``.tmpXXXXXX`` beside the target, then renames it) is
# on disk, the target is not, and no ``finally`` runs.
KILLED_MID_WRITE = """
import os, sys
from pathlib import Path
import safetensors.torch, torch
from adamezo.finetune.filemodes import save_tensors

def dies_mid_write(tensors, filename, metadata=None):
    (Path(filename).parent / ".tmpAbC123").write_bytes(b"half a file")
    os._exit(9)

safetensors.torch.save_file = dies_mid_write
save_tensors({"w": torch.ones(3)}, sys.argv[1])
"""


def test_a_weights_write_killed_midway_leaves_only_a_staging_folder_the_next_write_removes(
    tmp_path,
):
    target = tmp_path / "best.safetensors"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], check=False)
    assert killed.returncode == 9
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors.tmp"]
    assert (tmp_path / "best.safetensors.tmp" / ".tmpAbC123").is_file()
    filemodes.save_tensors({"w": torch.zeros(2)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]
    assert torch.equal(load_file(target)["w"], torch.zeros(2))


def test_overwrite_clears_a_safetensors_leftover_that_older_versions_left_beside_the_weights(
    tmp_path, tokenizer
):
    interrupt_after(tmp_path, tokenizer, 3)
    leftover = tmp_path / "run" / ".tmpXy9Z01"
    leftover.write_bytes(b"half a file")
    train(config(tmp_path, overwrite=True, **SETTINGS), tokenizer)
    assert not leftover.exists()


# ---------------------------------------------------------------------------- full disk


def enospc_on(monkeypatch, target, name, nth):
    original, calls = getattr(target, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


@pytest.mark.parametrize(
    ("target", "name", "nth"),
    [
        (checkpoints, "save_tensors", 3),  # a safetensors write after the step-2 checkpoint
        (torch, "save", 2),  # state.pt of the step-4 checkpoint
    ],
)
def test_a_full_disk_stops_the_run_clearly_and_resume_continues_bitwise(
    tmp_path, tokenizer, uninterrupted, monkeypatch, target, name, nth
):
    enospc_on(monkeypatch, target, name, nth)
    with pytest.raises(RunWriteError, match=r"the disk is full.*checkpoint.*intact.*--resume"):
        train(config(tmp_path, **SETTINGS), tokenizer)
    monkeypatch.undo()
    run = tmp_path / "run"
    assert not (run / "checkpoint.tmp").exists()
    assert Checkpoints(run).load() is not None
    assert_bitwise(weights(resumed(tmp_path, tokenizer).model), uninterrupted)


def test_a_full_disk_while_logging_stops_clearly_and_resume_continues_bitwise(
    tmp_path, tokenizer, uninterrupted, monkeypatch
):
    original = rundir.RunDirectory.append_log

    def full_at_step_5(self, record):
        if record.step == 5:
            with open(self / "log.jsonl", "a") as f:
                f.write(json.dumps(record.to_json())[:10])  # part of the line got out
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, record)

    monkeypatch.setattr(rundir.RunDirectory, "append_log", full_at_step_5)
    with pytest.raises(OSError, match="No space left"):
        train(config(tmp_path, **SETTINGS), tokenizer)
    monkeypatch.undo()
    assert_bitwise(weights(resumed(tmp_path, tokenizer).model), uninterrupted)


def test_the_cli_reports_a_full_disk_without_a_traceback(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    data = write_sst2(tmp_path / "data", n_validation=8)
    enospc_on(monkeypatch, torch, "save", 1)
    args = ["finetune", "--model", str(tiny_model_dir), "--data-dir", str(data), "--steps", "2"]
    args += ["--n-train", "8", "--n-dev", "4", "--batch-size", "4", "--device", "cpu"]
    args += ["--output-dir", str(tmp_path / "run"), "--no-progress", "--no-test"]
    args += ["--eval-every", "2"]
    monkeypatch.setattr("adamezo.tasks.sources.hub_reachable", lambda *a, **k: False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err


def test_a_checkpoint_written_before_manifests_and_plain_rng_states_still_resumes_bitwise(
    tmp_path, tokenizer, uninterrupted
):
    import numpy as np

    run = checkpoint_run(tmp_path, tokenizer)
    folder = run / "checkpoint"
    (folder / "manifest.json").unlink()
    state = torch.load(folder / "state.pt", weights_only=True)
    kind, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    # As older adamezo saved it: NumPy's own state tuple, holding an array.
    state["rng"]["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    torch.save(state, folder / "state.pt")
    assert_bitwise(weights(resumed(tmp_path, tokenizer).model), uninterrupted)


def test_a_write_refused_for_permission_says_permission_not_disk_space(tmp_path):
    from adamezo.finetune.files import writing

    target = tmp_path / "log.jsonl"
    with pytest.raises(RunWriteError) as caught, writing(target, lambda: None):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
    message = str(caught.value)
    assert "permission" in message.lower() and "free space" not in message
    assert str(target) in message


def immutable(path):
    """chattr +i: not even root may write it (what a directory without write permission is to
    any other user); None where the filesystem or user cannot set it."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    return path if done.returncode == 0 else None


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_an_unwritable_run_file_is_refused_for_permission_before_the_model_loads(
    tmp_path, tiny_model_dir, monkeypatch, capsys, flag
):
    from adamezo.finetune import builder

    rows = [f"{'great film' if i % 2 else 'dull plot'} {i},{i % 2}" for i in range(40)]
    (tmp_path / "data.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    args = [
        *("finetune", "--model", str(tiny_model_dir), "--train-file", str(tmp_path / "data.csv")),
        *("--template", "{text} It was", "--label-column", "label", "--verbalizers", "bad,good"),
        *("--n-dev", "4", "--n-test", "4", "--batch-size", "4", "--steps", "2"),
        *("--device", "cpu", "--output-dir", str(run), "--no-progress"),
    ]
    assert main(args) == 0
    locked = immutable(run / "log.jsonl")
    if locked is None:
        pytest.skip("chattr +i is not available here")
    try:

        def no_model(*args, **kwargs):
            raise AssertionError("the model was loaded before the permission check")

        monkeypatch.setattr(builder, "load_model", no_model)
        code = main([*args, flag])
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    err = capsys.readouterr().err
    assert code == 2 and "permission" in err.lower() and "log.jsonl" in err, err
    assert "free space" not in err
