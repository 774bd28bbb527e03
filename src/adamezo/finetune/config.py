"""The settings of one fine-tuning run, checked up front and resolved to concrete values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from adamezo._checks import check_betas, check_choice, check_float, check_int
from adamezo.finetune.models import DEVICE_MAPS, DTYPES
from adamezo.finetune.own_data import own_task_name, validate_own_data
from adamezo.finetune.portable import check_hub_repo
from adamezo.finetune.settings import check_objective_settings, validate_run_settings
from adamezo.finetune.tracking import check_report_to
from adamezo.optim.adamezo import PRESETS as ADAMEZO_PRESETS
from adamezo.optim.config import PERTURBATION_CHOICES
from adamezo.optim.registry import (
    DEFAULT_PERTURBATION_SCALE,
    TUNING_MODES,
    as_betas,
    optimizer_entry,
)

LR_SCHEDULES = ("constant", "linear", "cosine")

# Settings that change how a run is carried out or shown, not what it computes: a resumed run
# may differ from the original in these.
NOT_PART_OF_THE_RUN = (
    "output_dir",
    "resume",
    "overwrite",
    "progress",
    "device",
    "device_map",
    "report_to",
    "push_to_hub",
)

# Settings added after runs were written: the value an older config.json, which lacks them, meant.
ADDED_SETTINGS: dict[str, Any] = {
    "weight_decay_exclude_bias_norm": False,
    "perturbation": "auto",
    "train_file": None,
    "dev_file": None,
    "test_file": None,
    "template": None,
    "label_column": None,
    "verbalizers": None,
    "target_column": None,
    "task_name": None,
    "micro_batch_size": None,
    "report_to": "none",
    "push_to_hub": None,
    "mixed_precision": "no",
    "objective": "loss",
    "reward": None,
    "max_new_tokens": None,
    "samples": 1,
    "rank": None,
    "queries": None,
    "lazy_interval": None,
    "resample_interval": None,
    "momentum": None,
}

OPTIMIZER_OPTIONS = (
    "horizon",
    "preset",
    "warmup_steps",
    "rank",
    "queries",
    "lazy_interval",
    "resample_interval",
    "momentum",
)
"""The settings that are options of some optimizers only (None: the optimizer's default); the
optimizer's registry entry says which it takes, and a run that sets another is refused."""

COUNTS = ("rank", "queries", "lazy_interval", "resample_interval")
"""The optimizer options that are counts, each at least 1 (FZOO checks its own N ≥ 2)."""


@dataclass
class FinetuneConfig:
    """One fine-tuning run. ``None`` means "the default for this optimizer / tuning mode / task"
    and is replaced by a concrete value in :meth:`resolved` (and in the run's config.json)."""

    model: str = "smollm2-135m"
    """Built-in name (smollm2-135m), local Hugging Face model directory, or hub id."""
    task: str = "sst2"
    optimizer: str = "adamezo"
    tuning: str = "full"
    """full, lora or prefix."""
    output_dir: str | None = None
    """Default: runs/{task}-{optimizer}-{tuning}-seed{seed}."""
    data_dir: str | None = None
    steps: int = 1000
    """Step budget; early stopping may end the run sooner."""
    batch_size: int = 16
    lr: float | None = None
    lr_schedule: str = "constant"
    perturbation_scale: float | None = None
    """μ of the zeroth-order optimizers."""
    betas: tuple[float, float] | None = None
    horizon: int | None = None
    """K of AdaMeZO."""
    preset: str | None = None
    """AdaMeZO only: ``"reference"`` is the published code's update (unnormalised, gain 100,
    ε = 1e-5, K + 1 MeZO warm-up steps); see docs/algorithms.md."""
    warmup_steps: int | None = None
    """AdaMeZO only: the first this many updates are plain MeZO updates (default 0)."""
    weight_decay: float = 0.0
    weight_decay_exclude_bias_norm: bool = False
    """Decay no bias and no normalisation weight (two param groups), as the AdaMeZO paper's code
    and the Hugging Face Trainer do; off by default: every trainable tensor is decayed."""
    norm_schedule: str | None = None
    """mezo-switch only: the log.jsonl of an AdaMeZO run whose update norms it follows."""
    rank: int | None = None
    """LOZO, LOZO-M, ZO-Muon: the rank r of each weight matrix's direction."""
    queries: int | None = None
    """FZOO (N ≥ 2), ZO-Muon: the queries (directions) per step."""
    lazy_interval: int | None = None
    """LOZO, LOZO-M: ν, the steps between draws of each matrix's right factor V."""
    resample_interval: int | None = None
    """ZO-Muon: the steps between draws of each matrix's projection P."""
    momentum: float | None = None
    """LOZO, LOZO-M: β in [0, 1) of the momentum factor (LOZO 0, LOZO-M the paper's 0.9)."""
    eval_every: int = 100
    patience: int = 6
    """Stop after this many evaluations in a row without a lower dev loss
    (docs/algorithms.md §8)."""
    eval_at_start: bool = True
    keep_best: bool = True
    """Finish with the weights of the lowest dev loss."""
    n_train: int = 1000
    n_dev: int | None = None
    n_test: int = 1000
    eval_batch_size: int = 32
    max_length: int | None = None
    """Longest sequence in tokens; longer prompts lose tokens from their start."""
    dtype: str = "float32"
    mixed_precision: str = "no"
    """bf16 or fp16: the forward passes under ``torch.autocast`` in that dtype, the weights,
    perturbation and update in float32 (needs ``dtype="float32"``); see finetune/precision.py."""
    seed: int = 0
    num_layers: int | None = None
    """Keep only the first N transformer blocks (quick tests)."""
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list[str] | None = None
    prefix_tokens: int = 5
    checkpoint_every: int | None = None
    """Default: every evaluation."""
    kernel: str = "auto"
    perturbation: str = "auto"
    """exact, in_place or auto (exact for bfloat16/float16 weights): see ZerothOrderOptimizer."""
    device: str | None = None
    device_map: str | None = None
    """"auto": accelerate spreads the model over the GPUs (then the CPU); ``device`` is then
    where the inputs go (the first layer's device)."""
    """cpu, cuda, ...; default cuda when available."""
    save_model: bool = True
    test: bool = True
    """Evaluate on the test split at the end."""
    progress: bool = True
    resume: bool = False
    overwrite: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept in config.json."""
    # Your own data instead of a built-in task (adamezo.finetune.own_data).
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    template: str | None = None
    label_column: str | None = None
    verbalizers: list[str] | None = None
    target_column: str | None = None
    task_name: str | None = None
    micro_batch_size: int | None = None
    """Evaluate each batch this many examples at a time (same step, less memory)."""
    report_to: str = "none"
    """Also send the log records to tensorboard, wandb or mlflow (adamezo.finetune.tracking)."""
    push_to_hub: str | None = None
    """Upload the exported model / adapter (``model/``) to this hub repository at the end."""
    # What a step minimises (adamezo.finetune.scores, docs/objectives.md).
    objective: str = "loss"
    """loss, accuracy, f1, exact-match or reward."""
    reward: str | None = None
    """objective reward: the function, ``module:function`` or ``path/to/file.py:function``."""
    max_new_tokens: int | None = None
    """f1, exact-match, reward: tokens decoded per answer (default 50)."""
    samples: int = 1
    """reward: completions per prompt (1: greedy; more: sampled, rewards averaged)."""

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first bad setting; touches no file or model."""
        optimizer_entry(self.optimizer)  # a known name first: the later checks read its entry
        check_choice("tuning", self.tuning, TUNING_MODES)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("perturbation", self.perturbation, PERTURBATION_CHOICES)
        if self.device_map is not None:
            check_choice("device_map", self.device_map, DEVICE_MAPS)
        for name in ("steps", "batch_size", "eval_every", "patience", "eval_batch_size"):
            check_int(name, getattr(self, name), 1)
        for name in ("n_train", "n_test"):
            check_int(name, getattr(self, name), 0)
        check_int("seed", self.seed, 0)
        check_float("weight_decay", self.weight_decay, 0.0)
        if not isinstance(self.weight_decay_exclude_bias_norm, bool):
            raise TypeError(
                "weight_decay_exclude_bias_norm must be a bool, got "
                f"{type(self.weight_decay_exclude_bias_norm).__name__}"
            )
        check_int("lora_rank", self.lora_rank, 1)
        check_float("lora_alpha", self.lora_alpha, 0.0, min_open=True)
        check_int("prefix_tokens", self.prefix_tokens, 1)
        for name in ("n_dev", "warmup_steps"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 0)
        for name in ("num_layers", "checkpoint_every", "max_length", "horizon", *COUNTS):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0)
        if self.perturbation_scale is not None:
            check_float("perturbation_scale", self.perturbation_scale, 0.0, min_open=True)
        self._check_optimizer_options()
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: pick one")
        validate_own_data(self)
        validate_run_settings(self)
        check_report_to(self.report_to)
        check_objective_settings(self)
        check_hub_repo(self.push_to_hub)
        if self.push_to_hub is not None and not self.save_model:
            raise ValueError("push_to_hub uploads the exported model: it needs save_model=True")

    def _check_optimizer_options(self) -> None:
        if self.betas is not None:
            check_betas("betas", self.betas)
        if self.preset is not None:
            check_choice("preset", self.preset, ADAMEZO_PRESETS)
        if self.momentum is not None:
            check_float("momentum", self.momentum, 0.0, 1.0, max_open=True)
        optimizer_entry(self.optimizer).check_options(
            self.betas, norm_schedule=self.norm_schedule, **self.optimizer_options()
        )

    def optimizer_options(self) -> dict[str, Any]:
        """The settings of :data:`OPTIMIZER_OPTIONS` by name (None: the optimizer's default)."""
        return {name: getattr(self, name) for name in OPTIMIZER_OPTIONS}

    def resolved(self) -> FinetuneConfig:
        """A copy with every ``None`` default replaced by its concrete value."""
        self.validate()
        out = dataclasses.replace(self, betas=as_betas(self.betas))
        if out.train_file is not None:
            out.task = own_task_name(self)
        if out.lr is None:
            out.lr = optimizer_entry(self.optimizer).default_lr[self.tuning]
        if out.perturbation_scale is None:
            out.perturbation_scale = DEFAULT_PERTURBATION_SCALE[self.tuning]
        if out.output_dir is None:
            out.output_dir = f"runs/{out.task}-{self.optimizer}-{self.tuning}-seed{self.seed}"
        if out.checkpoint_every is None:
            out.checkpoint_every = self.eval_every
        if out.device is None:
            import torch

            out.device = "cuda" if torch.cuda.is_available() else "cpu"
        return out

    def tuning_settings(self) -> dict[str, Any]:
        """The keyword arguments of :func:`adamezo.finetune.tuning.prepare_tuning` besides the
        mode."""
        return {
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "lora_targets": self.lora_targets,
            "prefix_tokens": self.prefix_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["betas"] is not None:
            data["betas"] = list(data["betas"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FinetuneConfig settings: {unknown}")
        return cls(**{**data, "betas": as_betas(data.get("betas"))})

    def run_identity(self) -> dict[str, Any]:
        """The settings that define what the run computes (compared when resuming)."""
        data = self.to_dict()
        for name in NOT_PART_OF_THE_RUN:
            data.pop(name, None)
        return data


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
"""The README main job, what ``adamezo demo`` and examples/quickstart.py run: SmolLM2-135M,
AdaMeZO, LoRA on Rotten Tomatoes (numbers in README.md)."""
