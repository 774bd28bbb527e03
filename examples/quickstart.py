"""Fine-tune SmolLM2-135M-Instruct with AdaMeZO on Rotten Tomatoes from Python.

The same run as `adamezo demo` (settings: adamezo.finetune.config.DEMO, numbers in README.md).
"""

from dataclasses import replace

from adamezo.finetune import run_finetune
from adamezo.finetune.config import DEMO

result = run_finetune(replace(DEMO, output_dir="runs/quickstart", overwrite=True))
before, after = result.metrics["zero_shot"], result.metrics["dev"]
print(f"dev accuracy {before['dev_accuracy']:.3f} -> {after['dev_accuracy']:.3f}")
print(f"dev loss     {before['dev_loss']:.4f} -> {after['dev_loss']:.4f}")
print(f"run files: {result.run_dir.resolve()}")
