"""--objective accuracy / f1 / exact-match / reward: what a step minimises, checked settings,
bitwise replay and resume, clear errors from a user's reward function, and data parallelism."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from safetensors.torch import load_file

from adamezo.cli import main
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.replay import replay_run
from adamezo.finetune.scores import (
    RewardFunctionError,
    TrainingObjective,
    call_reward,
    load_reward,
    soft_accuracy,
)
from adamezo.tasks import Example, TaskData
from tests.finetune.helpers import (
    Interrupt,
    config,
    run_alone_and_on_two_processes,
    sentiment_data,
    stop_at_step,
    tiny_llama,
    train,
    trained_alike,
    untimed_log,
    weights,
    write_sst2,
)

TINY = dict(steps=4, eval_every=2, test=False, lr=1e-2, optimizer="mezo")


def qa_data(n_train=12, n_dev=4):
    """A generation task: answer with the first word of the question."""
    words = ["great", "film", "plot", "story", "dull", "moving"]

    def example(i):
        word = words[i % len(words)]
        return Example(f"Question: {word}? Answer:", (), answers=(word,), target=f" {word}\n")

    from adamezo.tasks.custom import CustomTask

    task = CustomTask("qa", "{q}", target_column="a")
    train, dev = [example(i) for i in range(n_train)], [example(i) for i in range(n_dev)]
    return TaskData(train, dev, [], [], "qa", task=task)


def length_reward(prompts, completions, rows):
    """Longer completions score higher (a reward the tiny random model can move)."""
    return [float(len(c)) for c in completions]


# ----------------------------------------------------------------------------- accuracy


def test_soft_accuracy_is_argmax_accuracy_and_gold_probability_halved(tokenizer):
    from adamezo.finetune.objective import TaskObjective, metric_function
    from adamezo.finetune.scoring import CausalLMRunner, TokenEncoder
    from adamezo.tasks import get_task

    model = tiny_llama(tokenizer)
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    task = TaskObjective(
        runner, TokenEncoder(tokenizer), "classification", metric_function(get_task("sst2"))
    )
    batch = sentiment_data().train[:6]
    with torch.no_grad():
        scores = task.scores(batch)
    expected = []
    for example, score in zip(batch, scores, strict=True):
        p = torch.softmax(score.double(), 0)[example.label]
        expected.append((float(int(score.argmax()) == example.label) + p) / 2)
    with torch.no_grad():
        value = soft_accuracy(task, batch)
    assert float(value) == pytest.approx(float(torch.stack(expected).mean()), abs=1e-12)
    assert 0.0 <= float(value) <= 1.0


def test_an_accuracy_run_logs_minus_the_score_and_selects_by_dev_accuracy(tmp_path, tiny_model_dir):
    run = run_finetune(
        config(tmp_path, model=str(tiny_model_dir), objective="accuracy", **TINY),
        data=sentiment_data(),
    )
    records = untimed_log(run.run_dir)
    train_records = [r for r in records if r["type"] == "train"]
    assert len(train_records) == 4
    for record in train_records:
        assert all(-1.0 <= v <= 0.0 for v in record["losses"])
        assert record["losses"][0] != record["losses"][1]  # the gold probability breaks ties
    evals = [r for r in records if r["type"] == "eval"]
    best = max(evals, key=lambda r: (r["dev_accuracy"], -r["step"]))
    assert run.metrics["best_step"] == best["step"]
    assert json.loads((run.run_dir / "config.json").read_text())["objective"] == "accuracy"


def test_replay_of_an_accuracy_run_is_bitwise(tmp_path, tiny_model_dir):
    run = run_finetune(
        config(tmp_path, model=str(tiny_model_dir), objective="accuracy", keep_best=False, **TINY),
        data=sentiment_data(),
    )
    replay_run(run.run_dir, tmp_path / "replayed")
    replayed = load_file(str(tmp_path / "replayed" / "model.safetensors"))
    trained = load_file(str(run.run_dir / "model" / "model.safetensors"))
    assert replayed.keys() == trained.keys()
    assert all(torch.equal(replayed[k], trained[k]) for k in trained)


@pytest.mark.parametrize("objective", ["accuracy", "reward"])
def test_a_resumed_run_ends_bitwise_like_an_uninterrupted_one(tmp_path, tokenizer, objective):
    settings = dict(TINY, objective=objective, save_model=False, checkpoint_every=2)
    if objective == "reward":
        settings.update(objective="loss", samples=1, max_new_tokens=4)
    kwargs = {"objective": length_reward} if objective == "reward" else {}
    whole = train(
        config(tmp_path, output_dir=str(tmp_path / "whole"), **settings), tokenizer, **kwargs
    )
    cut = config(tmp_path, output_dir=str(tmp_path / "cut"), **settings)
    with contextlib.suppress(Interrupt):
        train(cut, tokenizer, callbacks=[stop_at_step(3)], **kwargs)  # last checkpoint: 2
    resumed = train(
        config(tmp_path, output_dir=str(tmp_path / "cut"), resume=True, **settings),
        tokenizer,
        **kwargs,
    )
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed_log(whole.run_dir) == untimed_log(resumed.run_dir)


# -------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(objective="bleu"), "objective must be one of"),
        (dict(objective="reward"), "needs a reward function"),
        (dict(reward="m:f"), "reward: goes with objective 'reward'"),
        (dict(samples=2, objective="accuracy"), "samples: goes with objective 'reward'"),
        (dict(samples=0, objective="reward", reward="m:f"), "samples must be"),
        (dict(max_new_tokens=5, objective="accuracy"), "max_new_tokens: decoding goes"),
        (dict(max_new_tokens=0, objective="f1"), "max_new_tokens must be"),
    ],
)
def test_bad_objective_settings_are_refused_up_front(overrides, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**overrides).validate()


def test_an_objective_that_does_not_fit_the_task_is_refused_before_loading(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="objective 'f1' does not apply to task 'sst2'"):
        train(config(tmp_path, objective="f1", **TINY), tokenizer)
    with pytest.raises(ValueError, match="objective 'accuracy' does not apply"):
        train(config(tmp_path, objective="accuracy", **TINY), tokenizer, data=qa_data())
    with pytest.raises(ValueError, match="has no gradient"):
        train(config(tmp_path, objective="accuracy", **{**TINY, "optimizer": "fo-adam"}), tokenizer)
    assert not (tmp_path / "run").exists()


def test_load_reward_reads_a_module_or_a_file(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text("def score(prompts, completions, rows):\n    return [1.0] * len(prompts)\n")
    assert load_reward(f"{path}:score")(["a"], ["b"], [{}]) == [1.0]
    assert load_reward("tests.finetune.test_objectives:length_reward") is length_reward
    with pytest.raises(ValueError, match="has no function 'nope'"):
        load_reward(f"{path}:nope")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        load_reward("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="not 'module:function'"):
        load_reward("just_a_name")
    with pytest.raises(ValueError, match="file not found"):
        load_reward(f"{tmp_path / 'missing.py'}:f")


# ----------------------------------------------------------------------------- rewards


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ([1.0, float("nan")], "example 1 got nan, not a finite number"),
        ([1.0, float("inf")], "example 1 got inf"),
        ([1.0], "returned 1 values for 2 completions"),
        ([1.0, "good"], "example 1 got str 'good', not a number"),
        (3.0, "must return a sequence of numbers"),
        ("11", "must return a sequence of numbers"),
    ],
)
def test_a_bad_reward_return_is_a_clear_error(returned, message):
    with pytest.raises(RewardFunctionError, match=message) as error:
        call_reward(lambda *a: returned, "mod:fn", ["p1", "p2"], ["x", "y"], [{}, {}])
    assert "mod:fn" in str(error.value)


def test_reward_accepts_numpy_arrays_tensors_and_bools():
    import numpy as np

    for returned in (np.array([0.5, 1.0]), torch.tensor([0.5, 1.0]), [0.5, True]):
        values = call_reward(lambda *a, r=returned: r, "f", ["p", "q"], ["x", "y"], [{}, {}])
        assert values == [0.5, 1.0]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("raise", "reward function .*flaky raised ZeroDivisionError: boom"),
        ("nan", "flaky: example 2 got nan"),
        ("short", "returned 3 values for 4 completions"),
    ],
)
def test_a_reward_that_fails_mid_step_leaves_the_weights_as_they_were(
    tmp_path, tokenizer, behaviour, message
):
    calls = []

    def flaky(prompts, completions, rows):
        calls.append(len(prompts))
        values = [float(len(c)) for c in completions]
        if len(calls) == 2:  # the second pass of the first step: the weights are perturbed
            if behaviour == "raise":
                raise ZeroDivisionError("boom")
            if behaviour == "nan":
                values[2] = float("nan")
            if behaviour == "short":
                values = values[:3]
        return values

    model = tiny_llama(tokenizer, dtype=torch.float32)
    before = weights(model)
    # exact: the passes see perturbed copies, so "as they were" is bitwise (in_place moves the
    # weights and restores them up to one rounding per pass)
    cfg = config(tmp_path, eval_at_start=False, max_new_tokens=3, perturbation="exact", **TINY)
    with pytest.raises(RewardFunctionError, match=message):
        run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data(), objective=flaky)
    after = weights(model)
    assert len(calls) == 2
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_reward_run_replays_bitwise_and_records_the_function(tmp_path, tiny_model_dir):
    cfg = config(
        tmp_path, model=str(tiny_model_dir), keep_best=False, max_new_tokens=4, samples=2, **TINY
    )
    run = run_finetune(cfg, data=sentiment_data(), objective=length_reward)
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert saved["objective"] == "reward"
    assert saved["reward"] == "tests.finetune.test_objectives:length_reward"
    records = untimed_log(run.run_dir)
    assert any(r["losses"][0] != r["losses"][1] for r in records if r["type"] == "train")
    assert all("dev_reward" in r for r in records if r["type"] == "eval")
    replay_run(run.run_dir, tmp_path / "replayed")
    replayed = load_file(str(tmp_path / "replayed" / "model.safetensors"))
    trained = load_file(str(run.run_dir / "model" / "model.safetensors"))
    assert all(torch.equal(replayed[k], trained[k]) for k in trained)


def test_sampled_completions_use_the_same_draws_in_both_passes(tokenizer):
    """At μ → 0 (lr 0, μ 1e-12) both passes of a step see the same weights in effect, so with
    the optimizer rewinding the random state between them they sample the same completions."""
    from adamezo.finetune.objective import build_objective
    from adamezo.finetune.tuning import prepare_tuning
    from adamezo.optim import MeZO
    from adamezo.tasks import get_task

    model = tiny_llama(tokenizer, dtype=torch.float64)
    tuned = prepare_tuning(model, "full")
    task = build_objective(tuned, tokenizer, get_task("sst2"), None)
    seen = []

    def record(prompts, completions, rows):
        seen.append(list(completions))
        return [float(len(c)) for c in completions]

    objective = TrainingObjective(task, "reward", reward=record, max_new_tokens=6, samples=3)
    optimizer = MeZO(tuned.trainable_parameters(), lr=0.0, perturbation_scale=1e-12)
    batch = sentiment_data().train[:4]
    optimizer.step(lambda: objective.loss(batch))
    assert len(seen) == 2 and len(seen[0]) == 12
    assert seen[0] == seen[1]
    assert len({tuple(seen[0][i : i + 3]) for i in range(0, 12, 3)}) > 1 or len(set(seen[0])) > 1


def test_reward_rows_are_the_own_data_columns(tmp_path):
    from adamezo.finetune.scores import example_row
    from adamezo.tasks.custom import load_own_data

    path = tmp_path / "reviews.csv"
    path.write_text("text,label,source\n" + "".join(f"good {i},great,web\n" for i in range(12)))
    data = load_own_data(
        path, template="{text} It was", label_column="label",
        verbalizers=["terrible", "great"], n_train=4, n_dev=4, n_test=4,
    )  # fmt: skip
    assert example_row(data.train[0])["source"] == "web"
    assert example_row(Example("p", ("a", "b"), 1))["label"] == 1


# ------------------------------------------------------------------ f1 / exact match / CLI


@pytest.mark.parametrize("objective", ["f1", "exact-match"])
def test_generation_objectives_score_greedy_answers(tmp_path, tokenizer, objective):
    run = train(
        config(tmp_path, objective=objective, max_new_tokens=3, **TINY), tokenizer, data=qa_data()
    )
    records = untimed_log(run.run_dir)
    for record in (r for r in records if r["type"] == "train"):
        assert all(-1.0 <= v <= 0.0 for v in record["losses"])
    key = "dev_f1" if objective == "f1" else "dev_exact_match"
    assert all(key in r for r in records if r["type"] == "eval")


def test_generation_objective_values_match_the_metric_of_the_answers(tokenizer):
    from adamezo.finetune.objective import build_objective
    from adamezo.finetune.tuning import prepare_tuning
    from adamezo.tasks import score_predictions
    from adamezo.tasks.custom import CustomTask

    model = tiny_llama(tokenizer)
    task_info = CustomTask("qa", "{q}", target_column="a")
    task = build_objective(prepare_tuning(model, "full"), tokenizer, task_info, None)
    batch = qa_data().train[:6]
    answers = task.generate(batch, 6, 3)
    metrics = score_predictions(task_info, batch, answers)
    for name, key in (("f1", "f1"), ("exact-match", "exact_match")):
        value = TrainingObjective(task, name, max_new_tokens=3).loss(batch)
        assert float(value) == pytest.approx(-metrics[key], abs=1e-12)


def test_cli_reward_from_a_file_on_own_data(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"review {i},{'great' if i % 2 else 'terrible'}\n"
                                              for i in range(30)))  # fmt: skip
    reward = tmp_path / "fmt.py"
    reward.write_text(
        "def allowed(prompts, completions, rows):\n"
        "    return [float(c.strip() in ('great', 'terrible')) for c in completions]\n"
    )
    run = tmp_path / "run"
    args = ["finetune", "--model", str(tiny_model_dir), "--train-file", str(data)]
    args += ["--template", "{text} It was", "--label-column", "label"]
    args += ["--verbalizers", "terrible,great", "--n-train", "12", "--n-dev", "4"]
    args += ["--n-test", "4", "--batch-size", "4", "--steps", "2", "--eval-every", "2"]
    args += ["--objective", "reward", "--reward", f"{reward}:allowed", "--max-new-tokens", "3"]
    args += ["--optimizer", "mezo", "--device", "cpu", "--no-progress", "--output-dir", str(run)]
    assert main(args) == 0, capsys.readouterr().err
    records = untimed_log(run)
    assert [r["type"] for r in records].count("train") == 2
    assert all(0.0 <= r["dev_reward"] <= 1.0 for r in records if r["type"] == "eval")


def test_cli_reports_a_bad_reward_spec_before_the_run_starts(tmp_path, tiny_model_dir, capsys):
    write_sst2(tmp_path / "data", n_train=20, n_validation=10)
    args = ["finetune", "--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    args += ["--n-train", "8", "--n-dev", "4", "--n-test", "0", "--batch-size", "4"]
    args += ["--objective", "reward", "--reward", "no_such_module_xyz:f"]
    args += ["--no-progress", "--output-dir", str(tmp_path / "run")]
    assert main(args) == 2
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_accuracy_run_under_torchrun_trains_like_one_process(tmp_path, tiny_model_dir):
    """Each process scores its shard; the scores are averaged weighted by shard size (3 + 2),
    so two processes take the steps of one, up to float64 rounding of the shard means."""
    write_sst2(tmp_path / "data", n_train=40, n_validation=10)
    common = ["finetune", "--model", str(tiny_model_dir), "--task", "sst2"]
    common += ["--data-dir", str(tmp_path / "data"), "--n-train", "16", "--n-dev", "8"]
    common += ["--n-test", "0", "--batch-size", "5", "--steps", "4", "--eval-every", "4"]
    common += ["--optimizer", "mezo", "--lr", "1e-2", "--dtype", "float64", "--no-progress"]
    common += ["--objective", "accuracy", "--no-keep-best"]
    run_alone_and_on_two_processes(common, tmp_path)
    trained_alike(tmp_path, tiny_model_dir / "model.safetensors")
    one_log, two_log = untimed_log(tmp_path / "one"), untimed_log(tmp_path / "two")
    for a, b in zip(one_log, two_log, strict=True):
        if a["type"] == "train":
            assert b["losses"] == pytest.approx(a["losses"], abs=1e-12)
