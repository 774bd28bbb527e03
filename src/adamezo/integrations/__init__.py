"""Integrations of the zeroth-order optimizers with other training frameworks.

``ZOTrainer`` (a ``transformers.Trainer``) loads lazily, so importing this package does not
import transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ZOTrainer"]


def __getattr__(name: str) -> Any:
    if name == "ZOTrainer":
        from adamezo.integrations.hf_trainer import ZOTrainer

        return ZOTrainer
    raise AttributeError(f"module 'adamezo.integrations' has no attribute {name!r}")
