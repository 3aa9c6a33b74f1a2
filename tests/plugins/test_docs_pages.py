"""The docs as pages: which paths are served, the HTML, and every link in the docs resolving."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

from airflow_provider_dpone.plugins import docs_pages as dp

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "apis").mkdir(parents=True)
    (tmp_path / "README.md").write_text("# Project\n\nAn overview. More.\n")
    (tmp_path / "docs" / "a.md").write_text("# Alpha `doc`\n\nFirst sentence: then. Second.\n")
    (tmp_path / "docs" / "apis" / "b.md").write_text("# Beta\n\n- a list first\n")
    (tmp_path / "docs" / "notes.txt").write_text("not markdown")
    (tmp_path / "docs" / ".hidden.md").write_text("# hidden")
    (tmp_path / "secret.md").write_text("# outside docs/")
    return tmp_path


def test_the_checkout_is_a_docs_root() -> None:
    assert dp.find_root() == ROOT


def test_no_root_without_readme_and_docs(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x")
    assert dp.find_root((tmp_path,)) is None
    (tmp_path / "docs").mkdir()
    assert dp.find_root((tmp_path / "missing", tmp_path)) == tmp_path


@pytest.mark.parametrize(
    ("url_path", "served"),
    [
        ("README.md", True),
        ("docs/a.md", True),
        ("docs/apis/b.md", True),
        ("docs/notes.txt", False),  # only Markdown
        ("docs/.hidden.md", False),
        ("secret.md", False),  # only the README and the changelog outside docs/
        ("docs/../secret.md", False),
        ("../secret.md", False),
        ("/etc/passwd", False),
        ("docs//a.md", True),  # PurePosixPath folds the double slash: the same file
        ("docs/missing.md", False),
        ("", False),
        ("docs", False),
    ],
)
def test_only_the_readme_and_docs_markdown_are_served(site: Path, url_path: str, served: bool) -> None:
    assert (dp.doc_file(site, url_path) is not None) is served


def test_a_symlink_out_of_the_root_is_refused(site: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "x.md"
    outside.write_text("# outside")
    (site / "docs" / "link.md").symlink_to(outside)
    assert dp.doc_file(site, "docs/link.md") is None


def test_index_lists_every_page_with_title_and_first_sentence(site: Path) -> None:
    assert dp.doc_paths(site) == ["README.md", "docs/a.md", "docs/apis/b.md"]
    body = dp.index_page(site).body_html
    assert '<a href="docs/a.md">Alpha doc</a><br><span>First sentence:</span>' in body
    assert '<a href="docs/apis/b.md">Beta</a><br><span></span>' in body  # a list, not a paragraph
    assert '<a href="README.md">Overview (README)</a><br><span>An overview.</span>' in body


def test_headings_get_github_ids_and_raw_html_is_text() -> None:
    body, ids = dp.render_markdown(
        "# Why each phase is safe\n\n## `state_table` (v2)\n\n## Notes\n\n## Notes\n\n<script>x()</script>\n"
        "\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert ids == {"why-each-phase-is-safe", "state_table-v2", "notes", "notes-1"}
    assert '<h1 id="why-each-phase-is-safe">' in body and '<h2 id="notes-1">' in body
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "<table>" in body


@pytest.mark.parametrize(
    ("url_path", "home"),
    [("", "./"), ("README.md", "./"), ("docs/a.md", "../"), ("docs/apis/b.md", "../../")],
)
def test_the_header_links_home_relatively(url_path: str, home: str) -> None:
    html = dp.page_html(dp.Page("T <x>", "<p>b</p>"), url_path, "1.0")
    assert f'<a href="{home}">dpone documentation</a>' in html
    assert "<title>T &lt;x&gt; · dpone</title>" in html


def _links(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', html)


def test_every_relative_link_in_the_docs_names_a_served_page_and_heading() -> None:
    """The served pages link to each other with the files' own relative links: each one must
    land on a page this site serves, and an anchor on a heading id that page has."""
    pages = {p: dp.render_markdown((ROOT / p).read_text("utf-8")) for p in dp.doc_paths(ROOT)}
    broken = []
    for page, (body, _ids) in pages.items():
        for href in _links(body):
            if re.match(r"^[a-z]+:", href):
                continue  # an absolute URL (https:, mailto:)
            target, _, anchor = href.partition("#")
            if target and not target.endswith(".md"):
                continue  # a source file: it points into the repository, not the docs
            resolved = page
            if target:
                parts: list[str] = list(PurePosixPath(page).parent.parts)
                for part in PurePosixPath(target).parts:
                    parts = parts[:-1] if part == ".." else [*parts, part]
                resolved = "/".join(parts)
            if resolved not in pages:
                broken.append(f"{page}: {href} (no page {resolved})")
            elif anchor and anchor not in pages[resolved][1]:
                broken.append(f"{page}: {href} (no heading #{anchor} in {resolved})")
    assert not broken, "\n".join(broken)
