"""The repository's documentation stands on its own: no pointer to files outside it."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _documented_files():
    yield REPO / "README.md"
    yield from (REPO / "docs").rglob("*.md")
    yield from (REPO / "src").rglob("*.py")


def test_readme_docs_and_sources_cite_nothing_outside_the_repository():
    outside = re.compile(r"\bSPEC\b|shared/")
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _documented_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, hits


def test_every_optimizer_has_its_update_in_algorithms_md():
    text = (REPO / "docs" / "algorithms.md").read_text()
    for name in ("MeZO", "AdaMeZO", "ZO-Adam", "MEAZO", "HiZOO", "MeZO-switch", "First-order Adam"):
        assert name in text, name
    assert "## 7. The noise" in text and "## 8. When a fine-tuning run stops" in text


def test_the_license_file_is_the_apache_license_pyproject_names():
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()
    assert (
        "Apache License\n                           Version 2.0" in (REPO / "LICENSE").read_text()
    )
