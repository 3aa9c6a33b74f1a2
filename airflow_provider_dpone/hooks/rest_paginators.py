"""Paginators of the REST source: one small class per manifest ``pagination.type``.

A paginator is stateless: it gives the query of a series' first request, and from each page
the position of the next request (``{"url", "query"}``, the checkpoint a retry resumes at), or
None after the last page. The page loop and its guards (``DponeRestHook.pages``) are the same
for every type: they look a paginator up in :data:`PAGINATORS` by type, never by name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urljoin

from ..contracts.errors import BadInputError
from ..contracts.sources import PaginationSpec
from .rest_pages import dig

Position = dict[str, Any]  # {"url": ..., "query": {...}}: the request after a page

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True)
class Page:
    """One page as a paginator sees it: the answer (headers and request; its body dropped),
    the decoded body, its records, and the URL and query that asked for it."""

    response: Any
    payload: Any
    records: list[Any]
    url: str
    query: dict[str, Any]


class Paginator(ABC):
    """A pagination type: subclasses set ``type`` and :meth:`after` (and :meth:`first` when the
    first request carries paging parameters)."""

    type: ClassVar[str]

    def __init__(self, spec: PaginationSpec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}(page_size={self.spec.page_size}, max_pages={self.spec.max_pages})"

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        """The query of a series' first request (the endpoint's params, plus the paging ones)."""
        return dict(query)

    def next(self, page: Page) -> Position | None:
        """The request after ``page``, or None when it was the last: a ``has_more_path`` flag
        that is false ends any pagination, else :meth:`after` decides."""
        if self.spec.has_more_path and dig(page.payload, self.spec.has_more_path) is False:
            return None
        return self.after(page)

    @abstractmethod
    def after(self, page: Page) -> Position | None:
        """The request after ``page`` by this type's rule (None: the end)."""


class SinglePage(Paginator):
    """No pagination: one request per series."""

    type = "none"

    def after(self, page: Page) -> Position | None:
        return None


class OffsetPaginator(Paginator):
    """``limit_param`` = ``page_size`` and ``offset_param`` from 0 by ``page_size``; a short page
    is the last."""

    type = "offset"

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        return {**query, spec.limit_param: spec.page_size, spec.offset_param: 0}

    def after(self, page: Page) -> Position | None:
        spec = self.spec
        if len(page.records) < spec.page_size:
            return None
        step = {spec.offset_param: page.query[spec.offset_param] + spec.page_size}
        return {"url": page.url, "query": {**page.query, **step}}


class PageNumberPaginator(Paginator):
    """``limit_param`` = ``page_size`` and ``page_param`` from ``first_page`` by 1; a short page
    is the last."""

    type = "page"

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        return {**query, spec.limit_param: spec.page_size, spec.page_param: spec.first_page}

    def after(self, page: Page) -> Position | None:
        spec = self.spec
        if len(page.records) < spec.page_size:
            return None
        return {"url": page.url, "query": {**page.query, spec.page_param: page.query[spec.page_param] + 1}}


class CursorPaginator(Paginator):
    """The next cursor at ``cursor_path`` in the body, sent as ``cursor_param``; no cursor, or a
    page without records, is the end."""

    type = "cursor"

    def after(self, page: Page) -> Position | None:
        cursor = dig(page.payload, self.spec.cursor_path)
        if not cursor or not page.records:
            return None
        return {"url": page.url, "query": {**page.query, self.spec.cursor_param: cursor}}


class LinkHeaderPaginator(Paginator):
    """The ``Link: <url>; rel="next"`` header; the URL carries its own query."""

    type = "link_header"

    def after(self, page: Page) -> Position | None:
        match = _LINK_NEXT.search(page.response.headers.get("Link", ""))
        return (
            {"url": urljoin(str(page.response.request.url), match.group(1)), "query": {}} if match else None
        )


class NextUrlPaginator(Paginator):
    """A next URL at ``next_url_path`` in the body (relative to the page's URL); it carries its
    own query."""

    type = "next_url"

    def after(self, page: Page) -> Position | None:
        nxt = dig(page.payload, self.spec.next_url_path)
        return {"url": urljoin(str(page.response.request.url), nxt), "query": {}} if nxt else None


PAGINATORS: dict[str, type[Paginator]] = {
    cls.type: cls
    for cls in (
        SinglePage,
        OffsetPaginator,
        PageNumberPaginator,
        CursorPaginator,
        LinkHeaderPaginator,
        NextUrlPaginator,
    )
}


def paginator_for(spec: PaginationSpec) -> Paginator:
    """The paginator of ``spec.type``."""
    try:
        return PAGINATORS[spec.type](spec)
    except KeyError:
        raise BadInputError(f"pagination.type: '{spec.type}' is not one of {', '.join(PAGINATORS)}") from None
