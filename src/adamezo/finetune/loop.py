"""Fine-tune a causal LM on a task: the training loop, evaluation, early stopping and resume.

``run_finetune(FinetuneConfig(...))`` is what ``adamezo finetune`` runs. Every bad setting, an
unknown task or model, missing or malformed data and an occupied output directory raise before any
model is loaded. Each step evaluates the loss of one global batch through the optimizer's closure
(zeroth-order) or with backprop (``fo-adam``); every ``eval_every`` steps the dev loss is measured
and training stops after ``patience`` evaluations without improvement (docs/algorithms.md §8).
A checkpoint holds
the trainable weights, optimizer and scheduler state, the step (which fixes the data order) and all
random states, so a resumed run ends bitwise identical to an uninterrupted one.

Data parallelism (``torchrun … -m adamezo finetune``): every process runs this loop over the same
global batches, evaluates the closure on its own shard (:func:`adamezo.distributed.shard_batch`),
and the optimizer averages the losses over the processes, weighted by shard size, so every
process applies the same update. Only rank 0 writes files or shows progress; every process
evaluates the dev set in full (repeated work) and then takes rank 0's numbers, so that early
stopping and keep-best decide alike everywhere even where the hardware's sums differ in the last
bits. The others read rank 0's checkpoint to resume (a filesystem every machine shares) and get
the best weights from rank 0 by broadcast.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamezo import distributed
from adamezo.collectives import active_group, check_agreement
from adamezo.finetune.batches import BatchOrder
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.files import RunDirectoryError
from adamezo.finetune.micro import backward_in_pieces, batch_loss
from adamezo.finetune.models import check_device, check_model_available, load_model
from adamezo.finetune.objective import (
    EvalResult,
    TaskObjective,
    build_objective,
    load_data,
    metric_function,
)
from adamezo.finetune.optimizers import run_optimizer
from adamezo.finetune.plots import plot_losses
from adamezo.finetune.portable import make_portable, push_to_hub
from adamezo.finetune.records import LOG, EvalRecord, Record, TrainRecord, read_log
from adamezo.finetune.rundir import MODEL, PLOT, RunDirectory, set_rng_state
from adamezo.finetune.scores import (
    RewardFn,
    TrainingObjective,
    check_objective_kind,
    reward_function,
    with_reward_function,
)
from adamezo.finetune.settings import bar_stream
from adamezo.finetune.tracking import Tracking, start_tracking
from adamezo.finetune.tuning import check_tuning_offline, prepare_tuning
from adamezo.optim.registry import OptimizerEntry, optimizer_entry

__all__ = [
    "FinetuneResult",
    "build_objective",
    "load_data",
    "metric_function",
    "run_finetune",
]

Callback = Callable[[dict[str, Any]], None]

# A run stops with TrainingDivergedError once this many steps in a row (or all of a shorter run's)
# were skipped for a non-finite loss: it no longer learns, and would export untrained weights.
MAX_NONFINITE_STEPS = 10

# tqdm's default shows s/step once a step takes over a second; the rate stays in steps/s here.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


@dataclass
class FinetuneResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: torch.nn.Module
    """The trained model (the PEFT model for LoRA / prefix tuning)."""
    tokenizer: Any


class TrainingDivergedError(ValueError):
    """Every step of a long stretch returned a non-finite loss (the lr is far too high)."""


@dataclass
class _LoopState:
    step: int = 0
    best_dev_loss: float = math.inf
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    train_model_calls: int = 0
    eval_model_calls: int = 0
    first_order_passes: int = 0
    zero_shot: dict[str, Any] = field(default_factory=dict)
    best_eval: dict[str, Any] = field(default_factory=dict)


def run_finetune(
    config: FinetuneConfig,
    *,
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    data: Any = None,
    callbacks: Sequence[Callback] = (),
    objective: RewardFn | None = None,
) -> FinetuneResult:
    """Run (or resume) one fine-tuning run and return its final metrics and model.

    ``model``/``tokenizer`` replace loading ``config.model`` and ``data`` (a ``TaskData``)
    replaces loading the task's files; ``callbacks`` get every log record after it is written
    (and after the step's checkpoint, if any). ``objective``, a reward function
    ``(prompts, completions, rows) -> one number per completion``, trains on that reward
    (``config.objective`` becomes ``"reward"``; see :mod:`adamezo.finetune.scores`). Under an
    initialised default process group (``torchrun``) the run is data parallel: see the module
    docstring.
    """
    config = with_reward_function(config, objective)
    run = _Run.prepare(config, model, tokenizer, data, callbacks, objective)
    try:
        run.train()
        return run.finish()
    finally:
        if run.tracking is not None:  # closed by finish, or now if training raised
            run.tracking.finish()


class _Run:
    """One run in three parts: :meth:`prepare` (check everything, load, claim the directory,
    build the optimizer, resume), :meth:`train` (the step loop with its evaluations and
    checkpoints) and :meth:`finish` (best weights, final numbers, files)."""

    def __init__(self, config: FinetuneConfig, inputs: _Inputs, callbacks: Sequence[Callback]):
        self.config, self.inputs, self.callbacks = config, inputs, callbacks
        self.task, self.data, self.entry = inputs.task, inputs.data, inputs.entry
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0
        self.run_dir = RunDirectory(config.output_dir)
        self.say = _printer(config.progress and self.main)
        self.state = _LoopState()
        self.zo = self.entry.zeroth_order
        self.generation = self.task.kind == "generation"
        self.train_seconds = 0.0
        self.tracking: Tracking | None = None

    # ------------------------------------------------------------------------------ prepare

    @classmethod
    def prepare(
        cls,
        config: FinetuneConfig,
        model: torch.nn.Module | None,
        tokenizer: Any,
        data: Any,
        callbacks: Sequence[Callback],
        reward: RewardFn | None = None,
    ) -> _Run:
        config = config.resolved()
        run = cls(config, _check_inputs(config, model, tokenizer, data, reward), callbacks)
        # Every process checks (it only reads), so a refusal stops them all alike; rank 0 claims
        # the directory only after all have checked, lest a slow one find the claim and refuse.
        run.run_dir.check(config.run_identity(), resume=config.resume, overwrite=config.overwrite)
        check_device(config.device)
        if config.resume and run.world_size == 1 and run.run_dir.nothing_to_resume():
            raise RunDirectoryError(run.run_dir.nothing_to_resume())  # before the model loads
        distributed.barrier()
        for note in run.data.notes:
            run.say(f"data: {note}")
        run._load(model, tokenizer)
        if run.main:  # everything that can fail before training has passed: the directory is ours
            run.run_dir.claim(config.to_dict(), overwrite=config.overwrite)
            run.tracking = start_tracking(config.report_to, run.run_dir.path, config.to_dict())
            run.callbacks = (*callbacks, run.tracking) if run.tracking else callbacks
        distributed.barrier()  # the others read rank 0's checkpoint only after it is claimed
        run.optimizer = run_optimizer(config, run.tuned, run.inputs.norm_schedule)
        run.scheduler = _scheduler(run.optimizer, config.lr_schedule, config.steps)
        if config.resume:
            run._resume()
        return run

    def _load(self, model: torch.nn.Module | None, tokenizer: Any) -> None:
        config = self.config
        if model is None:
            self.say(f"loading model {config.model} ...")
            model, tokenizer = load_model(
                config.model,
                dtype=config.dtype,
                num_layers=config.num_layers,
                device=None if config.device_map else config.device,
                device_map=config.device_map,
            )
        if config.device_map is None:  # a dispatched model stays where accelerate put it
            model.to(config.device)
        # LoRA and prefix weights start random: seed them, whatever ran before in this process.
        torch.manual_seed(config.seed)
        self.tokenizer = tokenizer
        self.tuned = prepare_tuning(model, config.tuning, **config.tuning_settings())
        self.objective = build_objective(self.tuned, tokenizer, self.task, config.max_length)
        self.training = TrainingObjective(
            self.objective,
            config.objective,
            reward=self.inputs.reward,
            reward_name=config.reward,
            max_new_tokens=config.max_new_tokens,
            samples=config.samples,
        )
        _check_forward(self.objective, config.tuning, self.data.train[0])

    def _resume(self) -> None:
        run_dir = self.run_dir
        checkpoint = run_dir.load_checkpoint(dict(self.tuned.named_trainable()))
        if checkpoint is not None:
            trainable, saved = checkpoint
            self.tuned.load_trainable_state(trainable)
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.state = _LoopState(**saved["loop"])
            set_rng_state(saved["rng"])
        _check_resumed_alike(self.state.step if checkpoint is not None else -1)
        if checkpoint is None:  # on every process alike (they agreed above)
            raise RunDirectoryError(run_dir.nothing_to_resume() or "--resume: no checkpoint")
        if self.main:  # after every process has read the checkpoint
            run_dir.settle_checkpoint()
            run_dir.restore_best()
            run_dir.truncate_log(self.state.step)
        self.say(f"resuming {run_dir.path} from step {self.state.step}")

    # -------------------------------------------------------------------------------- train

    def train(self) -> None:
        config, data, state = self.config, self.data, self.state
        self.trainable_count = sum(p.numel() for p in self.tuned.trainable_parameters())
        self.say(
            f"{self.entry.label} on {config.task} ({len(data.train)} train / {len(data.dev)} dev "
            f"/ {len(data.test)} test), {config.tuning} tuning of {self.trainable_count:,} "
            f"parameters, lr {config.lr:g}, batch {config.batch_size}, up to {config.steps} steps"
        )
        self.started = time.perf_counter()
        self.tuned.forward_model.train(not self.zo)  # MeZO evaluates its passes in eval mode
        self.order = BatchOrder(len(data.train), config.batch_size, config.seed)
        if state.step == 0 and self.zo and self.main and not config.resume:
            # What adamezo.finetune.replay checks the base weights against.
            from adamezo.finetune.replay import start_record

            self._log(start_record(self.tuned, self.optimizer))
        self.nonfinite_in_row = 0
        if state.step == 0 and config.eval_at_start and not state.zero_shot:
            self._zero_shot()
        self.bar = _progress(config, self.main, state.step)
        try:
            while state.step < config.steps and not state.stopped_early:
                records = [self._step()]
                last = state.step == config.steps
                if state.step % config.eval_every == 0 or last:
                    records.append(self._evaluate_dev())
                if self.main and (
                    state.step % config.checkpoint_every == 0 or last or state.stopped_early
                ):
                    self._checkpoint()
                _notify(self.callbacks, records)
        except RuntimeError as error:
            if self.world_size > 1 and distributed.peer_lost(error):
                raise distributed.peer_lost_error(error, state.step + 1) from error
            raise
        finally:
            self.bar.close()
        self.train_seconds = time.perf_counter() - self.started

    def _evaluate(self, examples, label: str, with_metric: bool = True) -> EvalResult:
        result = self.objective.evaluate(
            examples,
            self.config.eval_batch_size,
            with_metric=with_metric,
            progress=self.config.progress and self.main,
            label=label,
        )
        result = self.training.annotate(result, examples, self.config.eval_batch_size)
        result = distributed.broadcast_object(result)  # rank 0's numbers decide everywhere
        self.state.eval_model_calls += result.forward_calls
        return result

    def _log(self, record: Record) -> None:
        if self.main:
            self.run_dir.append_log(record)

    def _zero_shot(self) -> None:
        state = self.state
        result = self._evaluate(self.data.dev, "zero-shot dev", with_metric=True)
        state.zero_shot = result.as_dict("dev")
        _track_best(state, result, 0, self.training.selection(result))
        if self.main and self.config.keep_best:
            self.run_dir.save_best(self.tuned.trainable_state())
        record = EvalRecord(0, dict(state.zero_shot), time=0.0)
        self._log(record)
        self.say(_describe_eval(record))
        _notify(self.callbacks, [record])

    def _step(self) -> TrainRecord:
        """One optimizer step on the next global batch; its log record."""
        wall, cpu = time.perf_counter(), time.process_time()
        state, optimizer, objective = self.state, self.optimizer, self.training
        global_batch = [self.data.train[i] for i in self.order.global_batch(state.step)]
        batch, size = distributed.shard_batch(global_batch, self.rank, self.world_size)
        calls = objective.task.runner.forward_calls
        skipped_before = optimizer.skipped_steps if self.zo else 0
        if self.zo:
            micro = self.config.micro_batch_size  # pieces of the batch inside the closure
            loss = float(
                optimizer.step(
                    lambda batch=batch: batch_loss(objective.loss, batch, micro), weight=size
                )
            )
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = backward_in_pieces(objective.loss, batch, self.config.micro_batch_size)
            optimizer.step()
            state.first_order_passes += 1
        state.train_model_calls += objective.task.runner.forward_calls - calls
        lr = optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        state.step += 1
        step_seconds = time.perf_counter() - wall
        step_cpu_seconds = time.process_time() - cpu
        record = TrainRecord(
            step=state.step,
            epoch=self.order.epoch_of(state.step),
            loss=loss,
            lr=lr,
            time=time.perf_counter() - self.started,
            step_seconds=step_seconds,
            step_cpu_seconds=step_cpu_seconds,
            **_optimizer_metrics(optimizer, self.zo, state),
        )
        self._log(record)
        if self.zo:
            self._check_divergence(record.skipped_steps > skipped_before)
        self.bar.update(1)
        self.bar.set_postfix(_postfix(record), refresh=False)
        return record

    def _check_divergence(self, skipped: bool) -> None:
        """Raise TrainingDivergedError once MAX_NONFINITE_STEPS steps in a row (or every step of
        a shorter run) were skipped for a non-finite loss."""
        self.nonfinite_in_row = self.nonfinite_in_row + 1 if skipped else 0
        if self.nonfinite_in_row >= min(MAX_NONFINITE_STEPS, self.config.steps):
            step, config = self.state.step, self.config
            raise TrainingDivergedError(
                f"steps {step - self.nonfinite_in_row + 1} to {step} were all skipped: the loss "
                f"was NaN or infinite at each (see skipped_steps in {self.run_dir / LOG}); the "
                f"run diverged: lower --lr (now {config.lr:g}) and start over with --overwrite"
            )

    def _evaluate_dev(self) -> EvalRecord:
        """The dev evaluation after a step, with keep-best and early stopping; its log record."""
        state = self.state
        label = f"dev @ step {state.step}"
        decode = not self.generation or self.training.decodes_on_dev
        result = self._evaluate(self.data.dev, label, with_metric=decode)
        improved = _track_best(state, result, state.step, self.training.selection(result))
        if improved and self.config.keep_best and self.main:
            self.run_dir.save_best(self.tuned.trainable_state())
        if state.evals_without_improvement >= self.config.patience:
            state.stopped_early = True
        record = EvalRecord(
            state.step,
            result.as_dict("dev"),
            time=time.perf_counter() - self.started,
            best_step=state.best_step,
            evals_without_improvement=state.evals_without_improvement,
        )
        self._log(record)
        self.bar.write(_describe_eval(record))
        return record

    def _checkpoint(self) -> None:
        self.run_dir.save_checkpoint(
            self.tuned.trainable_state(),
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "loop": _state_dict(self.state),
            },
        )

    # ------------------------------------------------------------------------------- finish

    def finish(self) -> FinetuneResult:
        config, state, data, run_dir = self.config, self.state, self.data, self.run_dir
        if config.keep_best and state.best_step is not None and state.best_step != state.step:
            # Rank 0 reads its file and sends the weights: the others need not see its disk.
            best = run_dir.load_best() if self.main else None
            if best is not None:
                self.tuned.load_trainable_state(best)
                best = self.training.metric or "loss"
                self.say(f"restored the weights of step {state.best_step} (best dev {best})")
            distributed.broadcast_parameters(self.tuned.trainable_parameters())
        final_dev = _final_dev(state, config, self.generation, self._evaluate, data)
        test = None
        if config.test and data.test:
            test = self._evaluate(data.test, "test").as_dict("test")
        metrics = self._metrics(final_dev, test)
        if self.main:
            run_dir.write_metrics(metrics)
            title = f"{self.entry.label} on {config.task}"
            plot_losses(run_dir.read_log(), run_dir / PLOT, title)
            if config.save_model:
                run_dir.export_model(self.tuned, self.tokenizer)
                make_portable(run_dir / MODEL, config, metrics, self.tuned.forward_model)
                if config.push_to_hub is not None:
                    url = push_to_hub(run_dir / MODEL, config.push_to_hub)
                    self.say(f"pushed {run_dir / MODEL} to {url}")
            if self.tracking is not None:
                self.tracking.finish(metrics)
        return FinetuneResult(run_dir.path, metrics, self.tuned.wrapped, self.tokenizer)

    def _metrics(self, final_dev: dict[str, Any], test: dict[str, Any] | None) -> dict[str, Any]:
        config, state = self.config, self.state
        metrics: dict[str, Any] = {
            "task": config.task,
            "model": config.model,
            "optimizer": config.optimizer,
            "tuning": config.tuning,
            "steps": state.step,
            "stopped_early": state.stopped_early,
            "best_step": state.best_step,
            "trainable_parameters": self.trainable_count,
            "train_forward_passes": _train_passes(self.optimizer, self.zo, state),
            "train_model_calls": state.train_model_calls,
            "eval_model_calls": state.eval_model_calls,
            "train_seconds": self.train_seconds,
            "zero_shot": state.zero_shot,
            "dev": final_dev,
            "data_source": self.data.source,
            "data_notes": list(self.data.notes),
        }
        if test is not None:
            metrics["test"] = test
        return metrics


@dataclass
class _Inputs:
    """What a run is checked to have before anything is loaded or written."""

    task: Any
    data: Any
    entry: OptimizerEntry
    norm_schedule: list[float] | None
    reward: RewardFn | None = None


def _check_inputs(
    config: FinetuneConfig,
    model: torch.nn.Module | None,
    tokenizer: Any,
    data: Any,
    reward: RewardFn | None = None,
) -> _Inputs:
    """Raise for any bad input (model name, tuning mode, data, batch size, optimizer under
    data parallelism) before a model is loaded or a file written; the task and its data."""
    world_size = distributed.world_size()
    if (model is None) != (tokenizer is None):
        raise ValueError("pass model and tokenizer together, or neither")
    if model is None:
        check_model_available(config.model)
        check_tuning_offline(config.model, config.tuning, **config.tuning_settings())
    if data is None:
        task, data = load_data(config)
    else:
        from adamezo.tasks import get_task

        task = data.task if getattr(data, "task", None) is not None else get_task(config.task)
    if len(data.train) < config.batch_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) exceeds the {len(data.train)} training examples"
        )
    if not data.dev:
        raise ValueError("the dev split is empty: early stopping and evaluation need it")
    norm_schedule = _norm_schedule(config.norm_schedule) if config.norm_schedule else None
    entry = optimizer_entry(config.optimizer)
    if world_size > 1 and not entry.zeroth_order:
        raise ValueError(
            f"optimizer {config.optimizer!r} needs gradients, which adamezo does not all-reduce; "
            "data-parallel runs (torchrun) take a zeroth-order optimizer"
        )
    if config.batch_size < world_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be at least the number of processes "
            f"({world_size}), so that every process gets a shard"
        )
    check_objective_kind(config.objective, task.kind, config.task)
    if config.objective != "loss" and not entry.zeroth_order:
        raise ValueError(
            f"objective {config.objective!r} has no gradient: it needs a zeroth-order "
            f"optimizer, not {config.optimizer!r}"
        )
    return _Inputs(task, data, entry, norm_schedule, reward_function(config, reward))


def _check_forward(objective: TaskObjective, mode: str, example: Any) -> None:
    """One forward pass on one example before the run directory is claimed, so that a model that
    cannot run with the tuning mode fails now, not after the run has started."""
    try:
        with torch.no_grad(), objective.runner.eval_mode():
            objective.loss([example])
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(
            f"tuning={mode!r}: {type(objective.runner.model).__name__} fails its first forward "
            f"pass ({type(error).__name__}: {error})"
        ) from error


def _check_resumed_alike(step: int) -> None:
    """Raise on every process unless all resumed from the same step (one tiny all-reduce)."""
    group = active_group(None)
    if group is not None:
        check_agreement(
            group,
            {"step resumed from": step},
            advice="every process reads rank 0's checkpoint, so --output-dir must be on a "
            "filesystem that every machine shares",
        )


def _track_best(state: _LoopState, result: EvalResult, step: int, value: float) -> bool:
    """Record ``result`` as the best if ``value`` (the dev loss, or minus the dev score of the
    run's objective) is the lowest yet; ``best_dev_loss`` keeps that value."""
    if value < state.best_dev_loss:
        state.best_dev_loss = value
        state.best_step = step
        state.evals_without_improvement = 0
        state.best_eval = result.as_dict("dev")
        return True
    state.evals_without_improvement += 1
    return False


def _final_dev(state, config, generation, evaluate, data) -> dict[str, Any]:
    # The best (or last) evaluation already measured these weights, except greedy decoding.
    if state.best_eval and not generation and (config.keep_best or state.best_step == state.step):
        return dict(state.best_eval)
    return evaluate(data.dev, "final dev").as_dict("dev")


def _optimizer_metrics(optimizer, zo: bool, state: _LoopState) -> dict[str, Any]:
    if not zo:
        return {"forward_passes": state.first_order_passes}
    metrics = optimizer.metrics()
    return {
        "projected_grad": metrics["projected_grad"],
        "update_norm": metrics["update_norm"],
        "skipped_steps": metrics["skipped_steps"],
        "forward_passes": metrics["forward_passes"],
        # Every pass's loss in full precision: with the lr they determine the update, so the
        # log alone rebuilds the weights (adamezo.finetune.replay).
        "losses": list(optimizer.last_losses),
    }


def _train_passes(optimizer, zo: bool, state: _LoopState) -> int:
    return optimizer.forward_passes if zo else state.first_order_passes


def _state_dict(state: _LoopState) -> dict[str, Any]:
    return dict(state.__dict__)


def _scheduler(optimizer, schedule: str, steps: int):
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def _norm_schedule(path: str) -> list[float]:
    """The update norms an AdaMeZO run logged, in step order."""
    file = Path(path)
    if file.is_dir():
        file = file / LOG
    if not file.is_file():
        raise ValueError(f"norm_schedule: no log file at {str(file)!r}")
    norms = []
    for record in read_log(file):
        if isinstance(record, TrainRecord) and record.update_norm is not None:
            norms.append(float(record.update_norm))
        elif isinstance(record, TrainRecord):
            raise ValueError(f"norm_schedule: step {record.step} of {file} has no update_norm")
    if not norms:
        raise ValueError(f"norm_schedule: {file} holds no train records with update_norm")
    return norms


def _notify(callbacks: Sequence[Callback], records: list[Record]) -> None:
    """Hand each record, as the JSON object log.jsonl holds, to every callback."""
    for record in records:
        for callback in callbacks:
            callback(record.to_json())


def _printer(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda _message: None
    from tqdm.auto import tqdm

    return lambda message: tqdm.write(message, file=sys.stderr)


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, *args, **kwargs) -> None: ...
    def write(self, message: str) -> None: ...
    def close(self) -> None: ...


def _progress(config: FinetuneConfig, main: bool, start: int):
    if not (config.progress and main):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(
        file=bar_stream(),  # a log file gets the messages, not the bar's redraws
        total=config.steps,
        initial=start,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        bar_format=BAR_FORMAT,
    )


def _postfix(record: TrainRecord) -> dict[str, str]:
    out = {"loss": f"{record.loss:.4f}"}
    if record.projected_grad is not None:
        out["pgrad"] = f"{record.projected_grad:+.3g}"
    out["fwd"] = str(record.forward_passes)
    return out


def _describe_eval(record: EvalRecord) -> str:
    parts = [f"dev loss {record.dev_loss:.4f}"]
    for key in ("dev_accuracy", "dev_f1", "dev_exact_match", "dev_reward"):
        if key in record.scores:
            parts.append(f"{key.removeprefix('dev_')} {record.scores[key]:.4f}")
    return f"step {record.step}: " + ", ".join(parts)
