"""The dpone documentation inside Airflow: an Airflow plugin (entry point ``airflow.plugins``).

The API server mounts a small ASGI app at ``/dpone`` that serves the project's README and
``docs/`` as HTML pages (``/dpone/`` is the index), the UI's Docs menu gets a "dpone
documentation" entry that shows them inside Airflow, and the package's ``Documentation`` URL
(``dpone/``, relative to Airflow's base URL) makes the provider's name on Admin > Providers
open them. Every link is relative, so this works under any base URL. The pages hold only the
project's own docs: no connection, variable or secret is read, so they need no login.

Importing this module stays light (every Airflow process loads plugins): Starlette and the
Markdown renderer are imported on the first request, in the API server only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib import metadata
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from . import docs_pages

URL_PREFIX = "/dpone"
DOCS_HREF = "dpone/"  # relative to Airflow's base URL (the UI's <base href>); pyproject's Documentation
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _version() -> str:
    try:
        return metadata.version("airflow-provider-dpone")
    except metadata.PackageNotFoundError:
        return "(not installed)"


class DocsApp:
    """An ASGI app serving the docs; Starlette is imported on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = build_app()
        await self._app(scope, receive, send)


def build_app() -> Any:
    """The Starlette app: ``GET /`` the index, ``GET /<README.md | docs/...md>`` a page."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    root = docs_pages.find_root()
    version = _version()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

    def page(request: Request) -> Response:
        path = request.path_params.get("path", "")
        if path in ("docs", "docs/"):  # the docs folder itself: its index is the site's
            return RedirectResponse("../" if path.endswith("/") else "./", status_code=307)
        if root is None:
            missing = docs_pages.Page(
                "No documentation installed",
                "<h1>No documentation installed</h1><p>This installation of airflow-provider-dpone "
                "carries no docs folder.</p>",
            )
            return HTMLResponse(docs_pages.page_html(missing, path, version), 404, headers)
        found = docs_pages.index_page(root) if path == "" else docs_pages.doc_page(root, path)
        if found is None:
            return HTMLResponse(
                docs_pages.page_html(docs_pages.not_found_page(path), path, version), 404, headers
            )
        return HTMLResponse(docs_pages.page_html(found, path, version), headers=headers)

    return Starlette(routes=[Route("/{path:path}", page, methods=["GET", "HEAD"])])


class DponeDocsPlugin(AirflowPlugin):
    """The docs app and its entry in the UI's Docs menu."""

    name = "dpone_docs"
    fastapi_apps = [{"app": DocsApp(), "url_prefix": URL_PREFIX, "name": "dpone documentation"}]
    external_views = [
        {
            "name": "dpone documentation",
            "href": DOCS_HREF,
            "url_route": "dpone-docs",  # shown inside Airflow's page, at <base>/plugin/dpone-docs
            "category": "docs",
            "destination": "nav",
        }
    ]
