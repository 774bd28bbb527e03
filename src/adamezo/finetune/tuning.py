"""Which parameters a run trains: all of them, LoRA adapters, or a prefix (through ``peft``).

``prepare_tuning`` freezes what is not trained and returns a :class:`TunedModel`: the module to
run forward (the base transformers model, with LoRA layers injected in place), the PEFT prefix
module whose virtual tokens start every KV cache (prefix tuning only), the trainable tensors in a
fixed order (the optimizer sees only these), and how to save or load them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adamezo._checks import check_choice, check_int
from adamezo.finetune.filemodes import follow_umask
from adamezo.optim.registry import TUNING_MODES


@dataclass
class TunedModel:
    mode: str
    forward_model: nn.Module
    """The transformers model the scorer calls."""
    prefix: nn.Module | None
    """The PEFT model holding the prefix (prefix tuning), else None."""
    wrapped: nn.Module
    """What ``save_pretrained`` exports: the model (full) or the PEFT model (its adapter)."""

    def named_trainable(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, p) for n, p in self.wrapped.named_parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [p for _, p in self.named_trainable()]

    def param_groups(self, *, exclude_bias_norm: bool = False) -> list[Any]:
        """What the optimizer is built over: the trainable tensors, or with ``exclude_bias_norm``
        two param groups, the second (biases and normalisation weights) without weight decay,
        as the AdaMeZO paper's code and the Hugging Face Trainer group them."""
        if not exclude_bias_norm:
            return self.trainable_parameters()
        excluded = bias_and_norm_names(self.wrapped)
        named = self.named_trainable()
        decayed = [p for n, p in named if n not in excluded]
        exempt = [p for n, p in named if n in excluded]
        groups: list[dict[str, Any]] = [{"params": decayed}] if decayed else []
        return [*groups, {"params": exempt, "weight_decay": 0.0}] if exempt else groups

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """A copy of every trainable tensor, by name (what a checkpoint must hold)."""
        return {n: p.detach().clone().contiguous() for n, p in self.named_trainable()}

    @torch.no_grad()
    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        named = dict(self.named_trainable())
        if set(named) != set(state):
            missing, extra = sorted(set(named) - set(state)), sorted(set(state) - set(named))
            raise ValueError(
                f"checkpoint does not match the trainable parameters: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
        for name, tensor in state.items():
            named[name].copy_(tensor)

    def export(self, directory: Path, tokenizer: Any) -> None:
        """A Hugging Face model directory (full) or a PEFT adapter directory, with the tokenizer."""
        from transformers.utils import logging

        shown = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # a one-file "Writing model shards" bar is only noise
        try:
            self.wrapped.save_pretrained(directory)
            tokenizer.save_pretrained(directory)
            follow_umask(directory)  # safetensors writes its weights -rw-------
        finally:
            if shown:
                logging.enable_progress_bar()


def bias_and_norm_names(model: nn.Module) -> set[str]:
    """The names (as ``model.named_parameters`` gives them) of every bias and of every parameter
    of a normalisation layer (LayerNorm, RMSNorm, GroupNorm, batch norm, or any module whose
    class name contains "Norm", such as ``LlamaRMSNorm``)."""
    names = set()
    for prefix, module in model.named_modules():
        is_norm = "norm" in type(module).__name__.lower()
        for name, _ in module.named_parameters(recurse=False):
            if is_norm or name == "bias":
                names.add(f"{prefix}.{name}" if prefix else name)
    return names


def prepare_tuning(
    model: nn.Module,
    mode: str,
    *,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    lora_targets: list[str] | None = None,
    prefix_tokens: int = 5,
) -> TunedModel:
    """Freeze ``model`` except what ``mode`` trains; ValueError if the model cannot take it."""
    check_choice("tuning", mode, TUNING_MODES)
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return TunedModel("full", model, None, model)
    try:
        import peft
    except ImportError as error:  # pragma: no cover - peft is in the finetune extra
        raise ValueError(f"tuning={mode!r} needs the peft package: pip install peft") from error
    if mode == "lora":
        check_int("lora_rank", lora_rank, 1)
        config = peft.LoraConfig(
            r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=lora_targets
        )
    else:
        check_int("prefix_tokens", prefix_tokens, 1)
        config = peft.PrefixTuningConfig(
            task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=prefix_tokens
        )
    try:
        with _peft_quietly():
            wrapped = peft.get_peft_model(model, config)
    except (ValueError, TypeError, KeyError, NotImplementedError) as error:
        raise ValueError(
            f"tuning={mode!r} is not supported for {type(model).__name__} "
            f"(model_type {getattr(model.config, 'model_type', '?')!r}): {error}"
        ) from error
    if mode == "lora":
        return TunedModel("lora", wrapped.get_base_model(), None, wrapped)
    return TunedModel("prefix", wrapped.get_base_model(), wrapped, wrapped)


@contextlib.contextmanager
def _peft_quietly() -> Iterator[None]:
    with warnings.catch_warnings():
        # peft reads a transformers property that 5.x deprecates; nothing a user can act on.
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def check_tuning_offline(model_name: str, mode: str, **settings: Any) -> None:
    """Raise ValueError if the model in local directory ``model_name`` cannot take ``mode``,
    found on a weightless copy built from its config (a quick check before loading weights).
    Other names (built-in, hub ids) are checked by :func:`prepare_tuning` once loaded."""
    path = Path(model_name).expanduser()
    if mode == "full" or not (path / "config.json").is_file():
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    except (OSError, ValueError, KeyError):
        return  # loading the model reports what is wrong with it
    prepare_tuning(skeleton, mode, **settings)


def load_adapter(model: nn.Module, adapter_dir: str | Path) -> TunedModel:
    """The base ``model`` with a saved PEFT adapter (LoRA or prefix) applied, for evaluation."""
    import peft

    from adamezo.finetune.portable import check_adapter_depth

    path = Path(adapter_dir)
    if not (path / "adapter_config.json").is_file():
        raise ValueError(f"adapter directory {str(path)!r} has no adapter_config.json")
    check_adapter_depth(path, model)
    with _peft_quietly():
        wrapped = peft.PeftModel.from_pretrained(model, str(path))
    config = wrapped.peft_config[wrapped.active_adapter]
    if config.peft_type == peft.PeftType.PREFIX_TUNING:
        return TunedModel("prefix", wrapped.get_base_model(), wrapped, wrapped)
    if config.peft_type == peft.PeftType.LORA:
        return TunedModel("lora", wrapped.get_base_model(), None, wrapped)
    raise ValueError(f"adapter type {config.peft_type} is not supported (LoRA or prefix only)")
