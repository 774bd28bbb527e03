"""``adamezo sweep``: the grid on an Optuna study, its outputs, bad input, several workers, and a
killed worker's trial resumed by another bit for bit (tiny model, own CSV)."""

import json
import math
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from safetensors.torch import load_file

from adamezo.cli import build_parser, main
from adamezo.finetune import loop
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.sweep import LR_RANGE, MAX_SEED, SweepPlan, open_study, wanted_points
from adamezo.finetune.sweep_cli import NOT_SWEEP_FLAGS, settings_from_args
from adamezo.finetune.sweep_runs import run_summary
from adamezo.finetune.sweep_settings import SweepSettings
from adamezo.finetune.trial_queue import first_holder
from tests.finetune.helpers import (
    KILL_AT_STEP_3,
    python_worker,
    rendezvous,
    sentiment_sentences,
    untimed_log,
)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows = sentiment_sentences(80, 0)
    labels = ("terrible", "great")
    path.write_text("text,label\n" + "".join(f"{s},{labels[y]}\n" for s, y in rows))
    return path


def sweep_args(model_dir, csv, out, *extra):
    return [
        "sweep",
        *("--model", str(model_dir), "--train-file", str(csv), "--template", "{text} It was"),
        *("--label-column", "label", "--verbalizers", "terrible,great"),
        *("--n-train", "40", "--n-dev", "20", "--n-test", "0", "--batch-size", "8"),
        *("--steps", "10", "--eval-every", "5", "--device", "cpu", "--no-progress"),
        *("--no-save-model", "--output-dir", str(out)),
        *extra,
    ]


AUTO_LORA = ("--lr", "auto", "--tuning", "lora", "--steps", "20")


def logs(directory):
    return {p: p.read_bytes() for p in sorted(Path(directory).glob("runs/*/log.jsonl"))}


def test_a_csv_sweep_finds_an_interior_best_and_a_second_run_trains_nothing(
    tmp_path, tiny_model_dir, reviews, capsys
):
    out = tmp_path / "sweep"
    # LoRA, 20 steps: a landscape with a clear optimum (measured: dev loss 0.6467, 0.6436, 0.6420,
    # 0.6146, 0.6291 from 1e-3 to 1e-1)
    args = sweep_args(tiny_model_dir, reviews, out, *AUTO_LORA)
    assert main(args) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    results = json.loads((out / "sweep.json").read_text())
    assert results["complete"]
    lrs = [t["lr"] for t in results["trials"]]
    # auto: (1e-3, 3e-3, 1e-2, 3e-2) around AdaMeZO's LoRA default 1e-2, then grown up while
    # the best sat at the top edge
    assert lrs[:4] == [1e-3, 3e-3, 1e-2, 3e-2] and len(lrs) > 4
    best = results["best"]["adamezo"]
    assert best["interior"] and best["settled"] and min(lrs) < best["lr"] < max(lrs)
    losses = {t["lr"]: t["best_dev_loss"] for t in results["trials"]}
    assert best["best_dev_loss"] == min(v for v in losses.values() if v is not None)
    row = next(t for t in results["trials"] if t["lr"] == best["lr"])
    assert row["run_dir"] == best["run_dir"] and Path(best["run_dir"]).is_dir()
    assert "accuracy" in row["dev_metrics"] and row["forward_passes_to_best"] > 0
    assert f"best adamezo: lr {best['lr']:g} (interior)" in printed
    assert f"trained {len(lrs)} trial(s)" in printed
    assert (out / "sweep.png").stat().st_size > 0 and (out / "sweep.db").is_file()

    before = logs(out)
    assert main(args) == 0
    assert "trained 0 trial(s)" in capsys.readouterr().out
    assert logs(out) == before
    assert json.loads((out / "sweep.json").read_text())["trials"] == results["trials"]

    # `adamezo eval --run` takes the named run directory: its weights give the best dev loss
    assert main(["eval", "--run", best["run_dir"], "--weights", "best", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["dev_loss"] == pytest.approx(best["best_dev_loss"])


def test_seeds_and_optimizers_each_at_their_own_best(tmp_path, tiny_model_dir, reviews, capsys):
    out = tmp_path / "sweep"
    extra = ("--optimizer", "adamezo,mezo", "--lr", "1e-3,1e-2", "--seeds", "0,1")
    assert main(sweep_args(tiny_model_dir, reviews, out, *extra)) == 0, capsys.readouterr()
    results = json.loads((out / "sweep.json").read_text())
    points = {(t["optimizer"], t["lr"], t["seed"]) for t in results["trials"]}
    for name in ("adamezo", "mezo"):
        best = results["best"][name]
        assert not best["interior"]  # two values, no growth: the best is an edge, and said so
        grid = {(name, lr, 0) for lr in (1e-3, 1e-2)}
        assert grid | {(name, best["lr"], 1)} <= points
        assert set(best["seeds"]) == {"0", "1"}
        assert best["mean_best_dev_loss"] == pytest.approx(sum(best["seeds"].values()) / 2)
    assert len(points) == 6 and "AT AN EDGE" in capsys.readouterr().out


def test_sweep_takes_every_run_flag_but_those_it_sets_and_explains_each():
    parser = build_parser()
    command = next(a for a in parser._actions if a.dest == "command").choices["sweep"]
    dests = {a.dest for a in command._actions}
    fields = set(FinetuneConfig.__dataclass_fields__) - {"extra"}
    assert fields - set(NOT_SWEEP_FLAGS) <= dests
    assert all(action.help for action in command._actions)


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(loop, "run_finetune", refuse)


def test_an_unreachable_storage_is_a_clear_error_before_any_run(
    tmp_path, tiny_model_dir, reviews, capsys, no_training
):
    (tmp_path / "a-file").write_text("")
    url = f"sqlite:///{tmp_path}/a-file/sweep.db"
    code = main(sweep_args(tiny_model_dir, reviews, tmp_path / "s", "--storage", url))
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot open the sweep's study" in err and "a-file" in err
    assert not (tmp_path / "s" / "runs").exists()


def test_one_study_name_with_other_settings_is_refused(
    tmp_path, tiny_model_dir, reviews, capsys, no_training
):
    args = sweep_args(tiny_model_dir, reviews, tmp_path / "s", "--lr", "1e-3")
    settings = settings_from_args(build_parser().parse_args([*args, "--steps", "9"]))
    settings.directory().mkdir()
    open_study(settings)  # the study exists, made by a sweep of 9 steps
    assert main([*args, "--steps", "12"]) == 2
    err = capsys.readouterr().err
    assert "other settings (steps: 9 -> 12)" in err  # a run setting by its own name


def test_a_budget_without_a_dev_example_is_refused(tmp_path, tiny_model_dir, reviews, capsys):
    code = main(sweep_args(tiny_model_dir, reviews, tmp_path / "s", "--n-dev", "0"))
    assert code == 2
    assert "n_dev is 0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--lr", "fast"), "--lr takes 'auto'"),
        (("--optimizer", "adamezo,sgd"), "unknown optimizer"),
        (("--seeds", "0,x"), "--seeds takes"),
    ],
)
def test_bad_sweep_flags_are_usage_errors(tmp_path, flags, message, capsys):
    with pytest.raises(SystemExit):
        main(["sweep", *flags, "--output-dir", str(tmp_path / "s")])
    assert message in capsys.readouterr().err


def test_bad_sweep_settings_name_the_setting():
    with pytest.raises(ValueError, match="lrs must be distinct"):
        SweepSettings(lrs=(1e-3, 0.001)).validate()
    with pytest.raises(ValueError, match="every lr must be a positive"):
        SweepSettings(lrs=(0.0,)).validate()
    with pytest.raises(ValueError, match="seed"):
        SweepSettings(seeds=(-1,)).validate()
    with pytest.raises(ValueError, match="grace_period"):
        SweepSettings(heartbeat_interval=10, grace_period=5).validate()
    with pytest.raises(ValueError, match="horizon"):  # a run setting the optimizer refuses
        SweepSettings(FinetuneConfig(horizon=3), optimizers=("mezo",)).validate()


# ------------------------------------------------------------------------- the grid on a study


def trial(optimizer, lr, seed, state=TrialState.COMPLETE, value=None):
    params = {"optimizer": optimizer, "lr": lr, "seed": seed}
    done = state == TrialState.COMPLETE
    return optuna.trial.create_trial(
        state=state,
        params=params if done else None,
        distributions={
            "optimizer": CategoricalDistribution(["adamezo", "mezo"]),
            "lr": FloatDistribution(*LR_RANGE, log=True),
            "seed": IntDistribution(0, MAX_SEED),
        }
        if done
        else None,
        value=value if done else None,
        system_attrs={"fixed_params": params},
    )


def test_the_grid_grows_then_the_other_seeds_run_at_its_best():
    settings = SweepSettings(optimizers=("adamezo", "mezo"), seeds=(0, 1))
    study = optuna.create_study()
    first = wanted_points(settings, study.trials)
    # optimizers interleaved, each on its own auto grid around its default lr
    assert first[:2] == [("adamezo", 1e-4, 0), ("mezo", 3e-6, 0)] and len(first) == 8
    for lr, loss in zip((1e-4, 3e-4, 1e-3, 3e-3), (0.9, 0.8, 0.7, 0.6)):
        study.add_trial(trial("adamezo", lr, 0, value=loss))
    study.add_trial(trial("mezo", 1e-6, 0, TrialState.RUNNING))
    wanted = wanted_points(settings, study.trials)
    assert ("adamezo", 1e-2, 0) in wanted  # the best sat at the top edge
    assert ("mezo", 1e-6, 0) not in wanted  # running elsewhere
    study.add_trial(trial("adamezo", 1e-2, 0, value=0.65))
    wanted = wanted_points(settings, study.trials)
    assert ("adamezo", 3e-3, 1) in wanted
    assert not any(p[0] == "adamezo" and p[2] == 0 for p in wanted)


def test_a_failed_trials_point_is_wanted_again():
    settings = SweepSettings(lrs=(1e-3,))
    study = optuna.create_study()
    study.add_trial(trial("adamezo", 1e-3, 0, TrialState.FAIL))
    assert wanted_points(settings, study.trials) == [("adamezo", 1e-3, 0)]


def test_of_two_trials_on_one_point_the_lower_number_runs():
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(trial("adamezo", 1e-3, 0, TrialState.WAITING))
    trials, plan = study.trials, SweepPlan(SweepSettings())
    assert first_holder(trials, 0, ("adamezo", 1e-3, 0), plan) is None
    assert first_holder(trials, 1, ("adamezo", 1e-3, 0), plan) == 0
    assert first_holder(trials, 1, ("adamezo", 3e-3, 0), plan) is None


def test_run_summary_leaves_out_the_zero_shot_evaluation(tmp_path):
    def train(step):
        return {
            **{"type": "train", "step": step, "epoch": 0.0, "loss": 0.7, "lr": 1e-3},
            **{"forward_passes": 2 * step, "time": 0.0},
        }

    def dev(step, loss, accuracy):
        return {"type": "eval", "step": step, "dev_loss": loss, "dev_accuracy": accuracy, "time": 0}

    records = [dev(0, 0.1, 0.9), train(1), dev(1, 0.5, 0.6), train(2), dev(2, 0.4, 0.7)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"ty')
    summary = run_summary(tmp_path)
    assert summary == {
        "best_dev_loss": 0.4,
        "best_step": 2,
        "dev_metrics": {"accuracy": 0.7},
        "forward_passes_to_best": 4,
        "selection": 0.4,
        "selected_by": "dev loss",
    }
    assert run_summary(tmp_path / "nothing")["best_dev_loss"] == math.inf


def test_run_summary_of_a_score_objective_selects_the_best_dev_score(tmp_path):
    def dev(step, loss, accuracy):
        return {"type": "eval", "step": step, "dev_loss": loss, "dev_accuracy": accuracy, "time": 0}

    def train(step):
        return {"type": "train", "step": step, "epoch": 0.0, "loss": -0.6, "lr": 1e-3} | {
            "forward_passes": 2 * step,
            "time": 0.0,
        }

    # step 2 has the lower dev loss, step 1 the higher dev accuracy; step 3 ties step 1
    records = [dev(0, 1.0, 0.9), train(1), dev(1, 0.5, 0.7), train(2), dev(2, 0.4, 0.6)]
    records += [train(3), dev(3, 0.45, 0.7)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "config.json").write_text(json.dumps({"objective": "accuracy"}))
    summary = run_summary(tmp_path)
    assert summary["selected_by"] == "dev accuracy"
    assert (summary["best_step"], summary["selection"]) == (1, -0.7)  # the first of the equals
    assert (summary["best_dev_loss"], summary["forward_passes_to_best"]) == (0.5, 2)


# ----------------------------------------------------------------------------- many workers


CLI = "from adamezo.cli import main\nsys.exit(main(sys.argv[1:]))"


def worker(args, prelude=""):
    return python_worker(CLI, args, prelude)


@pytest.mark.slow
def test_two_workers_share_a_sweep_without_running_a_trial_twice(tmp_path, tiny_model_dir, reviews):
    out = tmp_path / "sweep"
    args = sweep_args(tiny_model_dir, reviews, out, "--lr", "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2")
    workers = [worker(args, rendezvous(tmp_path / "started")) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    print(*outputs, sep="\n----- the other worker -----\n")  # whole in a failure's report
    assert [w.returncode for w in workers] == [0, 0], outputs
    trained = [int(o.split("trained ")[-1].split(" trial")[0]) for o in outputs]
    assert sum(trained) == 6, outputs  # every point trained once, by one worker or the other
    assert min(trained) >= 1, outputs  # started together, both took part (3 and 3 when measured)
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'sweep.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["lr"] for t in complete) == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    assert sum(t.user_attrs["trained"] for t in complete) == 6
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}


@pytest.mark.slow
def test_a_killed_workers_trial_is_resumed_by_another_bit_for_bit(
    tmp_path, tiny_model_dir, reviews, capsys
):
    def args(out):
        return sweep_args(
            tiny_model_dir,
            reviews,
            out,
            *("--lr", "1e-2", "--checkpoint-every", "2"),
            *("--heartbeat-interval", "1", "--grace-period", "2"),
        )

    out, reference = tmp_path / "killed", tmp_path / "reference"
    killed = worker(args(out), KILL_AT_STEP_3)
    output = killed.communicate(timeout=600)[0]
    assert killed.returncode == -9, output
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'sweep.db'}")
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # its worker is gone

    assert main(args(out)) == 0  # waits out the grace period, then retries the trial
    assert "resumed from its checkpoint" in capsys.readouterr().out
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'sweep.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["resumed"] is True
    assert main(args(reference)) == 0
    run = "runs/adamezo-lr0.01-s0"
    for name in ("checkpoint/trainable.safetensors", "best.safetensors"):
        mine, theirs = load_file(out / run / name), load_file(reference / run / name)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
    assert untimed_log(out / run) == untimed_log(reference / run)


def test_the_table_and_plot_of_a_score_selected_sweep_show_the_score(tmp_path):
    from adamezo.finetune.sweep_cli import format_table, plot_sweep

    def row(lr, loss, accuracy):
        return {
            **{"optimizer": "mezo", "lr": lr, "seed": 0, "best_dev_loss": loss, "diverged": False},
            **{"selected_by": "dev accuracy", "selection": -accuracy, "trial": 0},
            **{"dev_metrics": {"accuracy": accuracy}, "forward_passes_to_best": 100},
            **{"run_dir": f"runs/mezo-lr{lr:g}-s0", "best_step": 50},
        }

    trials = [row(1e-4, 0.9, 0.55), row(1e-3, 1.2, 0.71), row(1e-2, 0.8, 0.5)]
    best = {k: trials[1][k] for k in ("lr", "run_dir", "best_dev_loss", "selected_by")}
    best |= {"dev_metrics": trials[1]["dev_metrics"], "interior": True, "settled": True}
    best |= {"seeds": {"0": 1.2}, "mean_best_dev_loss": 1.2}
    results = {"study": "s", "trials": trials, "best": {"mezo": best}, "complete": True}
    assert "best mezo: lr 0.001 (interior), selected by dev accuracy 0.7100" in format_table(
        results
    )
    plot_sweep(results, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
