"""``adamezo toy``: run the optimizers on the 2-D test functions and write pictures and a table."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from adamezo.toy.experiment import DEFAULT_OPTIMIZERS, OPTIMIZERS
from adamezo.toy.functions import FUNCTIONS

OUTPUTS = ("contours", "surface", "loss")
"""The pictures written per function, as ``{function}_{kind}.png``."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _directions(text: str) -> int | None:
    """``fresh`` (a new direction every step) or N (N directions reused cyclically)."""
    return None if text == "fresh" else _positive_int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adamezo toy`` to the command line."""
    parser = subparsers.add_parser(
        "toy",
        help="compare the optimizers on 2-D test functions (pictures and a table)",
        description=(
            "Run first-order Adam and the zeroth-order optimizers on 2-D test functions from the "
            "same start, at the learning rates recorded in adamezo.toy.functions, and write per "
            "function a contour plot with the trajectories, a 3-D surface view and the loss "
            "against step, plus a Markdown table (results.md) and JSON (results.json)."
        ),
    )
    parser.add_argument(
        "--function",
        nargs="+",
        choices=sorted(FUNCTIONS),
        default=list(FUNCTIONS),
        metavar="NAME",
        help=f"functions to run (default: all of {', '.join(FUNCTIONS)})",
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        choices=[*OPTIMIZERS, "all"],
        default=list(DEFAULT_OPTIMIZERS),
        metavar="NAME",
        help=f"optimizers, or 'all' (default: {' '.join(DEFAULT_OPTIMIZERS)}; "
        f"available: {', '.join(OPTIMIZERS)})",
    )
    parser.add_argument(
        "--seeds", type=_positive_int, default=5, help="seeds 0 … N−1 per optimizer (default 5)"
    )
    parser.add_argument(
        "--directions",
        type=_directions,
        default=None,
        metavar="fresh|N",
        help="'fresh' draws a new direction every step (default); N reuses N directions "
        "cyclically, so fewer directions are explored than with fresh ones",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="steps per run (default: each function's own budget)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/toy"), help="output folder (default runs/toy)"
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # Imported here so that building the parser does not import matplotlib.
    try:
        from adamezo.toy import plots
    except ImportError as error:
        raise SystemExit(
            f"adamezo toy draws with matplotlib, which is missing ({error}); install it with "
            "pip install 'adamezo[toy]'"
        ) from error
    from adamezo.toy.experiment import run_all
    from adamezo.toy.report import markdown_table, summarise, write_json

    functions = list(dict.fromkeys(args.function))  # each once, in the order given
    optimizers = list(OPTIMIZERS) if "all" in args.optimizers else list(args.optimizers)
    optimizers = list(dict.fromkeys(optimizers))
    seeds = list(range(args.seeds))
    runs = run_all(functions, optimizers, seeds, steps=args.steps, direction_seeds=args.directions)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in functions:
        function = FUNCTIONS[name]
        own = [r for r in runs if r.function == name]
        for kind, draw in zip(
            OUTPUTS, (plots.plot_contours, plots.plot_surface, plots.plot_losses), strict=True
        ):
            written.append(draw(function, own, out / f"{name}_{kind}.png"))
    summaries = summarise(runs)
    directions = "fresh" if args.directions is None else str(args.directions)
    command = shlex.join(
        ["adamezo", "toy", "--function", *functions, "--optimizers", *optimizers]
        + ["--seeds", str(args.seeds), "--directions", directions]
        + ([] if args.steps is None else ["--steps", str(args.steps)])
        + ["--out", str(out)]
    )
    header = (
        "# Toy landscapes: results\n\n"
        f"Command: `{command}`. Seeds 0-{args.seeds - 1}; directions: {directions}; float64. "
        "Spreads are [min, max] over seeds; 'never' = not within the step budget.\n\n"
    )
    results = out / "results.md"
    results.write_text(header + markdown_table(summaries))
    written.append(results)
    written.append(
        write_json(
            summaries,
            out / "results.json",
            functions=functions,
            optimizers=optimizers,
            seeds=args.seeds,
            directions=directions,
            steps=args.steps,
        )
    )
    for path in written:
        print(path)
    return 0
