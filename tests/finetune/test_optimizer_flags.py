"""The new methods' options on the command line (--rank, --queries, --lazy-interval,
--resample-interval, --momentum): each reaches the optimizer a run builds, is kept in the run's
config so replay and resume rebuild the same optimizer, is refused for an optimizer without it,
and the sweep takes it like any run flag."""

import json

import pytest
import torch
from safetensors.torch import load_file

from adamezo.cli import build_parser, main
from adamezo.finetune.builder import build_optimizer
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.flags import config_from_args
from adamezo.finetune.replay import replay_run
from adamezo.finetune.rundir import RunDirectoryError
from adamezo.finetune.sweep_cli import settings_from_args
from adamezo.finetune.sweep_settings import as_current
from tests.finetune.test_replay import finetune, same, trained_weights


class Tuned:
    """The one method of a tuned model ``build_optimizer`` calls: a matrix and a vector."""

    def param_groups(self, exclude_bias_norm):
        return [{"params": [torch.zeros(6, 5), torch.zeros(5)]}]


def built(*flags):
    config = config_from_args(build_parser().parse_args(["finetune", *flags])).resolved()
    return config, build_optimizer(config, Tuned())


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--optimizer", "lozo", "--rank", "3", "--lazy-interval", "7", "--momentum", "0.5"],
            {"rank": 3, "lazy_interval": 7, "momentum": 0.5},
        ),
        (["--optimizer", "lozo-m", "--rank", "4"], {"rank": 4, "momentum": 0.9}),
        (["--optimizer", "lozo-m", "--momentum", "0.7"], {"rank": 2, "momentum": 0.7}),
        (["--optimizer", "lozo"], {"rank": 2, "lazy_interval": 50, "momentum": 0.0}),
        (
            ["--optimizer", "zo-muon", "--rank", "3", "--queries", "2", "--resample-interval", "9"],
            {"rank": 3, "queries": 2, "resample_interval": 9},
        ),
        (["--optimizer", "zo-muon"], {"rank": 64, "queries": 4, "resample_interval": 100}),
        (["--optimizer", "fzoo", "--queries", "5"], {"queries": 5}),
        (["--optimizer", "fzoo"], {"queries": 8}),
    ],
)
def test_each_flag_reaches_the_optimizer_and_unset_ones_keep_its_default(flags, expected):
    config, optimizer = built(*flags)
    assert {name: getattr(optimizer.config, name) for name in expected} == expected
    saved = config.to_dict()
    for name in ("rank", "queries", "lazy_interval", "resample_interval", "momentum"):
        flag = f"--{name.replace('_', '-')}"
        assert saved[name] == (expected[name] if flag in flags else None)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--optimizer", "mezo", "--rank", "3"], "rank: optimizer 'mezo' takes no rank"),
        (["--optimizer", "fzoo", "--rank", "3"], "rank: optimizer 'fzoo' takes no rank"),
        (["--optimizer", "lozo", "--queries", "2"], "queries: optimizer 'lozo' takes no queries"),
        (
            ["--optimizer", "fzoo", "--resample-interval", "5"],
            "resample_interval: optimizer 'fzoo' takes no resample_interval",
        ),
        (
            ["--optimizer", "zo-muon", "--lazy-interval", "5"],
            "lazy_interval: optimizer 'zo-muon' takes no lazy_interval",
        ),
        (
            ["--optimizer", "adamezo", "--momentum", "0.5"],
            "momentum: optimizer 'adamezo' takes no momentum",
        ),
        (["--optimizer", "fo-adam", "--rank", "2"], "rank: optimizer 'fo-adam' takes no rank"),
        (["--optimizer", "lozo", "--rank", "0"], "rank must be"),
        (["--optimizer", "lozo", "--momentum", "1"], "momentum must be"),
        (["--optimizer", "zo-muon", "--queries", "0"], "queries must be"),
    ],
)
def test_a_flag_the_optimizer_does_not_take_is_a_clear_error_before_any_file(
    tmp_path, capsys, flags, message
):
    args = ["finetune", *flags, "--output-dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=message):
        config_from_args(build_parser().parse_args(args)).validate()
    assert main(args) == 2
    assert message.split(" must")[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fzoo_refuses_a_single_query_naming_the_argument():
    with pytest.raises(ValueError, match="queries must be an int >= 2, got 1"):
        built("--optimizer", "fzoo", "--queries", "1")


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "lozo", "rank": 3, "lazy_interval": 3, "momentum": 0.5},
        {"optimizer": "zo-muon", "rank": 3, "queries": 2, "resample_interval": 3},
    ],
    ids=["lozo", "zo-muon"],
)
def test_a_run_with_rank_3_is_saved_with_it_and_replays_bitwise(tmp_path, tiny_model_dir, options):
    run = finetune(tmp_path, tiny_model_dir, "run", keep_best=False, **options)
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert {k: saved[k] for k in options} == options
    result = replay_run(run.run_dir, tmp_path / "replayed")
    assert result.verification.matches, result.verification.problem
    replayed = load_file(str(tmp_path / "replayed" / "model.safetensors"))
    assert same(replayed, trained_weights(run.run_dir))
    # The rank mattered: the same run at the optimizer's default rank ends elsewhere.
    others = {k: v for k, v in options.items() if k != "rank"}
    default = finetune(tmp_path, tiny_model_dir, "default", keep_best=False, **others)
    assert not same(trained_weights(default.run_dir), trained_weights(run.run_dir))


def test_resume_with_another_rank_is_refused(tmp_path, tiny_model_dir):
    finetune(tmp_path, tiny_model_dir, "run", optimizer="lozo", rank=3, save_model=False)
    with pytest.raises(RunDirectoryError, match=r"rank: 3 -> 4"):
        finetune(tmp_path, tiny_model_dir, "run", optimizer="lozo", rank=4, resume=True)


SWEEP = ["sweep", "--optimizer", "lozo,lozo-m", "--lr", "1e-3,1e-2"]


def test_the_sweep_takes_the_flags_into_every_trial(tmp_path):
    flags = ["--rank", "3", "--lazy-interval", "5", "--output-dir", str(tmp_path / "s")]
    settings = settings_from_args(build_parser().parse_args([*SWEEP, *flags]))
    settings.validate()
    for name in settings.optimizers:
        trial = settings.trial_config(name, 1e-3, 0)
        assert (trial.rank, trial.lazy_interval, trial.momentum) == (3, 5, None)
        optimizer = build_optimizer(trial.resolved(), Tuned())
        assert (optimizer.config.rank, optimizer.config.lazy_interval) == (3, 5)
    assert settings.identity()["runs"]["rank"] == 3


def test_a_sweep_flag_one_of_its_optimizers_does_not_take_is_refused(tmp_path):
    args = ["sweep", "--optimizer", "lozo,mezo", "--rank", "3", "--lr", "1e-3"]
    settings = settings_from_args(build_parser().parse_args(args))
    with pytest.raises(ValueError, match="rank: optimizer 'mezo' takes no rank"):
        settings.validate()


def test_a_study_stored_before_these_settings_existed_reads_as_this_version_writes_it(tmp_path):
    settings = settings_from_args(
        build_parser().parse_args([*SWEEP, "--output-dir", str(tmp_path / "s")])
    )
    mine = settings.identity()
    older = json.loads(json.dumps(mine))
    for name in ("rank", "queries", "lazy_interval", "resample_interval", "momentum"):
        del older["runs"][name]
    assert older != mine and as_current(older) == mine
    older["runs"]["steps"] += 1  # a real difference stays one
    assert as_current(older) != mine


def test_every_new_setting_has_the_value_an_older_config_meant():
    """A config.json written before these settings existed meant each optimizer's own default."""
    data = FinetuneConfig(optimizer="lozo").to_dict()
    for name in ("rank", "queries", "lazy_interval", "resample_interval", "momentum"):
        data.pop(name)
    from adamezo.finetune.config import ADDED_SETTINGS

    loaded = FinetuneConfig.from_dict({**ADDED_SETTINGS, **data})
    assert loaded == FinetuneConfig(optimizer="lozo")
