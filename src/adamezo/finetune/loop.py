"""The training loop: ``run_finetune(FinetuneConfig(...))``, what ``adamezo finetune`` runs.

Every bad setting raises before a model loads (:mod:`adamezo.finetune.preflight`). Each step
evaluates the loss of one global batch through the optimizer's closure (zeroth-order) or with
backprop (``fo-adam``); every ``eval_every`` steps the dev loss is measured and training stops
after ``patience`` evaluations without improvement (docs/algorithms.md §8). A checkpoint holds the
trainable weights, optimizer and scheduler state, the step (which fixes the data order) and all
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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adamezo import distributed
from adamezo.finetune.batches import BatchOrder
from adamezo.finetune.builder import build_run, start_record
from adamezo.finetune.checkpoints import set_rng_state
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.files import RunDirectoryError
from adamezo.finetune.loop_state import LoopState, final_metrics, step_metrics, train_passes
from adamezo.finetune.micro import backward_in_pieces, batch_loss
from adamezo.finetune.models import check_device
from adamezo.finetune.objective import EvalResult
from adamezo.finetune.plots import plot_losses
from adamezo.finetune.portable import make_portable, push_to_hub
from adamezo.finetune.preflight import RunInputs, check_forward, check_inputs, check_resumed_alike
from adamezo.finetune.progress import describe_eval, postfix, printer, progress_bar
from adamezo.finetune.records import LOG, EvalRecord, Record, TrainRecord
from adamezo.finetune.rundir import MODEL, PLOT, RunDirectory
from adamezo.finetune.scores import RewardFn, training_objective, with_reward_function
from adamezo.finetune.tracking import Tracking, start_tracking

__all__ = ["FinetuneResult", "Training", "TrainingDivergedError", "run_finetune"]

Callback = Callable[[dict[str, Any]], None]

# A run stops with TrainingDivergedError once this many steps in a row (or all of a shorter run's)
# were skipped for a non-finite loss: it no longer learns, and would export untrained weights.
MAX_NONFINITE_STEPS = 10


@dataclass
class FinetuneResult:
    run_dir: Path
    metrics: dict[str, Any]
    model: torch.nn.Module
    """The trained model (the PEFT model for LoRA / prefix tuning)."""
    tokenizer: Any


class TrainingDivergedError(ValueError):
    """Every step of a long stretch returned a non-finite loss (the lr is far too high)."""


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
    (and after the step's checkpoint, if any). ``objective``, a reward function ``(prompts,
    completions, rows) -> one number each``, trains on that reward (:mod:`.scores`). Under an
    initialised default process group (``torchrun``) the run is data parallel (module docstring).
    """
    config = with_reward_function(config, objective)
    run = Training.prepare(config, model, tokenizer, data, callbacks, objective)
    try:
        run.run()
        return run.finish()
    finally:
        if run.tracking is not None:  # closed by finish, or now if training raised
            run.tracking.finish()


class Training:
    """One run: :meth:`prepare` (check everything, build, claim the directory, resume), then
    :meth:`run`, whose loop reads :meth:`step`, :meth:`evaluate` when due, :meth:`checkpoint`
    when due, until :meth:`stopped`; then :meth:`finish` (best weights, final numbers, files)."""

    def __init__(self, config: FinetuneConfig, inputs: RunInputs, callbacks: Sequence[Callback]):
        self.config, self.inputs, self.callbacks = config, inputs, callbacks
        self.task, self.data, self.entry = inputs.task, inputs.data, inputs.entry
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0
        self.run_dir = RunDirectory(config.output_dir)
        self.say = printer(config.progress and self.main)
        self.state = LoopState()
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
    ) -> Training:
        config = config.resolved()
        run = cls(config, check_inputs(config, model, tokenizer, data, reward), callbacks)
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
        if config.resume:
            run._resume()
        return run

    def _load(self, model: torch.nn.Module | None, tokenizer: Any) -> None:
        config = self.config
        if model is None:
            self.say(f"loading model {config.model} ...")
        parts = build_run(
            config,
            model=model,
            tokenizer=tokenizer,
            task=self.task,
            norm_schedule=self.inputs.norm_schedule,
        )
        self.tuned, self.tokenizer, self.objective = parts.tuned, parts.tokenizer, parts.objective
        self.optimizer, self.scheduler = parts.optimizer, parts.scheduler
        self.training = training_objective(config, self.objective, self.inputs.reward)
        check_forward(self.objective, config.tuning, self.data.train[0])

    def _resume(self) -> None:
        run_dir = self.run_dir
        checkpoint = run_dir.checkpoints.load(dict(self.tuned.named_trainable()))
        if checkpoint is not None:
            trainable, saved = checkpoint
            self.tuned.load_trainable_state(trainable)
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.state = LoopState(**saved["loop"])
            set_rng_state(saved["rng"])
        check_resumed_alike(self.state.step if checkpoint is not None else -1)
        if checkpoint is None:  # on every process alike (they agreed above)
            raise RunDirectoryError(run_dir.nothing_to_resume() or "--resume: no checkpoint")
        if self.main:  # after every process has read the checkpoint
            run_dir.checkpoints.settle()
            run_dir.checkpoints.restore_best()
            run_dir.truncate_log(self.state.step)
        self.say(f"resuming {run_dir.path} from step {self.state.step}")

    # ------------------------------------------------------------------------------ training

    def run(self) -> None:
        """Train until the step budget is spent or early stopping ends the run."""
        self._start()
        try:
            while not self.stopped():
                records = [self.step()]
                if self._due(self.config.eval_every):
                    records.append(self.evaluate())
                if self.main and (self._due(self.config.checkpoint_every) or self.stopped()):
                    self.checkpoint()
                _notify(self.callbacks, records)
        except RuntimeError as error:
            if self.world_size > 1 and distributed.peer_lost(error):
                raise distributed.peer_lost_error(error, self.state.step + 1) from error
            raise
        finally:
            self.bar.close()
        self.train_seconds = time.perf_counter() - self.started

    def stopped(self) -> bool:
        """Whether the step budget is spent or early stopping has ended the run."""
        return self.state.step >= self.config.steps or self.state.stopped_early

    def _due(self, every: int) -> bool:
        return self.state.step % every == 0 or self.state.step == self.config.steps

    def _start(self) -> None:
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
            self._log(start_record(self.tuned, self.optimizer))  # what a replay checks
        self.nonfinite_in_row = 0
        if state.step == 0 and config.eval_at_start and not state.zero_shot:
            self._zero_shot()
        shown = config.progress and self.main
        self.bar = progress_bar(config.steps, state.step, "train", enabled=shown)

    def _measure(self, examples, label: str, with_metric: bool = True) -> EvalResult:
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
        result = self._measure(self.data.dev, "zero-shot dev", with_metric=True)
        state.zero_shot = result.as_dict("dev")
        state.track_best(result, 0, self.training.selection(result))
        if self.main and self.config.keep_best:
            self.run_dir.checkpoints.save_best(self.tuned.trainable_state())
        record = EvalRecord(0, dict(state.zero_shot), time=0.0)
        self._log(record)
        self.say(describe_eval(record))
        _notify(self.callbacks, [record])

    def step(self) -> TrainRecord:
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
            **step_metrics(optimizer, self.zo, state),
        )
        self._log(record)
        if self.zo:
            self._check_divergence(record.skipped_steps > skipped_before)
        self.bar.update(1)
        self.bar.set_postfix(postfix(record), refresh=False)
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

    def evaluate(self) -> EvalRecord:
        """The dev evaluation after a step, with keep-best and early stopping; its log record."""
        state = self.state
        label = f"dev @ step {state.step}"
        decode = not self.generation or self.training.decodes_on_dev
        result = self._measure(self.data.dev, label, with_metric=decode)
        improved = state.track_best(result, state.step, self.training.selection(result))
        if improved and self.config.keep_best and self.main:
            self.run_dir.checkpoints.save_best(self.tuned.trainable_state())
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
        self.bar.write(describe_eval(record))
        return record

    def checkpoint(self) -> None:
        """Save weights, optimizer, scheduler, loop state and random states (rank 0 only)."""
        self.run_dir.checkpoints.save(
            self.tuned.trainable_state(),
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "loop": self.state.state_dict(),
            },
        )

    # ------------------------------------------------------------------------------- finish

    def finish(self) -> FinetuneResult:
        config, state, data, run_dir = self.config, self.state, self.data, self.run_dir
        if config.keep_best and state.best_step is not None and state.best_step != state.step:
            # Rank 0 reads its file and sends the weights: the others need not see its disk.
            best = run_dir.checkpoints.load_best() if self.main else None
            if best is not None:
                self.tuned.load_trainable_state(best)
                best = self.training.metric or "loss"
                self.say(f"restored the weights of step {state.best_step} (best dev {best})")
            distributed.broadcast_parameters(self.tuned.trainable_parameters())
        final_dev = self._final_dev()
        test = None
        if config.test and data.test:
            test = self._measure(data.test, "test").as_dict("test")
        passes = train_passes(self.optimizer, self.zo, state)
        counts = {
            "trainable": self.trainable_count,
            "passes": passes,
            "seconds": self.train_seconds,
        }
        metrics = final_metrics(config, state, data, counts, final_dev, test)
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

    def _final_dev(self) -> dict[str, Any]:
        state, config = self.state, self.config
        # The best (or last) evaluation already measured these weights, except greedy decoding.
        measured = config.keep_best or state.best_step == state.step
        if state.best_eval and not self.generation and measured:
            return dict(state.best_eval)
        return self._measure(self.data.dev, "final dev").as_dict("dev")


def _notify(callbacks: Sequence[Callback], records: list[Record]) -> None:
    """Hand each record, as the JSON object log.jsonl holds, to every callback."""
    for record in records:
        for callback in callbacks:
            callback(record.to_json())
