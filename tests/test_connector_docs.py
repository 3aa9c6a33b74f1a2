"""Connector pages: the sections every page must have, and example manifests that validate.

Every ```yaml block of a connector page that is a whole manifest (a top-level ``pipeline:``
line) must pass ``parse_manifest``, so examples cannot drift from the contract.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.contracts.manifest import parse_manifest

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("postgres", "mssql", "clickhouse", "kafka", "bigquery", "rest")
HEADINGS = {
    "examples": re.compile(r"^## Example manifests$", re.M),
    "troubleshooting": re.compile(r"^## Troubleshooting$", re.M),
    "types": re.compile(r"^## (Type mapping|Types)\b", re.M),
}
# Sections these pages lack today; strict: the test fails once one is added, to drop it here.
MISSING: set[tuple[str, str]] = set()
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def _section_cases() -> list[object]:
    cases: list[object] = []
    for page in PAGES:
        for section in HEADINGS:
            marks = (
                [pytest.mark.xfail(strict=True, reason="not written yet")]
                if (page, section) in MISSING
                else []
            )
            cases.append(pytest.param(page, section, id=f"{page}-{section}", marks=marks))
    return cases


def _manifest_blocks() -> list[tuple[str, int, str]]:
    """(page, line, text) of every yaml block that is a whole manifest."""
    blocks: list[tuple[str, int, str]] = []
    for page in PAGES:
        text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
        for match in YAML_BLOCK.finditer(text):
            if re.search(r"^pipeline:", match.group(1), re.M):
                blocks.append((page, text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


BLOCKS = _manifest_blocks()


@pytest.mark.parametrize(("page", "section"), _section_cases())
def test_connector_page_has_section(page: str, section: str) -> None:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    assert HEADINGS[section].search(text), f"docs/{page}.md has no {HEADINGS[section].pattern!r} heading"


def test_the_pages_hold_example_manifests() -> None:
    assert {page for page, _, _ in BLOCKS} >= {"postgres", "mssql", "clickhouse", "bigquery"}


@pytest.mark.parametrize(("page", "line", "block"), BLOCKS, ids=[f"{p}.md:{n}" for p, n, _ in BLOCKS])
def test_example_manifest_validates(page: str, line: int, block: str) -> None:
    try:
        parse_manifest(yaml.safe_load(block), f"docs/{page}.md:{line}")
    except Exception as exc:  # any failure: name the page, the line and the block
        pytest.fail(f"docs/{page}.md, yaml block at line {line} does not validate: {exc}\n{block}")
