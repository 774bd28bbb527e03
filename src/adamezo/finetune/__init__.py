"""Fine-tune causal language models on the MeZO task suite with forward passes only.

>>> from adamezo.finetune import FinetuneConfig, run_finetune
>>> result = run_finetune(FinetuneConfig(model="smollm2-135m", task="sst2", tuning="lora",
...                                      steps=200, data_dir="/path/to/data"))  # doctest: +SKIP
>>> result.metrics["dev"], result.run_dir                                         # doctest: +SKIP

Names load lazily, so ``import adamezo.finetune`` does not import transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneConfig": "adamezo.finetune.config",
    "FinetuneResult": "adamezo.finetune.loop",
    "run_finetune": "adamezo.finetune.loop",
    "ResumedElsewhereWarning": "adamezo.finetune.machine",
    "evaluate_model": "adamezo.finetune.evaluate",
    "evaluate_run": "adamezo.finetune.evaluate",
    "load_model": "adamezo.finetune.models",
    "OPTIMIZERS": "adamezo.optim.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adamezo.finetune' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
