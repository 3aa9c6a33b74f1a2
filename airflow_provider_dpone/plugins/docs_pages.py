"""The project's documentation as web pages: which file a URL path names, and the HTML page.

The served tree mirrors the repository: ``README.md`` and ``docs/**/*.md``. A page is served at
its own file path (``docs/cli.md``), so the relative links the Markdown files already use
(``state.md``, ``../README.md``, ``apis/cbr.md#resources``) work unchanged in a browser, and
every link stays relative: the pages work under any Airflow base URL. Headings get the
GitHub-style ids those links' anchors name. Nothing here does I/O but reading the doc files.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In a wheel the docs ride inside the package (pyproject: force-include); in a checkout or an
# editable install they are the repository's own README.md and docs/.
ROOT_CANDIDATES = (PACKAGE_DIR / "_docs", PACKAGE_DIR.parent)
README = "README.md"
TOP_PAGES = (README, "CHANGELOG.md")  # the repository's own pages served beside docs/
DOCS_DIR = "docs"
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def find_root(candidates: tuple[Path, ...] = ROOT_CANDIDATES) -> Path | None:
    """The first folder holding both ``README.md`` and ``docs/``; None when no docs ship."""
    for candidate in candidates:
        if (candidate / README).is_file() and (candidate / DOCS_DIR).is_dir():
            return candidate
    return None


def doc_file(root: Path, url_path: str) -> Path | None:
    """The Markdown file ``url_path`` names under ``root``, or None: only ``TOP_PAGES`` and
    ``docs/**/*.md``, each part a plain name (no ``..``, no hidden files, no other files)."""
    parts = PurePosixPath(url_path).parts
    if not parts or not all(_SAFE_PART.match(p) for p in parts) or not parts[-1].endswith(".md"):
        return None
    if not (len(parts) == 1 and parts[0] in TOP_PAGES) and parts[0] != DOCS_DIR:
        return None
    path = root.joinpath(*parts)
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except OSError:
        return None
    return path if inside and path.is_file() else None


def doc_paths(root: Path) -> list[str]:
    """Every served page's URL path: the README first, then ``docs/`` in name order, then the
    changelog (when the installation has it)."""
    docs = sorted(p.relative_to(root).as_posix() for p in (root / DOCS_DIR).rglob("*.md"))
    top = [p for p in TOP_PAGES[1:] if doc_file(root, p) is not None]
    return [README, *(d for d in docs if doc_file(root, d) is not None), *top]


def slug(text: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def title_of(markdown: str, fallback: str) -> str:
    """The first level-1 heading's text (Markdown marks dropped), else ``fallback``."""
    for line in markdown.splitlines():
        if line.startswith("# "):
            return re.sub(r"[`*_]", "", line[2:]).strip() or fallback
    return fallback


def summary_of(markdown: str) -> str:
    """The first sentence of the paragraph under the title, as plain text (for the index); empty
    when the title is followed by something else (a list, a table, code)."""
    paragraph: list[str] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if line.startswith("# ") and not paragraph:
            continue
        if not stripped:
            if paragraph:
                break
            continue
        if not paragraph and stripped.startswith(("#", "```", "|", "- ", "* ", ">", "<", "1.")):
            break
        paragraph.append(stripped)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(paragraph))
    text = re.sub(r"[`*]", "", text)
    match = re.match(r"(.+?[.:])(\s|$)", text)
    return (match.group(1) if match else text)[:240]


@cache
def _renderer() -> Any:
    from markdown_it import MarkdownIt  # markdown-it-py: installed with Airflow (via rich)

    # html off: a raw tag in a doc is shown as text, never run
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(markdown: str) -> tuple[str, set[str]]:
    """The body HTML and the ids its headings got (duplicates numbered as GitHub does)."""
    md = _renderer()
    tokens = md.parse(markdown)
    ids: set[str] = set()
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            base = slug("".join(c.content for c in tokens[i + 1].children or [] if c.content))
            anchor, n = base, 0
            while anchor in ids:
                n += 1
                anchor = f"{base}-{n}"
            ids.add(anchor)
            token.attrSet("id", anchor)
    return md.renderer.render(tokens, md.options, {}), ids


@dataclass(frozen=True)
class Page:
    title: str
    body_html: str


def page_html(page: Page, url_path: str, version: str) -> str:
    """The whole HTML document; its links to the index are relative to ``url_path``."""
    home = "../" * (len(PurePosixPath(url_path).parts) - 1) or "./"
    return _TEMPLATE.format(
        title=html.escape(page.title),
        home=html.escape(home),
        version=html.escape(version),
        body=page.body_html,
    )


def index_page(root: Path) -> Page:
    """Every page's title and first sentence, linked."""
    items = []
    for path in doc_paths(root):
        text = (root / path).read_text("utf-8")
        title = "Overview (README)" if path == README else title_of(text, path)
        items.append(
            f'<li><a href="{html.escape(path)}">{html.escape(title)}</a>'
            f"<br><span>{html.escape(summary_of(text))}</span></li>"
        )
    body = "<h1>airflow-provider-dpone documentation</h1>\n<ul class=index>\n" + "\n".join(items) + "\n</ul>"
    return Page("Documentation", body)


def doc_page(root: Path, url_path: str) -> Page | None:
    """The rendered page for ``url_path``, or None when it names no served doc."""
    path = doc_file(root, url_path)
    if path is None:
        return None
    text = path.read_text("utf-8")
    return Page(title_of(text, url_path), render_markdown(text)[0])


def not_found_page(url_path: str) -> Page:
    body = (
        f"<h1>Not in the documentation</h1><p><code>{html.escape(url_path)}</code> is not a page of "
        "the documentation served here (the README and <code>docs/</code>). Links to source files "
        "point into the project's repository.</p>"
    )
    return Page("Not found", body)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · dpone</title>
<style>
body {{ font: 15px/1.55 system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }}
header {{ padding: .6em 2em; border-bottom: 1px solid #d0d7de; background: #f6f8fa; }}
header a {{ font-weight: 600; color: #0969da; text-decoration: none; }}
main {{ max-width: 60em; padding: 1em 2em 4em; }}
code {{ font: .88em/1.45 ui-monospace, monospace; background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }}
pre {{ font: 13px/1.45 ui-monospace, monospace; background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 6px; }}
pre code {{ font-size: inherit; padding: 0; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #d0d7de; padding: .3em .6em; }}
ul.index li {{ margin: .5em 0; }} ul.index span {{ color: #59636e; }}
</style></head>
<body><header><a href="{home}">dpone documentation</a> <small>airflow-provider-dpone {version}</small></header>
<main>
{body}
</main></body></html>
"""
