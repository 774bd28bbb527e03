"""Checks of run settings that need no model, data or run directory, so a typo fails at once."""

from __future__ import annotations

from typing import Any

from adamezo._checks import check_choice, check_int


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
