"""What a report writes: Markdown tables, and a page's generated block between its markers."""

import pytest

from adamezo.experiments.outputs import Curve, Panel, markdown_table, panel_plot, write_block


def test_a_markdown_table_has_a_header_a_separator_and_a_line_per_row():
    assert markdown_table(("task", "lr"), [("sst2", 1e-3), ("trec", "")]) == [
        "| task | lr |",
        "|---|---|",
        "| sst2 | 0.001 |",
        "| trec |  |",
    ]


def test_a_table_row_of_another_length_than_the_header_is_refused():
    with pytest.raises(ValueError, match="a table row has 1 cells, its header 2"):
        markdown_table(("task", "lr"), [("sst2",)])


def test_a_generated_block_is_replaced_and_the_rest_of_the_page_kept(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nprose\n<!-- b -->\nold\n<!-- e -->\nafter\n")
    write_block(page, ["new", "lines"], "<!-- b -->", "<!-- e -->")
    assert page.read_text() == "# Results\n\nprose\n<!-- b -->\nnew\nlines\n<!-- e -->\nafter\n"


def test_a_page_without_markers_gets_them_at_its_end(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# Results\n")
    write_block(page, ["x"], "<!-- b -->", "<!-- e -->")
    assert page.read_text() == "# Results\n\n<!-- b -->\nx\n<!-- e -->\n"


def test_a_panel_plot_writes_one_png_of_side_by_side_panels(tmp_path):
    curve = Curve("mezo", [(0, 1.0), (100, 0.6)], color="C0", style="--")
    panels = [Panel("seed 0", [curve], ("MeZO's best", 0.6)), Panel("seed 1", [curve])]
    path = panel_plot(tmp_path / "plots" / "p.png", panels, ("passes", "loss"), "t", (0.5, 1.1))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
