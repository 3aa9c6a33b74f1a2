"""Yandex Webmaster API v4 (https://yandex.ru/dev/webmaster/doc/en/).

Auth: an OAuth token (scope ``webmaster:hostinfo``, ``webmaster:verify`` not needed) in the
connection's password, sent as ``Authorization: OAuth <token>``. Every call is under
``/v4/user/{user_id}``: ``options.user_id``, or read once from ``GET /v4/user``. Per-host
resources fan out over the user's hosts. Dated resources always send ``date_from``/``date_to``
as ``YYYY-MM-DD`` (default: the 14 days to yesterday, Moscow time). Errors are JSON with an
``error_code`` (``INVALID_OAUTH_TOKEN`` 401, ``ACCESS_FORBIDDEN``/``HOST_NOT_VERIFIED`` 403,
``QUOTA_EXCEEDED`` 429). Every request of a load, the user and hosts lookups included, waits
for the load's pace (``source.requests_per_second``, else the connection's extra, else 2 a second).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.sources import ResourceSource, SourceSpec, source_of
from ..hooks.rest_pages import Read, require
from .base import ApiHook, ApiSource, Resource, ResourceRead, resource_read

INDICATORS = ("TOTAL_SHOWS", "TOTAL_CLICKS", "AVG_SHOW_POSITION", "AVG_CLICK_POSITION")
HOSTS = {"path": "user/{user_id}/hosts", "record_selector": "hosts", "field": "host_id", "as": "host_id"}
MSK = dt.timezone(dt.timedelta(hours=3))
WINDOW_DAYS = 14  # the default window (upstream's lookback), ending yesterday in Moscow time
DATED = {
    "popular_queries",
    "indexing_history",
    "in_search_history",
    "search_events_history",
    "search_query_history",
}
DATE_FILTER = {"param": "date_from", "field": "date", "format": "date"}
HISTORY_FIELDS = {"indicator": "string", "date": "timestamptz", "value": "int64"}


def dates(options: dict[str, Any], since: str | None) -> dict[str, str]:
    """``date_from``/``date_to`` as the API wants them (``YYYY-MM-DD``): from the watermark,
    ``options.date_from`` or 14 days back, to ``options.date_to`` or yesterday (Moscow)."""
    yesterday = dt.datetime.now(MSK).date() - dt.timedelta(days=1)
    end = dt.date.fromisoformat(str(options.get("date_to") or yesterday)[:10])
    start = since or options.get("date_from") or end - dt.timedelta(days=WINDOW_DAYS - 1)
    return {"date_from": str(start)[:10], "date_to": end.isoformat()}


def query_records(body: Any) -> list[dict[str, Any]]:
    out = []
    for q in require(body, "queries") or []:  # absent: SourceContractError, not 0 rows
        ind = q.get("indicators") or {}
        out.append(
            {
                "query_id": q.get("query_id"),
                "query_text": q.get("query_text"),
                "date_from": body.get("date_from"),
                "date_to": body.get("date_to"),
                **{name.lower(): ind.get(name) for name in INDICATORS},
            }
        )
    return out


def history_records(body: Any) -> list[dict[str, Any]]:
    return [
        {"indicator": name, "date": point.get("date"), "value": point.get("value")}
        for name, points in sorted((require(body, "indicators") or {}).items())
        for point in points or []
    ]


def in_search_records(body: Any) -> list[dict[str, Any]]:
    return [{"date": p.get("date"), "value": p.get("value")} for p in require(body, "history") or []]


def query_history_records(body: Any) -> list[dict[str, Any]]:
    return [
        {"query_id": body.get("query_id"), "query_text": body.get("query_text"), **row}
        for row in history_records(body)
    ]


def analytics_records(body: Any) -> list[dict[str, Any]]:
    return [
        {
            "query_text": (item.get("text_indicator") or {}).get("value"),
            "date": stat.get("date"),
            "field": stat.get("field"),
            "value": stat.get("value"),
        }
        for item in require(body, "text_indicator_to_statistics") or []
        for stat in item.get("statistics") or []
    ]


def query_history_targets(
    options: dict[str, Any], filters: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """One history series per id of ``options.query_ids`` on ``options.host_id``."""
    ids = options.get("query_ids") or []
    if not ids or not options.get("host_id"):
        raise BadInputError("source.options: search_query_history needs host_id and query_ids (a list)")
    base = f"user/{options['user_id']}/hosts/{options['host_id']}/search-queries"
    params = {
        "query_indicator": list(INDICATORS),
        "device_type_indicator": options.get("device_type_indicator", "ALL"),
    }
    return [(f"{base}/{query_id}/history", params) for query_id in ids]


def analytics_body(options: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
    body = {
        "offset": 0,
        "limit": int(options.get("limit", 500)),
        "device_type_indicator": options.get("device_type_indicator", "ALL"),
        "search_location": "WEB_LOCATION",
        "text_indicator": "QUERY",
        "region_ids": [int(r) for r in options.get("region_ids") or []],
    }
    return body | ({"order_by": options["order_by"]} if options.get("order_by") else {})


def summary_records(body: Any) -> list[dict[str, Any]]:
    return [
        {
            "sqi": body.get("sqi"),
            "searchable_pages_count": body.get("searchable_pages_count"),
            "excluded_pages_count": body.get("excluded_pages_count"),
            "site_problems": body.get("site_problems"),
        }
    ]


YANDEX_WEBMASTER = ApiSource(
    name="yandex_webmaster",
    title="Yandex Webmaster",
    base_url="https://api.webmaster.yandex.net/v4/",
    docs_url="https://yandex.ru/dev/webmaster/doc/en/",
    auth="OAuth token in the connection password (Authorization: OAuth <token>); options.user_id from GET /v4/user",
    extra={
        "auth": "api_key",
        "api_key_header": "Authorization",
        "api_key_prefix": "OAuth ",
        "requests_per_second": 2.0,
    },
    rate_limits="daily request quotas per user and method (see the API's quota section); over quota the "
    "API answers 429 QUOTA_EXCEEDED, retried with backoff, then the task fails as transient.",
    resources={
        "hosts": Resource(
            name="hosts",
            path="user/{user_id}/hosts",
            description="The user's sites (GET /v4/user/{user_id}/hosts)",
            fields={
                "host_id": "string",
                "ascii_host_url": "string",
                "unicode_host_url": "string",
                "verified": "boolean",
                "main_mirror": "json",
            },
            primary_key=("host_id",),
            record_selector="hosts",
        ),
        "summary": Resource(
            name="summary",
            path="user/{user_id}/hosts/{host_id}/summary",
            description="Site quality index and page counts, per host (GET .../hosts/{host_id}/summary)",
            fields={
                "sqi": "int64",
                "searchable_pages_count": "int64",
                "excluded_pages_count": "int64",
                "site_problems": "json",
            },
            primary_key=("host_id",),
            records=summary_records,
            parent=HOSTS,
        ),
        "popular_queries": Resource(
            name="popular_queries",
            path="user/{user_id}/hosts/{host_id}/search-queries/popular",
            description="Top search queries with shows, clicks and positions over a date range, per host",
            fields={
                "query_id": "string",
                "query_text": "string",
                "date_from": "date",
                "date_to": "date",
                "total_shows": "float64",
                "total_clicks": "float64",
                "avg_show_position": "float64",
                "avg_click_position": "float64",
            },
            primary_key=("host_id", "query_id", "date_from", "date_to"),
            params={"order_by": "TOTAL_SHOWS", "query_indicator": list(INDICATORS)},
            pagination={"type": "offset", "page_size": 500},
            records=query_records,
            parent=HOSTS,
        ),
        "indexing_history": Resource(
            name="indexing_history",
            path="user/{user_id}/hosts/{host_id}/indexing/history",
            description="Pages downloaded by the robot per HTTP status class and day, per host",
            fields=HISTORY_FIELDS,
            primary_key=("host_id", "indicator", "date"),
            server_filter=DATE_FILTER,
            records=history_records,
            parent=HOSTS,
        ),
        "in_search_history": Resource(
            name="in_search_history",
            path="user/{user_id}/hosts/{host_id}/search-urls/in-search/history",
            description="Pages in search per day, per host",
            fields={"date": "timestamptz", "value": "int64"},
            primary_key=("host_id", "date"),
            server_filter=DATE_FILTER,
            records=in_search_records,
            parent=HOSTS,
        ),
        "search_events_history": Resource(
            name="search_events_history",
            path="user/{user_id}/hosts/{host_id}/search-urls/events/history",
            description="Pages that appeared in or were removed from search per day, per host",
            fields=HISTORY_FIELDS,
            primary_key=("host_id", "indicator", "date"),
            server_filter=DATE_FILTER,
            records=history_records,
            parent=HOSTS,
        ),
        "search_query_history": Resource(
            name="search_query_history",
            path="user/{user_id}/hosts/{host_id}/search-queries/{query_id}/history",
            description="Shows, clicks and positions per day of each query in options.query_ids on "
            "options.host_id, for options.device_type_indicator (default ALL)",
            fields={
                "query_id": "string",
                "query_text": "string",
                "device_type": "string",
                **HISTORY_FIELDS,
                "value": "float64",
            },
            primary_key=("query_id", "device_type", "indicator", "date"),
            server_filter=DATE_FILTER,
            records=query_history_records,
            targets=query_history_targets,
            required_options=("host_id", "query_ids"),
        ),
        "query_analytics": Resource(
            name="query_analytics",
            path="user/{user_id}/hosts/{host_id}/query-analytics/list",
            description="Query statistics for options.region_ids (POST query-analytics/list), "
            "offset pages in the body, per host",
            fields={"query_text": "string", "date": "date", "field": "string", "value": "float64"},
            primary_key=("host_id", "query_text", "date", "field"),
            method="POST",
            body=analytics_body,
            records=analytics_records,
            parent=HOSTS,
        ),
    },
)


class YandexWebmasterHook(ApiHook):
    """Fills ``options.user_id`` from ``GET /v4/user`` when absent, sends the dated resources'
    window, and pages ``query_analytics`` by the offset in its JSON body."""

    api = YANDEX_WEBMASTER
    conn_type = "dpone_yandex_webmaster"
    hook_name = "dpone Yandex Webmaster"
    _user_id: str | None = None  # the connection's user, read once

    def _with_user(self, spec: SourceSpec) -> SourceSpec:
        """``spec`` with ``options.user_id``: read from ``GET /user`` (at the load's pace) when absent."""
        source = source_of(spec, ResourceSource, spec.connector)
        if source.options.get("user_id"):
            return spec
        if self._user_id is None:
            answer = self.request("GET", "user", pace=source.requests_per_second)
            self._user_id = str(require(self.decode(answer), "user_id"))
        return source.model_copy(update={"options": {**source.options, "user_id": self._user_id}})

    def effective(self, spec: SourceSpec) -> Any:
        return super().effective(self._with_user(spec))

    def read_of(self, spec: SourceSpec) -> ResourceRead:
        return super().read_of(self._with_user(spec))

    def _targets(
        self, read: Read, filter_params: dict[str, Any], details: dict[str, Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
        res = resource_read(read)
        window = dates(dict(res.options), filter_params.get("date_from"))
        extra = window if res.resource.name in DATED else {}
        for parent, path, params, body in super()._targets(read, filter_params, details):
            yield parent, path, {**params, **extra}, body

    def pages(self, path: str, params: dict[str, Any], pagination: Any, selector: str, **kwargs: Any) -> Any:
        read = None if kwargs.get("read") is None or kwargs.get("plain") else resource_read(kwargs["read"])
        name = read.resource.name if read else None
        if read is not None and name == "query_analytics":
            return self._body_pages(path, params, read, kwargs)
        pages = super().pages(path, params, pagination, selector, **kwargs)
        if read is not None and name == "search_query_history":
            device = read.options.get("device_type_indicator", "ALL")
            return (([{**r, "device_type": device} for r in recs], nxt) for recs, nxt in pages)
        return pages

    def _body_pages(
        self, path: str, params: dict[str, Any], read: ResourceRead, kwargs: dict[str, Any]
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        """POST pages whose ``offset``/``limit`` are in the JSON body; the position after a
        page carries the next offset (a retry resumes there)."""
        body = dict(kwargs.get("body") or {})
        start, details = kwargs.get("start"), kwargs.get("details")
        offset, limit = (int(start["offset"]) if start else 0), int(body["limit"])
        while True:
            response = self.request(
                "POST",
                path,
                params=params,
                json_body={**body, "offset": offset},
                headers=kwargs.get("headers"),
                pace=read.spec.requests_per_second,
            )
            payload = self.decode(response)
            if details is not None:
                details["pages"] = details.get("pages", 0) + 1
            items = len(require(payload, "text_indicator_to_statistics") or [])
            offset += limit
            more = items >= limit and offset < int(payload.get("count", offset + 1))
            nxt = {"url": path, "query": params, "offset": offset} if more else None
            yield read.records(payload, ""), nxt
            if nxt is None:
                return
