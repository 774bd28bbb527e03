"""What a report writes besides JSON: Markdown tables, line plots, and the generated block of a
Markdown page (between two marker comments, the rest of the page left as it is)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, its separator, then a line per row (each cell
    written with ``str``; a row as long as the header)."""
    lines = [_table_row(header), "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells, its header {len(header)}: {row}")
        lines.append(_table_row(row))
    return lines


def _table_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def line_plot(
    path: Path,
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    labels: tuple[str, str],
    title: str,
    log_x: bool = False,
    log_y: bool = False,
    band: tuple[str, float, float] | None = None,
) -> Path:
    """One PNG with a line per (label, [(x, y), ...]); ``band`` (label, low, high) shades a
    horizontal range, e.g. the seed-to-seed spread a one-seed difference must beat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in lines:
        ax.plot([x for x, _ in points], [y for _, y in points], marker=".", label=label)
    if band is not None:
        ax.axhspan(band[1], band[2], color="grey", alpha=0.2, label=band[0])
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_block(path: Path, lines: Sequence[str], begin: str, end: str) -> Path:
    """Replace what stands between the ``begin`` and ``end`` marker lines of the Markdown file at
    ``path`` with ``lines`` (a new page, or the markers added at its end, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else f"# Results\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
    return path
