"""Open Exchange Rates source against a fake that reproduces the API's JSON contract."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from airflow_provider_dpone.contracts.errors import SourceContractError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

APP_ID = "oxr-app-0c41d9b2e7"


def _error(status: int, message: str) -> tuple[int, bytes, dict]:
    body = {"error": True, "status": status, "message": message, "description": "..."}
    return status, json.dumps(body).encode(), {"Content-Type": "application/json"}


def usage_body(app_id: str) -> dict:
    """usage.json as documented: it echoes the App ID (the connection's secret)."""
    plan = {
        "name": "Developer",
        "quota": "10,000 requests / month",
        "update_frequency": "3600s",
        "features": {
            "base": True,
            "symbols": True,
            "experimental": True,
            "time-series": False,
            "convert": False,
        },
    }
    usage = {
        "requests": 1234,
        "requests_quota": 10000,
        "requests_remaining": 8766,
        "days_elapsed": 20,
        "days_remaining": 10,
        "daily_average": 61,
    }
    return {"status": 200, "data": {"app_id": app_id, "status": "active", "plan": plan, "usage": usage}}


def oxr_route(method: str, path: str, query: dict, headers: object, body: bytes):
    if path == "/api/currencies.json":
        return (
            200,
            json.dumps({"EUR": "Euro", "RUB": "Russian Ruble", "USD": "United States Dollar"}).encode(),
            {},
        )
    if query.get("app_id") != APP_ID:
        return _error(401, "invalid_app_id")
    if query.get("base", "USD") != "USD":
        return _error(403, "not_allowed")
    if path == "/api/usage.json":
        return 200, json.dumps(usage_body(query["app_id"])).encode(), {"Content-Type": "application/json"}
    if path == "/api/latest.json":
        day = dt.datetime(2026, 3, 20, 12, tzinfo=dt.timezone.utc)
    elif path.startswith("/api/historical/"):
        day = dt.datetime.fromisoformat(path.rsplit("/", 1)[1].removesuffix(".json")).replace(
            hour=23, minute=59, tzinfo=dt.timezone.utc
        )
    else:
        return _error(404, "not_found")
    rates = {"EUR": 0.9 + day.day / 1000, "RUB": 90 + day.day / 10, "USD": 1}
    payload = {
        "disclaimer": "...",
        "license": "...",
        "timestamp": int(day.timestamp()),
        "base": "USD",
        "rates": rates,
    }
    return 200, json.dumps(payload).encode(), {"Content-Type": "application/json"}


@pytest.fixture
def oxr():
    fake = VendorFake(oxr_route)
    os.environ["AIRFLOW_CONN_OXR"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/api/", "password": APP_ID, "extra": {"max_retries": 3}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict | None = None, strategy: str = "incremental_merge", **source):
    keys = {
        "historical": ["date", "currency"],
        "latest": ["timestamp", "currency"],
        "currencies": ["code"],
        "usage": ["plan_name"],
    }[resource]
    sink = {"connector": "postgres", "conn_id": "dst", "table": f"raw.oxr_{resource}", "strategy": strategy}
    if strategy == "incremental_merge":
        sink["unique_key"] = keys
    return parse_manifest(
        {
            "pipeline": "oxr",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "openexchangerates",
                        "conn_id": "oxr",
                        "resource": resource,
                        "options": options or {},
                        **source,
                    },
                    "sink": sink,
                }
            ],
        }
    )


def test_latest_rates_become_one_row_per_currency(oxr, clean_pg) -> None:
    assert run(manifest("latest"), "r1").rows == 3
    assert oxr.log[0]["query"] == {"app_id": APP_ID}  # no base unless the manifest gives one
    rows = clean_pg.query(
        "dst", "select currency, rate::text, timestamp::text from raw.oxr_latest order by 1"
    )
    assert rows[0] == ("EUR", "0.920000000000", "2026-03-20 12:00:00+00")


def test_historical_is_incremental_by_day(oxr, clean_pg) -> None:
    pg = clean_pg
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    first = run(manifest("historical", {"start_date": "2026-03-01", "end_date": "2026-03-03"}, **inc), "r1")
    assert first.rows == 9 and [q["path"] for q in oxr.log][-1] == "/api/historical/2026-03-03.json"
    oxr.log.clear()
    run(manifest("historical", {"end_date": "2026-03-05"}, **inc), "r2")
    assert [q["path"].rsplit("/", 1)[1] for q in oxr.log] == [
        "2026-03-03.json",
        "2026-03-04.json",
        "2026-03-05.json",
    ]
    assert pg.query("dst", "select count(*), count(distinct (date, currency)) from raw.oxr_historical") == [
        (15, 15)
    ]


def test_an_invalid_app_id_fails_without_retries_or_the_secret(oxr, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_OXR"] = json.dumps(
        {"conn_type": "http", "host": f"{oxr.url}/api/", "password": "nope-" + APP_ID}
    )
    with pytest.raises(AuthError, match="returned 401") as caught:
        run(manifest("latest"), "r1")
    assert APP_ID not in str(caught.value) and len(oxr.log) == 1


def test_base_is_sent_only_when_the_options_give_one(oxr, clean_pg) -> None:
    run(manifest("historical", {"start_date": "2026-03-01", "end_date": "2026-03-01"}), "r1")
    assert "base" not in oxr.log[-1]["query"]  # the Free plan's default base, never forced
    run(manifest("latest", {"base": "USD", "symbols": "EUR,RUB"}), "r2")
    assert oxr.log[-1]["query"] == {"app_id": APP_ID, "base": "USD", "symbols": "EUR,RUB"}


def test_a_plan_restriction_is_a_clear_error(oxr, clean_pg) -> None:
    with pytest.raises(AuthError, match="returned 403"):
        run(manifest("latest", {"base": "EUR"}), "r1")  # changing base needs a paid plan


def test_quota_429_and_5xx_are_retried(oxr, clean_pg) -> None:
    oxr.faults = [(*_error(429, "access_restricted")[:2], {"Retry-After": "0"}), (500, b"oops", {})]
    assert run(manifest("currencies", strategy="full_refresh"), "r1").rows == 3
    assert len(oxr.log) == 3


def test_usage_is_one_row_of_plan_and_counters_without_the_app_id(oxr, clean_pg, caplog) -> None:
    caplog.set_level("DEBUG")
    assert run(manifest("usage", strategy="full_refresh"), "r1").rows == 1
    assert [q["path"] for q in oxr.log] == ["/api/usage.json"] and oxr.log[0]["query"] == {"app_id": APP_ID}
    rows = clean_pg.query(
        "dst",
        "select status, plan_name, plan_quota, plan_update_frequency, feature_base, feature_time_series, "
        "requests, requests_quota, requests_remaining, days_elapsed, days_remaining, daily_average "
        "from raw.oxr_usage",
    )
    assert rows == [
        (
            "active",
            "Developer",
            "10,000 requests / month",
            "3600s",
            True,
            False,
            1234,
            10000,
            8766,
            20,
            10,
            61,
        )
    ]
    table = clean_pg.query("dst", "select row_to_json(u)::text from raw.oxr_usage u")
    assert APP_ID not in str(table) and "app_id" not in str(table)  # the secret is not landed
    assert "usage.json?app_id=***" in caplog.text and APP_ID not in caplog.text  # nor logged


def test_usage_without_its_usage_object_fails(oxr, clean_pg) -> None:
    def renamed(method: str, path: str, query: dict, headers: object, body: bytes):
        payload = usage_body(query["app_id"])
        payload["data"]["stats"] = payload["data"].pop("usage")
        return 200, json.dumps(payload).encode(), {"Content-Type": "application/json"}

    oxr.route = renamed
    with pytest.raises(SourceContractError, match=r"no 'data\.usage'") as caught:
        run(manifest("usage", strategy="full_refresh"), "r1")
    assert APP_ID not in str(caught.value)


@pytest.mark.integration_live
def test_live_latest() -> None:
    app_id = os.environ.get("DPONE_LIVE_OXR_APP_ID")
    if not app_id:
        pytest.skip("live test: set DPONE_LIVE_OXR_APP_ID to an Open Exchange Rates App ID")
    from airflow_provider_dpone.apis.openexchangerates import OpenExchangeRatesHook

    os.environ["AIRFLOW_CONN_OXR"] = json.dumps({"conn_type": "http", "password": app_id})
    result = OpenExchangeRatesHook(conn_id="oxr").extract(manifest("latest").loads[0].source, None)
    assert any(r[3] == "EUR" for batch in result.artifact.batches for r in batch)


def test_a_first_run_loads_the_initial_value_s_own_day(oxr, clean_pg) -> None:
    """An initial_value says where to start, not what was loaded: its day's rows are kept."""
    inc = {"incremental": {"mode": "cursor", "cursor": "date", "initial_value": "2026-03-01"}}
    run(manifest("historical", {"end_date": "2026-03-03"}, **inc), "r1")
    days = clean_pg.query("dst", "select distinct date::text from raw.oxr_historical order by 1")
    assert ("2026-03-01",) in days


def test_a_merge_updates_the_watermark_day_it_reads_again(oxr, clean_pg) -> None:
    """The day of the watermark is requested again; a merge takes its newer rates."""
    calls = [0]

    def moving(method: str, path: str, query: dict, headers: object, body: bytes):
        status, payload, extra = oxr_route(method, path, query, headers, body)
        if path.endswith("2026-03-03.json"):  # an intraday read: the day's rate moves
            calls[0] += 1
            data = json.loads(payload)
            data["rates"]["RUB"] = 100.0 + calls[0]
            payload = json.dumps(data).encode()
        return status, payload, extra

    oxr.route = moving
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    run(manifest("historical", {"start_date": "2026-03-02", "end_date": "2026-03-03"}, **inc), "r1")
    run(manifest("historical", {"end_date": "2026-03-04"}, **inc), "r2")
    rub = "select rate::text from raw.oxr_historical where date = '2026-03-03' and currency = 'RUB'"
    assert calls[0] == 2 and clean_pg.query("dst", rub) == [("102.000000000000",)]
