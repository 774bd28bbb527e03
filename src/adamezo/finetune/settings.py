"""Checks of run settings that need no model, data or run directory, so a typo fails at once."""

from __future__ import annotations

from typing import Any

from adamezo._checks import check_choice, check_int

OBJECTIVES = ("loss", "accuracy", "f1", "exact-match", "reward")

# The task kinds each objective can score (adamezo.finetune.scores).
OBJECTIVE_KINDS = {
    "loss": ("classification", "multiple_choice", "generation"),
    "accuracy": ("classification", "multiple_choice"),
    "f1": ("generation",),
    "exact-match": ("generation",),
    "reward": ("classification", "multiple_choice", "generation"),
}

DEFAULT_MAX_NEW_TOKENS = 50


def kernel_choices() -> list[str]:
    """What ``kernel`` accepts: ``auto`` and every registered kernel."""
    from adamezo.kernels import registered_kernels

    return ["auto", *registered_kernels()]


def validate_run_settings(config: Any) -> None:
    """Raise ValueError naming the setting for a bad kernel, device or mixed precision."""
    from adamezo.finetune.precision import check_mixed_precision
    from adamezo.optim.registry import optimizer_entry

    check_choice("kernel", config.kernel, kernel_choices())
    if config.micro_batch_size is not None:
        check_int("micro_batch_size", config.micro_batch_size, 1)
    if config.device is not None:
        from adamezo.finetune.models import check_device

        check_device(config.device)
    check_mixed_precision(
        config.mixed_precision,
        dtype=config.dtype,
        device=config.device,
        zeroth_order=optimizer_entry(config.optimizer).zeroth_order,
    )


def check_objective_settings(config: Any) -> None:
    """Raise ValueError/TypeError naming the setting unless objective, reward, max_new_tokens
    and samples fit together (touches no file; a reward spec is imported at load time)."""
    check_choice("objective", config.objective, OBJECTIVES)
    if config.max_new_tokens is not None:
        check_int("max_new_tokens", config.max_new_tokens, 1)
    check_int("samples", config.samples, 1)
    if config.objective == "reward":
        if config.reward is None:
            raise ValueError(
                "objective 'reward' needs a reward function: --reward module:function "
                "(or path/to/file.py:function), or run_finetune(config, objective=function)"
            )
        if not isinstance(config.reward, str):
            raise TypeError(
                f"reward must be an import string 'module:function', got "
                f"{type(config.reward).__name__} (pass a function as run_finetune(objective=...))"
            )
    elif config.reward is not None:
        raise ValueError(f"reward: goes with objective 'reward', not {config.objective!r}")
    if config.samples != 1 and config.objective != "reward":
        raise ValueError(f"samples: goes with objective 'reward', not {config.objective!r}")
    if config.max_new_tokens is not None and config.objective in ("loss", "accuracy"):
        raise ValueError(
            "max_new_tokens: decoding goes with objective f1, exact-match or reward, "
            f"not {config.objective!r}"
        )
