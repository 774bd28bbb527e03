"""What a report writes besides JSON: Markdown tables, line plots (one panel or several side by
side), and the generated block of a Markdown page (between two marker comments, the rest of the
page left as it is)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    fig, axes = _figure(path, 1, (6, 4))
    ax = axes[0]
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
    return _save(fig, path)


@dataclass(frozen=True)
class Curve:
    """One line of a panel plot; a colour and a line style of its own, so that the same series
    looks the same in every panel (``style``: a matplotlib line style, "-", "--" or ":")."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str | None = None
    style: str = "-"


@dataclass(frozen=True)
class Panel:
    """One panel: its title, its curves, and an optional labelled horizontal reference line."""

    title: str
    curves: Sequence[Curve]
    reference: tuple[str, float] | None = None


def panel_plot(
    path: Path,
    panels: Sequence[Panel],
    labels: tuple[str, str],
    title: str,
    y_range: tuple[float, float] | None = None,
) -> Path:
    """One PNG of ``panels`` side by side, sharing both axes; ``y_range`` clips the y axis (a curve
    that leaves it runs off the panel), so that a diverging run does not flatten the others."""
    fig, axes = _figure(path, len(panels), (4 * len(panels) + 1, 4.2))
    for ax, panel in zip(axes, panels, strict=True):
        for curve in panel.curves:
            xs, ys = [x for x, _ in curve.points], [y for _, y in curve.points]
            ax.plot(xs, ys, curve.style, marker=".", color=curve.color, label=curve.label)
        if panel.reference is not None:
            name, value = panel.reference
            ax.axhline(value, color="grey", linewidth=0.8, linestyle=":", label=name)
        if y_range is not None:
            ax.set_ylim(*y_range)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(labels[0])
        ax.legend(fontsize=6)
    axes[0].set_ylabel(labels[1])
    fig.suptitle(title)
    return _save(fig, path)


def _figure(path: Path, panels: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A matplotlib figure (headless) of ``panels`` axes in a row, sharing both axes, for a PNG
    at ``path`` (its folder created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, panels, figsize=size, sharex=True, sharey=True, squeeze=False)
    return fig, list(axes[0])


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

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
