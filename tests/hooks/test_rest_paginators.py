"""Each paginator class on its own, and the hook's page loop over them (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, SourceContractError
from airflow_provider_dpone.contracts.sources import PaginationSpec
from airflow_provider_dpone.hooks.rest import DponeRestHook
from airflow_provider_dpone.hooks.rest_paginators import (
    PAGINATORS,
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    SinglePage,
    paginator_for,
)

pytestmark = pytest.mark.unit

BASE = "https://api.example.test/v1/"


def spec(kind: str, **more: Any) -> PaginationSpec:
    return PaginationSpec.model_validate({"type": kind, **more})


def answer(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A page's answer as the loop hands it over: headers and request, the body dropped."""
    return httpx.Response(200, headers=headers or {}, request=httpx.Request("GET", url))


def test_the_registry_has_one_class_per_manifest_type() -> None:
    declared = get_args(PaginationSpec.model_fields["type"].annotation)
    assert set(PAGINATORS) == set(declared)
    for kind, cls in PAGINATORS.items():
        assert cls.type == kind and type(paginator_for(spec(kind, cursor_path="c", next_url_path="n"))) is cls


def test_an_unknown_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(BadInputError, match="'scroll' is not one of none, offset, page"):
        paginator_for(PaginationSpec.model_construct(type="scroll"))


def test_no_pagination_is_one_request() -> None:
    paginator = paginator_for(spec("none"))
    params = {"status": "open"}
    first = paginator.first(params)
    assert isinstance(paginator, SinglePage) and first == params and first is not params
    assert paginator.next(Page(answer(BASE), {"data": [1]}, [1], "items", first)) is None


def test_offset_steps_by_the_page_size_until_a_short_page() -> None:
    paginator = paginator_for(spec("offset", page_size=2, limit_param="n", offset_param="skip"))
    assert isinstance(paginator, OffsetPaginator)
    query = paginator.first({"q": "x"})
    assert query == {"q": "x", "n": 2, "skip": 0}
    nxt = paginator.next(Page(answer(BASE), {}, [1, 2], "items", query))
    assert nxt == {"url": "items", "query": {"q": "x", "n": 2, "skip": 2}}
    assert nxt is not None and paginator.next(Page(answer(BASE), {}, [3], "items", nxt["query"])) is None


def test_page_numbers_start_at_first_page_and_stop_at_a_short_page() -> None:
    paginator = paginator_for(spec("page", page_size=3, first_page=0, page_param="p", limit_param="per_page"))
    assert isinstance(paginator, PageNumberPaginator)
    query = paginator.first({})
    assert query == {"per_page": 3, "p": 0}
    nxt = paginator.next(Page(answer(BASE), {}, [1, 2, 3], "items", query))
    assert nxt == {"url": "items", "query": {"per_page": 3, "p": 1}}
    assert paginator.next(Page(answer(BASE), {}, [1, 2], "items", {"per_page": 3, "p": 1})) is None


def test_a_cursor_is_read_from_the_body_and_ends_without_one_or_without_records() -> None:
    paginator = paginator_for(spec("cursor", cursor_path="meta.next", cursor_param="after"))
    assert isinstance(paginator, CursorPaginator) and paginator.first({"a": 1}) == {"a": 1}
    page = Page(answer(BASE), {"meta": {"next": "c2"}}, [1], "items", {"a": 1})
    assert paginator.next(page) == {"url": "items", "query": {"a": 1, "after": "c2"}}
    assert paginator.next(Page(answer(BASE), {"meta": {"next": None}}, [1], "items", {})) is None
    assert paginator.next(Page(answer(BASE), {"meta": {"next": "c3"}}, [], "items", {})) is None


def test_a_link_header_next_is_resolved_against_the_page_url() -> None:
    paginator = paginator_for(spec("link_header"))
    assert isinstance(paginator, LinkHeaderPaginator)
    link = '<https://api.example.test/v1/items?page=1>; rel="prev", </v1/items?page=3>; rel="next"'
    page = Page(answer(BASE + "items?page=2", {"Link": link}), None, [1], "items", {"page": 2})
    assert paginator.next(page) == {"url": "https://api.example.test/v1/items?page=3", "query": {}}
    last = Page(answer(BASE + "items?page=3", {"Link": '</v1/items?page=2>; rel="prev"'}), None, [1], "x", {})
    assert paginator.next(last) is None
    assert paginator.next(Page(answer(BASE + "items"), None, [1], "x", {})) is None


def test_a_next_url_in_the_body_may_be_relative() -> None:
    paginator = paginator_for(spec("next_url", next_url_path="links.next"))
    assert isinstance(paginator, NextUrlPaginator)
    page = Page(answer(BASE + "items?page=1"), {"links": {"next": "items?page=2"}}, [1], "items", {})
    assert paginator.next(page) == {"url": BASE + "items?page=2", "query": {}}
    absolute = Page(answer(BASE), {"links": {"next": "https://cdn.example.test/p2"}}, [1], "items", {})
    assert paginator.next(absolute) == {"url": "https://cdn.example.test/p2", "query": {}}
    assert paginator.next(Page(answer(BASE), {"links": {"next": ""}}, [1], "items", {})) is None


@pytest.mark.parametrize("kind", ["offset", "page", "cursor", "link_header", "next_url"])
def test_a_false_more_flag_ends_every_type(kind: str) -> None:
    paginator = paginator_for(
        spec(kind, page_size=1, cursor_path="next", next_url_path="next", has_more_path="more")
    )
    query = paginator.first({})
    headers = {"Link": '</v1/items?page=2>; rel="next"'}
    body = {"next": "/v1/items?page=2", "more": True}
    assert paginator.next(Page(answer(BASE + "items", headers), body, [1], "items", query)) is not None
    ended = {**body, "more": False}
    assert paginator.next(Page(answer(BASE + "items", headers), ended, [1], "items", query)) is None


# --- the hook's page loop over each type -------------------------------------------------------

ITEMS = [{"id": i} for i in range(1, 8)]  # 7 records, pages of 3: 3 + 3 + 1


def serve(request: httpx.Request) -> httpx.Response:
    """Every pagination type of one list of ITEMS, pages of 3."""
    q, size = request.url.params, 3
    kind = request.url.path.rsplit("/", 1)[1]
    if kind == "offset":
        start = int(q["offset"])
    elif kind == "page":
        start = (int(q["page"]) - 1) * size
    else:
        start = int(q.get("from", 0))
    chunk, after = ITEMS[start : start + size], start + size
    more = after < len(ITEMS)
    follow = f"/v1/{kind}?from={after}"
    body: dict[str, Any] = {"data": chunk}
    headers = {}
    if kind == "cursor" and more:
        body["next_cursor"] = str(after)
    if kind == "next_url" and more:
        body["next"] = follow
    if kind == "link_header" and more:
        headers["Link"] = f'<{follow}>; rel="next"'
    return httpx.Response(200, json=body, headers=headers)


def mock_hook(monkeypatch: pytest.MonkeyPatch, handler: Any) -> DponeRestHook:
    conn = {"conn_type": "http", "host": "https://api.example.test/v1/", "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_MOCKAPI", json.dumps(conn))
    hook = DponeRestHook(conn_id="mockapi")
    hook._client = httpx.Client(base_url=hook.base_url(), transport=httpx.MockTransport(handler))
    return hook


@pytest.mark.parametrize(
    ("kind", "more"),
    [
        ("offset", {"page_size": 3}),
        ("page", {"page_size": 3}),
        ("cursor", {"cursor_path": "next_cursor", "cursor_param": "from"}),
        ("link_header", {}),
        ("next_url", {"next_url_path": "next"}),
    ],
)
def test_the_page_loop_reads_every_record_once_with_each_type(monkeypatch, kind: str, more: dict) -> None:
    hook = mock_hook(monkeypatch, serve)
    details: dict[str, Any] = {}
    pages = list(hook.pages(f"/{kind}", {}, spec(kind, **more), "data", details=details))
    assert [r["id"] for records, _ in pages for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert details["pages"] == 3 and pages[-1][1] is None
    position = pages[0][1]
    assert position is not None  # a retry resumes here: the loop continues from the position
    resumed = list(hook.pages(f"/{kind}", {}, spec(kind, **more), "data", start=position))
    assert [r["id"] for records, _ in resumed for r in records] == [4, 5, 6, 7]


def test_the_loop_guard_names_the_type_that_does_not_advance(monkeypatch) -> None:
    def stuck(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": 1}], "next": "/v1/stuck?from=3"})

    hook = mock_hook(monkeypatch, stuck)
    with pytest.raises(SourceContractError, match="the API's next_url pagination does not advance"):
        list(hook.pages("/stuck", {}, spec("next_url", next_url_path="next"), "data"))
