"""The ``adamezo`` command line: one sub-command per application module.

Each application module listed in ``COMMAND_MODULES`` defines ``register(subparsers)``, which adds
its sub-commands and sets ``func`` (the function that runs with the parsed arguments) on each.
Modules are imported only when the command line is built, so ``import adamezo`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from adamezo import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "adamezo.tasks.cli",
    "adamezo.finetune.cli",
    "adamezo.finetune.sweep_cli",
    "adamezo.toy.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adamezo",
        description="Fine-tune language models with forward passes only (AdaMeZO and baselines).",
    )
    parser.add_argument("--version", action="version", version=f"adamezo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
