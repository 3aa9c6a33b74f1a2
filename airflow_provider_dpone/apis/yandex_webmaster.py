"""Yandex Webmaster API v4 (https://yandex.ru/dev/webmaster/doc/en/).

Auth: an OAuth token (scope ``webmaster:hostinfo``, ``webmaster:verify`` not needed) in the
connection's password, sent as ``Authorization: OAuth <token>``. Every call is under
``/v4/user/{user_id}``: the user id comes from ``GET /v4/user`` (put it in ``options.user_id``).
Per-host resources fan out over the user's hosts. Errors are JSON with an ``error_code``
(``INVALID_OAUTH_TOKEN`` 401, ``ACCESS_FORBIDDEN``/``HOST_NOT_VERIFIED`` 403, ``QUOTA_EXCEEDED`` 429).
"""

from __future__ import annotations

from typing import Any

from ..hooks.rest_pages import require
from .base import ApiHook, ApiSource, Resource

INDICATORS = ("TOTAL_SHOWS", "TOTAL_CLICKS", "AVG_SHOW_POSITION", "AVG_CLICK_POSITION")
HOSTS = {"path": "user/{user_id}/hosts", "record_selector": "hosts", "field": "host_id", "as": "host_id"}


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
    extra={"auth": "api_key", "api_key_header": "Authorization", "api_key_prefix": "OAuth "},
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
            required_options=("user_id",),
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
            required_options=("user_id",),
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
            params={
                "order_by": "TOTAL_SHOWS",
                "query_indicator": list(INDICATORS),
                "date_from": None,
                "date_to": None,
            },
            pagination={"type": "offset", "page_size": 500},
            records=query_records,
            parent=HOSTS,
            required_options=("user_id",),
        ),
        "indexing_history": Resource(
            name="indexing_history",
            path="user/{user_id}/hosts/{host_id}/indexing/history",
            description="Pages downloaded by the robot per HTTP status class and day, per host",
            fields={"indicator": "string", "date": "timestamptz", "value": "int64"},
            primary_key=("host_id", "indicator", "date"),
            params={"date_from": None, "date_to": None},
            server_filter={"param": "date_from", "field": "date", "format": "iso"},
            records=history_records,
            parent=HOSTS,
            required_options=("user_id",),
        ),
    },
)


class YandexWebmasterHook(ApiHook):
    api = YANDEX_WEBMASTER
    conn_type = "dpone_yandex_webmaster"
    hook_name = "dpone Yandex Webmaster"
