"""Yandex Webmaster source against a fake of API v4: OAuth header, host fan-out, offset pages."""

from __future__ import annotations

import json
import os
import re

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

TOKEN = "y0_AgAAAAB-fake-oauth-token"
USER = "1130000012345"
HOSTS = ["https:shop.example:443", "https:blog.example:443"]
INDICATORS = ["TOTAL_SHOWS", "TOTAL_CLICKS", "AVG_SHOW_POSITION", "AVG_CLICK_POSITION"]


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DAYS = ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04")
DATED = ("/search-queries/popular", "/history")  # the API wants date_from/date_to as YYYY-MM-DD


def _points(query: dict, value: int) -> list[dict]:
    days = [d for d in DAYS if query["date_from"] <= d <= query["date_to"]]
    return [{"date": f"{d}T00:00:00.000+03:00", "value": value} for d in days]


def _analytics(host: str, body: bytes):
    asked = json.loads(body)
    if asked.get("search_location") != "WEB_LOCATION" or asked.get("text_indicator") != "QUERY":
        return _json(400, {"error_code": "FIELD_VALIDATION_ERROR"})
    total = 7 if 213 in asked.get("region_ids", []) else 0
    offset, limit = asked["offset"], asked["limit"]
    stats = [
        {
            "text_indicator": {"type": "QUERY", "value": f"query {i}"},
            "statistics": [{"date": "2026-03-01", "field": "IMPRESSIONS", "value": 10.0 + i}],
        }
        for i in range(offset, min(offset + limit, total))
    ]
    return _json(200, {"text_indicator_to_statistics": stats, "count": total})


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if headers.get("Authorization") != f"OAuth {TOKEN}":  # type: ignore[attr-defined]
        return _json(401, {"error_code": "INVALID_OAUTH_TOKEN", "error_message": "Invalid oauth token"})
    if path == "/v4/user":
        return _json(200, {"user_id": int(USER)})
    if path.endswith(DATED) and not all(DAY.fullmatch(query.get(k, "")) for k in ("date_from", "date_to")):
        return _json(400, {"error_code": "FIELD_VALIDATION_ERROR", "error_message": "date_from, date_to"})
    base = f"/v4/user/{USER}/hosts"
    if path == base:
        hosts = [
            {"host_id": h, "ascii_host_url": f"https://{h.split(':')[1]}/", "verified": True} for h in HOSTS
        ]
        return _json(200, {"hosts": hosts})
    for host in HOSTS:
        if path == f"{base}/{host}/search-queries/popular":
            if query.all("query_indicator") != list(INDICATORS):
                return _json(
                    400, {"error_code": "FIELD_VALIDATION_ERROR", "error_message": "query_indicator"}
                )
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 500))
            total = 1200 if host == HOSTS[0] else 3
            queries = [
                {
                    "query_id": f"q{i}",
                    "query_text": f"query {i}",
                    "indicators": {"TOTAL_SHOWS": 1000 - i / 2, "TOTAL_CLICKS": 5.0},
                }
                for i in range(offset, min(offset + limit, total))
            ]
            return _json(
                200,
                {
                    "queries": queries,
                    "date_from": query["date_from"],
                    "date_to": query["date_to"],
                    "count": total,
                },
            )
        if path == f"{base}/{host}/indexing/history":
            points = _points(query, 10)
            errors = [p for p in points if p["date"].startswith("2026-03-01")]
            return _json(200, {"indicators": {"HTTP_2XX": points, "HTTP_4XX": errors}})
        if path == f"{base}/{host}/search-urls/in-search/history":
            return _json(200, {"history": _points(query, 120)})
        if path == f"{base}/{host}/search-urls/events/history":
            return _json(200, {"indicators": {"APPEARED_IN_SEARCH": _points(query, 3)}})
        if path.startswith(f"{base}/{host}/search-queries/") and path.endswith("/history"):
            query_id = path.split("/")[-2]
            asked = query.all("query_indicator")
            if not asked or not set(asked) <= set(INDICATORS) or not query.get("device_type_indicator"):
                return _json(400, {"error_code": "FIELD_VALIDATION_ERROR"})
            shows = _points(query, 100 if query["device_type_indicator"] == "ALL" else 40)
            return _json(
                200,
                {
                    "query_id": query_id,
                    "query_text": f"text of {query_id}",
                    "indicators": {"TOTAL_SHOWS": shows, "TOTAL_CLICKS": _points(query, 4)},
                },
            )
        if method == "POST" and path == f"{base}/{host}/query-analytics/list":
            return _analytics(host, body)
        if path == f"{base}/{host}/summary":
            return _json(
                200,
                {
                    "sqi": 40,
                    "searchable_pages_count": 120,
                    "excluded_pages_count": 3,
                    "site_problems": {"FATAL": 0},
                },
            )
    return _json(404, {"error_code": "RESOURCE_NOT_FOUND"})


@pytest.fixture
def ywm():
    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_YWM"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/v4/", "password": TOKEN, "extra": {"max_retries": 2}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, keys: list[str], **source):
    return parse_manifest(
        {
            "pipeline": "seo",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "yandex_webmaster",
                        "conn_id": "ywm",
                        "resource": resource,
                        "options": {"user_id": USER, **options} if "user_id" not in options else options,
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.ywm_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": keys,
                    },
                }
            ],
        }
    )


def test_popular_queries_fan_out_over_hosts_and_page_by_offset(ywm, clean_pg) -> None:
    options = {"date_from": "2026-03-01", "date_to": "2026-03-07"}
    report = run(manifest("popular_queries", options, ["host_id", "query_id", "date_from", "date_to"]), "r1")
    assert report.rows == 1203
    calls = [(q["path"].rsplit("/hosts/", 1)[-1], q["query"].get("offset")) for q in ywm.log[1:]]
    assert calls[:3] == [
        (f"{HOSTS[0]}/search-queries/popular", "0"),
        (f"{HOSTS[0]}/search-queries/popular", "500"),
        (f"{HOSTS[0]}/search-queries/popular", "1000"),
    ]
    assert ywm.log[1]["query"].all("query_indicator") == INDICATORS  # the key repeated, once per value
    rows = clean_pg.query(
        "dst", "select host_id, count(*), max(total_shows) from raw.ywm_popular_queries group by 1 order by 1"
    )
    assert rows == [(HOSTS[1], 3, 1000.0), (HOSTS[0], 1200, 1000.0)]


def test_indexing_history_is_incremental_on_the_server(ywm, clean_pg) -> None:
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    m = manifest("indexing_history", {"date_to": "2026-03-04"}, ["host_id", "indicator", "date"], **inc)
    assert run(m, "r1").rows == 10  # two hosts x (4 days 2xx + 1 day 4xx)
    ywm.log.clear()
    run(m, "r2")
    since = {q["query"].get("date_from") for q in ywm.log if q["path"].endswith("/indexing/history")}
    # the newest point (2026-03-04 00:00+03:00, 03-03 in UTC) minus the default 14-day lookback
    assert since == {"2026-02-17"}
    assert clean_pg.query("dst", "select count(*) from raw.ywm_indexing_history") == [(10,)]


def test_popular_queries_always_ask_for_dates(ywm, clean_pg) -> None:
    keys = ["host_id", "query_id", "date_from", "date_to"]
    assert run(manifest("popular_queries", {}, keys), "r1").rows == 1203
    asked = ywm.log[1]["query"]
    assert DAY.fullmatch(asked["date_from"]) and DAY.fullmatch(asked["date_to"])
    assert asked["date_from"] < asked["date_to"]


def test_the_user_id_is_read_from_the_api_when_not_given(ywm, clean_pg) -> None:
    assert run(manifest("hosts", {"user_id": None}, ["host_id"]), "r1").rows == 2
    assert [q["path"] for q in ywm.log] == ["/v4/user", f"/v4/user/{USER}/hosts"]


def test_in_search_and_search_events_history_per_host_and_day(ywm, clean_pg) -> None:
    window = {"date_from": "2026-03-02", "date_to": "2026-03-04"}
    assert run(manifest("in_search_history", window, ["host_id", "date"]), "r1").rows == 6
    assert clean_pg.query("dst", "select distinct value from raw.ywm_in_search_history") == [(120,)]
    keys = ["host_id", "indicator", "date"]
    assert run(manifest("search_events_history", window, keys), "r2").rows == 6
    assert clean_pg.query("dst", "select distinct indicator from raw.ywm_search_events_history") == [
        ("APPEARED_IN_SEARCH",)
    ]


def test_search_query_history_per_query_and_device_type(ywm, clean_pg) -> None:
    options = {
        "host_id": HOSTS[0],
        "query_ids": ["q1", "q2"],
        "device_type_indicator": "MOBILE",
        "date_from": "2026-03-01",
        "date_to": "2026-03-02",
    }
    keys = ["query_id", "device_type", "indicator", "date"]
    assert run(manifest("search_query_history", options, keys), "r1").rows == 8
    assert ywm.log[0]["path"].endswith(f"/hosts/{HOSTS[0]}/search-queries/q1/history")
    rows = clean_pg.query(
        "dst",
        "select query_text, device_type, value from raw.ywm_search_query_history "
        "where indicator = 'TOTAL_SHOWS' order by query_id, date limit 1",
    )
    assert rows == [("text of q1", "MOBILE", 40)]


def test_query_analytics_posts_region_ids_and_pages_in_the_body(ywm, clean_pg) -> None:
    options = {"region_ids": [213], "limit": 3}
    keys = ["host_id", "query_text", "date", "field"]
    assert run(manifest("query_analytics", options, keys), "r1").rows == 14  # 2 hosts x 7 queries
    posts = [json.loads(q["body"]) for q in ywm.log if q["method"] == "POST"]
    assert [p["offset"] for p in posts[:3]] == [0, 3, 6] and posts[0]["region_ids"] == [213]
    assert posts[0]["device_type_indicator"] == "ALL"
    rows = clean_pg.query("dst", "select max(value) from raw.ywm_query_analytics")
    assert rows == [(16.0,)]


def test_summary_per_host(ywm, clean_pg) -> None:
    assert run(manifest("summary", {}, ["host_id"]), "r1").rows == 2
    assert clean_pg.query("dst", "select host_id, sqi from raw.ywm_summary order by 1") == [
        (HOSTS[1], 40),
        (HOSTS[0], 40),
    ]


def test_an_invalid_token_fails_without_retries(ywm, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_YWM"] = json.dumps(
        {"conn_type": "http", "host": f"{ywm.url}/v4/", "password": "bad"}
    )
    with pytest.raises(AuthError, match="returned 401"):
        run(manifest("hosts", {}, ["host_id"]), "r1")
    assert len(ywm.log) == 1


def test_quota_and_server_errors_are_retried(ywm, clean_pg) -> None:
    ywm.faults = [
        _json(429, {"error_code": "QUOTA_EXCEEDED"}, {"Retry-After": "0"}),
        _json(500, {"error_code": "INTERNAL_ERROR"}),
    ]
    assert run(manifest("hosts", {}, ["host_id"]), "r1").rows == 2
    assert len(ywm.log) == 3


@pytest.mark.integration_live
def test_live_hosts() -> None:
    token, user = os.environ.get("DPONE_LIVE_YWM_TOKEN"), os.environ.get("DPONE_LIVE_YWM_USER_ID")
    if not (token and user):
        pytest.skip(
            "live test: set DPONE_LIVE_YWM_TOKEN and DPONE_LIVE_YWM_USER_ID (a Yandex OAuth token and its user id)"
        )
    from airflow_provider_dpone.apis.yandex_webmaster import YandexWebmasterHook

    os.environ["AIRFLOW_CONN_YWM"] = json.dumps({"conn_type": "http", "password": token})
    spec = manifest("hosts", {"user_id": user}, ["host_id"]).loads[0].source
    rows = [
        r for batch in YandexWebmasterHook(conn_id="ywm").extract(spec, None).artifact.batches for r in batch
    ]
    assert rows
