"""The flags of ``adamezo finetune``: one per ``FinetuneConfig`` field, by help section."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from adamezo.finetune.config import LR_SCHEDULES, FinetuneConfig
from adamezo.finetune.models import BUILTIN_MODELS, DTYPES
from adamezo.finetune.own_data import parse_verbalizers
from adamezo.finetune.precision import MIXED_PRECISION
from adamezo.finetune.settings import OBJECTIVES, kernel_choices
from adamezo.finetune.tracking import REPORT_TO
from adamezo.optim.adamezo import PRESETS as ADAMEZO_PRESETS
from adamezo.optim.registry import DEFAULT_PERTURBATION_SCALE, OPTIMIZERS, TUNING_MODES, as_betas


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
        Flag(
            "mixed_precision",
            "bf16 or fp16: the forward passes under torch.autocast in that dtype, the weights, "
            "perturbation and update in float32 (needs --dtype float32; default no)",
            options={"choices": MIXED_PRECISION},
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
        Flag("lr", "learning rate (default: per optimizer and tuning, the table below)"),
        Flag(
            "lr_schedule",
            "learning-rate schedule over the step budget (default constant)",
            options={"choices": LR_SCHEDULES},
        ),
        Flag(
            "perturbation_scale",
            "zeroth-order perturbation scale μ (default full/lora/prefix: {mus})",
            ("--mu", "--perturbation-scale"),
            options={"metavar": "MU"},
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
        Flag(
            "rank",
            "LOZO, LOZO-M, ZO-Muon: rank r of each weight matrix's direction (default: the "
            "optimizer's, {rank})",
        ),
        Flag(
            "queries",
            "FZOO (N >= 2), ZO-Muon: directions queried per step (default: the optimizer's, "
            "{queries})",
        ),
        Flag(
            "lazy_interval",
            "LOZO, LOZO-M: steps between draws of each matrix's right factor V, the paper's nu "
            "(default: the optimizer's, {lazy_interval})",
        ),
        Flag(
            "resample_interval",
            "ZO-Muon: steps between draws of each matrix's subspace P (default: the "
            "optimizer's, {resample_interval})",
        ),
        Flag(
            "momentum",
            "LOZO, LOZO-M: momentum beta in [0, 1) of the low-rank factor (default: the "
            "optimizer's, {momentum})",
        ),
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
    mus = "/".join(f"{DEFAULT_PERTURBATION_SCALE[m]:g}" for m in TUNING_MODES)
    values = {"models": ", ".join(BUILTIN_MODELS), "mus": mus}
    for option in ("rank", "queries", "lazy_interval", "resample_interval", "momentum"):
        values[option] = ", ".join(
            f"{name} {entry.option_default(option):g}"
            for name, entry in OPTIMIZERS.items()
            if entry.accepts(option)
        )
    return values


def lr_table() -> str:
    """The default lr of every optimizer (rows) and tuning mode (columns), as ``--help`` ends."""
    width = max(len(name) for name in OPTIMIZERS)
    rows = [f"  {'optimizer':<{width}}" + "".join(f"{m:>9}" for m in TUNING_MODES)]
    for name, entry in OPTIMIZERS.items():
        rows.append(
            f"  {name:<{width}}" + "".join(f"{entry.default_lr[m]:>9g}" for m in TUNING_MODES)
        )
    return "default --lr by optimizer and --tuning:\n" + "\n".join(rows)


def _field_type(annotation: str) -> type | None:
    """The argparse ``type`` of a field annotated ``annotation`` (None: a plain string)."""
    for name, kind in (("int", int), ("float", float)):
        if annotation.startswith(name) or f"[{name}" in annotation:
            return kind
    return None


def add_run_arguments(p: argparse.ArgumentParser, exclude: Collection[str] = ()) -> None:
    """Add one flag per :class:`FinetuneConfig` field, grouped as :data:`RUN_FLAGS` lists them,
    but for the fields in ``exclude``."""
    defaults, values = FinetuneConfig(), _help_values()
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for title, flags in RUN_FLAGS.items():
        group = p.add_argument_group(title)
        for flag in (f for f in flags if f.field not in exclude):
            default = getattr(defaults, flag.field)
            options: dict[str, Any] = {"dest": flag.field, "default": default, **flag.options}
            kind = _field_type(str(fields[flag.field].type))
            if kind is not None and "action" not in options:
                options["type"] = kind
            names = flag.flags or (f"--{flag.field.replace('_', '-')}",)
            group.add_argument(*names, help=flag.help.format(default=default, **values), **options)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig that parsed ``adamezo finetune`` flags describe."""
    fields = FinetuneConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if "betas" in values:
        values["betas"] = as_betas(values["betas"])
    return FinetuneConfig(**values)
