"""The docs plugin: registered with Airflow, served by its ASGI app, light to import."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client():
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from airflow_provider_dpone.plugins.docs import URL_PREFIX, DocsApp

    with TestClient(Starlette(routes=[Mount(URL_PREFIX, DocsApp())])) as c:
        yield c


def test_the_index_and_each_page_are_served(client) -> None:
    index = client.get("/dpone/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<a href="docs/cli.md">' in index.text and "airflow-provider-dpone " in index.text
    page = client.get("/dpone/docs/apis/cbr.md")
    assert page.status_code == 200 and '<a href="../../">dpone documentation</a>' in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    readme = client.get("/dpone/README.md")
    assert readme.status_code == 200 and 'href="docs/cli.md"' in readme.text


def test_the_docs_folder_redirects_to_the_index(client) -> None:
    answer = client.get("/dpone/docs/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "../"
    assert client.get("/dpone/docs/").url.path == "/dpone/"


@pytest.mark.parametrize("path", ["docs/missing.md", "pyproject.toml", "docs/..%2Fpyproject.toml", ".ci/run"])
def test_anything_else_is_a_404_page(client, path: str) -> None:
    answer = client.get(f"/dpone/{path}")
    assert answer.status_code == 404 and "Not in the documentation" in answer.text
    assert "[build-system]" not in answer.text


def test_only_reads(client) -> None:
    assert client.post("/dpone/README.md").status_code == 405


def test_airflow_finds_the_plugin_and_the_providers_page_link_opens_it() -> None:
    from airflow_provider_dpone.plugins.docs import DOCS_HREF, URL_PREFIX, DponeDocsPlugin

    dist = metadata.distribution("airflow-provider-dpone")
    (entry,) = [e for e in dist.entry_points if e.group == "airflow.plugins"]
    assert entry.load() is DponeDocsPlugin
    # Airflow links the provider's name on Admin > Providers to the "Documentation" project URL
    urls = dict(u.split(", ", 1) for u in dist.metadata.get_all("Project-URL") or [])
    assert urls["Documentation"] == DOCS_HREF == URL_PREFIX.lstrip("/") + "/"
    (view,) = DponeDocsPlugin.external_views
    assert view["href"] == DOCS_HREF and view["category"] == "docs"
    assert not view["href"].startswith("/")  # relative to the base URL: works behind a proxy prefix


def test_importing_the_plugin_stays_light() -> None:
    code = (
        "import sys, airflow_provider_dpone.plugins.docs;"
        "print(sorted(m for m in ('starlette', 'fastapi', 'markdown_it') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
