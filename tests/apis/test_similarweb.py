"""Similarweb source against a fake of the v1 traffic and engagement endpoints and of the v4
keywords endpoint (upper-case ``URL``, one month per request, offset pages)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from airflow_provider_dpone.apis.similarweb import keyword_months
from airflow_provider_dpone.contracts.errors import BadInputError, SourceContractError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

KEY = "sw-key-51c0ffee"
# Similarweb publishes a month's data after it ends: asking for a later month is an error.
LAST_MONTH = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def months(start: str, end: str) -> list[str]:
    out, (year, month) = [], map(int, start.split("-"))
    while f"{year:04d}-{month:02d}" <= end:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


# keywords per domain (every month); "renamed.example" answers without the "keywords" key
KEYWORD_COUNTS = {"a.example": 5, "bb.example": 2, "empty.example": 0, "renamed.example": 1}


def keyword(domain: str, month: str, i: int) -> dict:
    return {
        "keyword": f"{domain.split('.')[0]} kw{i}",
        "clicks": 100.5 - i,
        "traffic_share": 0.25,
        "difficulty": 40 + i,
        "competition": 0.5,
        "primary_intent": "Informational",
        "secondary_intent": None,
        "volume": 1000 * (i + 1),
        "cpc": 1.25,
        "cpc_low_bid": 0.5,
        "cpc_high_bid": 2.0,
        "zero_clicks_share": 0.1,
        "position": i + 1,
        "serp_features": ["images", "video"],
        "top_url": f"https://{domain}/{month}/{i}",
    }


def keywords_route(query: dict):
    """GET /v4/website-analysis/keywords as the vendor answers it: ``URL`` (upper case) names
    the domain, ``start_date`` must equal ``end_date`` (one month), offset/limit pages."""
    if "URL" not in query:
        return _json(400, {"meta": {"status": "Error", "error_message": "URL is required"}})
    month = query.get("start_date", "")
    if len(month) != 7 or query.get("end_date") != month:
        return _json(400, {"meta": {"status": "Error", "error_message": "one month: start_date = end_date"}})
    if month > LAST_MONTH:
        return _json(400, {"meta": {"status": "Error", "error_code": 400, "error_message": "Data not found"}})
    domain, offset, limit = query["URL"], int(query["offset"]), int(query["limit"])
    records = [keyword(domain, month, i) for i in range(KEYWORD_COUNTS.get(domain, 0))]
    if domain == "renamed.example":
        return _json(200, {"data": records})
    return _json(200, {"keywords": records[offset : offset + limit], "keywords_count": len(records)})


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if query.get("api_key") != KEY:
        return _json(
            401, {"meta": {"status": "Error", "error_code": 401, "error_message": "Invalid API key"}}
        )
    if path == "/v4/website-analysis/keywords":
        return keywords_route(query)
    parts = path.strip("/").split("/")  # v1/website/<domain>/total-traffic-and-engagement/<metric>
    if len(parts) != 5 or parts[3] != "total-traffic-and-engagement":
        return _json(404, {"meta": {"status": "Error", "error_message": "Not found"}})
    domain, metric = parts[2], parts[4]
    key = metric.replace("-", "_")
    if query["end_date"] > LAST_MONTH:
        return _json(400, {"meta": {"status": "Error", "error_code": 400, "error_message": "Data not found"}})
    asked = months(query["start_date"], query["end_date"])
    points = [{"date": f"{m}-01", key: 1000.0 * (i + 1) + len(domain)} for i, m in enumerate(asked)]
    meta = {
        "request": {"domain": domain, "country": query["country"], "granularity": "Monthly", **query},
        "status": "Success",
    }
    return _json(200, {"meta": meta, key: points})


@pytest.fixture
def sw():
    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_SW"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": KEY, "extra": {"max_retries": 2}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, **source):
    key = ["domain", "month", "keyword"] if resource == "keywords" else ["domain", "country", "date"]
    return parse_manifest(
        {
            "pipeline": "web",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "similarweb",
                        "conn_id": "sw",
                        "resource": resource,
                        "options": options,
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.sw_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": key,
                    },
                }
            ],
        }
    )


def test_visits_per_domain_and_month_incremental_on_start_date(sw, clean_pg) -> None:
    options = {"domains": ["a.example", "bb.example"], "start_date": "2026-01", "end_date": "2026-03"}
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    assert run(manifest("visits", options, **inc), "r1").rows == 6
    assert [q["query"]["start_date"] for q in sw.log] == ["2026-01", "2026-01"]
    assert sw.log[0]["query"]["country"] == "world" and sw.log[0]["query"]["granularity"] == "monthly"
    sw.log.clear()
    second = run(manifest("visits", {**options, "end_date": "2026-04"}, **inc), "r2")
    assert [q["query"]["start_date"] for q in sw.log] == ["2026-03", "2026-03"]  # from the watermark month
    assert second.rows == 4  # the watermark month again (a merge reads it), and 2026-04
    rows = clean_pg.query("dst", "select domain, date::text, value from raw.sw_visits order by 1, 2")
    assert len(rows) == 8 and rows[0] == ("a.example", "2026-01-01", 1009.0)


def test_the_default_end_is_the_last_full_month(sw, clean_pg) -> None:
    first = months("2026-01", LAST_MONTH)[-2]
    assert run(manifest("visits", {"domains": ["a.example"], "start_date": first}), "r1").rows == 2
    assert sw.log[0]["query"]["end_date"] == LAST_MONTH  # not the current, unpublished month


def test_an_invalid_key_is_not_retried(sw, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_SW"] = json.dumps({"conn_type": "http", "host": sw.url, "password": "nope"})
    with pytest.raises(AuthError, match="returned 401"):
        run(manifest("bounce_rate", {"domains": ["a.example"], "start_date": "2026-01"}), "r1")
    assert len(sw.log) == 1


def test_rate_limit_and_server_errors_are_retried(sw, clean_pg) -> None:
    sw.faults = [_json(429, {"meta": {"status": "Error"}}, {"Retry-After": "0"}), _json(503, {})]
    assert (
        run(
            manifest(
                "pages_per_visit", {"domains": ["a.example"], "start_date": "2026-01", "end_date": "2026-02"}
            ),
            "r1",
        ).rows
        == 2
    )


def test_domains_are_required(sw, clean_pg) -> None:
    with pytest.raises(BadInputError, match="domains"):
        run(manifest("visits", {"start_date": "2026-01"}), "r1")


def test_keywords_send_the_upper_case_url_and_one_month_per_request_in_offset_pages(sw, clean_pg) -> None:
    options = {"domains": ["a.example"], "start_date": "2025-01", "end_date": "2025-02", "limit": 2}
    assert run(manifest("keywords", options), "r1").rows == 10  # 5 keywords x 2 months
    queries = [q["query"] for q in sw.log]
    assert [q["path"] for q in sw.log] == ["/v4/website-analysis/keywords"] * 6
    assert [(q["start_date"], q["end_date"], q["offset"]) for q in queries] == [
        ("2025-01", "2025-01", "0"),
        ("2025-01", "2025-01", "2"),
        ("2025-01", "2025-01", "4"),  # 1 keyword: a short page, the month's last
        ("2025-02", "2025-02", "0"),
        ("2025-02", "2025-02", "2"),
        ("2025-02", "2025-02", "4"),
    ]
    first = queries[0]
    assert first["URL"] == "a.example" and "url" not in first and "domain" not in first
    assert (first["traffic_source"], first["web_source"], first["branded_type"]) == (
        "Organic",
        "Total",
        "All",
    )
    assert (first["country"], first["limit"]) == ("world", "2") and "sort" not in first
    rows = clean_pg.query(
        "dst",
        "select domain, month::text, keyword, clicks, volume, position, serp_features::text, top_url "
        "from raw.sw_keywords order by month, keyword",
    )
    assert rows[0] == (
        "a.example",
        "2025-01-01",
        "a kw0",
        100.5,
        1000,
        1,
        '["images", "video"]',
        "https://a.example/2025-01/0",
    )
    assert {r[1] for r in rows} == {"2025-01-01", "2025-02-01"}


def test_keywords_are_incremental_by_month_without_reading_the_watermark_month_again(sw, clean_pg) -> None:
    inc = {"incremental": {"mode": "cursor", "cursor": "month"}}
    options = {"domains": ["a.example", "bb.example"], "start_date": "2025-01", "end_date": "2025-02"}
    assert run(manifest("keywords", {**options, "sort": "clicks", "asc": "false"}, **inc), "r1").rows == 14
    assert (sw.log[0]["query"]["sort"], sw.log[0]["query"]["asc"]) == ("clicks", "false")
    sw.log.clear()
    assert run(manifest("keywords", {**options, "end_date": "2025-04"}, **inc), "r2").rows == 14
    assert sorted({(q["query"]["start_date"], q["query"]["URL"]) for q in sw.log}) == [
        ("2025-03", "a.example"),
        ("2025-03", "bb.example"),
        ("2025-04", "a.example"),
        ("2025-04", "bb.example"),
    ]
    sw.log.clear()
    assert run(manifest("keywords", {**options, "end_date": "2025-04"}, **inc), "r3").rows == 0
    assert sw.log == []  # nothing after the watermark month: no request, no credits spent


def test_keywords_start_at_the_initial_value_s_own_month(sw, clean_pg) -> None:
    inc = {"incremental": {"mode": "cursor", "cursor": "month", "initial_value": "2025-02-01"}}
    run(manifest("keywords", {"domains": ["bb.example"], "end_date": "2025-03"}, **inc), "r1")
    assert [q["query"]["start_date"] for q in sw.log] == ["2025-02", "2025-03"]


def test_keywords_default_to_the_previous_full_month(sw, clean_pg) -> None:
    assert run(manifest("keywords", {"domains": ["bb.example"]}), "r1").rows == 2
    assert len(sw.log) == 1
    assert (sw.log[0]["query"]["start_date"], sw.log[0]["query"]["end_date"]) == (LAST_MONTH, LAST_MONTH)


def test_keyword_months_one_at_a_time_up_to_the_last_full_month() -> None:
    today = dt.date(2026, 1, 15)
    assert keyword_months({}, {}, today) == ["2025-12"]  # the previous month, across the year
    assert keyword_months({"start_date": "2025-11"}, {}, today) == ["2025-11", "2025-12"]
    assert keyword_months({"start_date": "2025-11-20"}, {"since": "2025-11-01"}, today) == ["2025-12"]
    assert keyword_months({}, {"since": "2025-12-01"}, today) == []  # up to date
    assert keyword_months({}, {"since": "2025-10-22"}, today) == ["2025-11", "2025-12"]  # a lookback
    assert keyword_months({"end_date": "2025-10"}, {"start": "2025-09-01"}, today) == ["2025-09", "2025-10"]
    with pytest.raises(BadInputError, match="2026-01 is not over yet"):
        keyword_months({"end_date": "2026-01"}, {}, today)
    with pytest.raises(BadInputError, match="start_date"):
        keyword_months({"start_date": "last year"}, {}, today)


def test_keywords_without_the_keywords_key_fail_and_an_empty_list_is_no_rows(sw, clean_pg) -> None:
    options = {"start_date": "2025-01", "end_date": "2025-01"}
    assert run(manifest("keywords", {**options, "domains": ["empty.example"]}), "r1").rows == 0
    with pytest.raises(SourceContractError, match="no 'keywords'"):
        run(manifest("keywords", {**options, "domains": ["renamed.example"]}), "r2")


def test_keywords_limit_must_be_positive(sw, clean_pg) -> None:
    with pytest.raises(BadInputError, match="limit"):
        run(manifest("keywords", {"domains": ["a.example"], "limit": 0}), "r1")
    assert sw.log == []


@pytest.mark.integration_live
def test_live_visits() -> None:
    key = os.environ.get("DPONE_LIVE_SIMILARWEB_KEY")
    if not key:
        pytest.skip("live test: set DPONE_LIVE_SIMILARWEB_KEY to a Similarweb API key")
    from airflow_provider_dpone.apis.similarweb import SimilarwebHook

    os.environ["AIRFLOW_CONN_SW"] = json.dumps({"conn_type": "http", "password": key})
    spec = (
        manifest("visits", {"domains": ["similarweb.com"], "start_date": "2026-01", "end_date": "2026-01"})
        .loads[0]
        .source
    )
    assert [r for b in SimilarwebHook(conn_id="sw").extract(spec, None).artifact.batches for r in b]


@pytest.mark.integration_live
def test_live_keywords_carry_the_declared_fields() -> None:
    """Checks the keyword field names this source declares against a live answer."""
    key = os.environ.get("DPONE_LIVE_SIMILARWEB_KEY")
    if not key:
        pytest.skip("live test: set DPONE_LIVE_SIMILARWEB_KEY to a Similarweb API key")
    from airflow_provider_dpone.apis.similarweb import KEYWORD_FIELDS, SimilarwebHook

    os.environ["AIRFLOW_CONN_SW"] = json.dumps({"conn_type": "http", "password": key})
    spec = manifest("keywords", {"domains": ["similarweb.com"], "limit": 10}).loads[0].source
    batches = SimilarwebHook(conn_id="sw").extract(spec, None).artifact.batches
    rows = [dict(zip(KEYWORD_FIELDS, r, strict=True)) for b in batches for r in b]
    assert rows and all(r["keyword"] for r in rows)
    for name in ("clicks", "traffic_share", "volume", "position"):
        assert any(r[name] is not None for r in rows), name


def test_the_new_data_sensor_asks_each_domain_of_a_catalog_resource(sw, clean_pg) -> None:
    """The sensor builds the connector's own hook and asks each request series the load sends
    (here one per domain), never the bare path with ``{domain}`` unfilled."""
    from airflow_provider_dpone.contracts.manifest import StateSpec
    from airflow_provider_dpone.contracts.state import CursorState
    from airflow_provider_dpone.sensors.rest import RestNewDataSensor
    from airflow_provider_dpone.specs import Cursor, SimilarwebSource
    from airflow_provider_dpone.state import build_state_backend

    state = {"backend": "table", "conn_id": "dst"}
    source = SimilarwebSource(
        "sw", "keywords", options={"domains": ["empty.example", "bb.example"]}, incremental=Cursor("month")
    )
    sensor = RestNewDataSensor(task_id="wait", source=source, pipeline="web", load="keywords", state=state)
    assert sensor.poke({}) is True  # nothing stored: the previous month of bb.example has rows
    asked = [r["query"]["URL"] for r in sw.log]
    assert asked == ["empty.example", "bb.example"]  # the empty domain did not end the search
    build_state_backend(StateSpec.model_validate(state)).commit(
        "web", "keywords", CursorState("month", f"{LAST_MONTH}-01", "date"), "r1"
    )
    sw.log.clear()
    assert sensor.poke({}) is False and sw.log == []  # no month past the last full one: nothing to ask
