"""Similarweb source against a fake of the v1 traffic and engagement endpoints."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
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


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if query.get("api_key") != KEY:
        return _json(
            401, {"meta": {"status": "Error", "error_code": 401, "error_message": "Invalid API key"}}
        )
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
                        "unique_key": ["domain", "country", "date"],
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
