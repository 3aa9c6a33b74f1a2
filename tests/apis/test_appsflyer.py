"""AppsFlyer source against a fake of the Pull API v5 (CSV bodies, bearer token, daily ranges)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

TOKEN = "eyJhbGciOi.appsflyer-v2-token"
APP = "id123456789"
RAW_HEADER = [
    "Event Time",
    "Install Time",
    "Event Name",
    "Event Revenue",
    "Media Source",
    "Campaign",
    "AppsFlyer ID",
    "Platform",
    "Country Code",
]


def _csv(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if headers.get("Authorization") != f"Bearer {TOKEN}":  # type: ignore[attr-defined]
        return 401, b'{"error": "Unauthorized"}', {"Content-Type": "application/json"}
    day = query["from"]
    assert query["to"] == day
    if path == f"/api/raw-data/export/app/{APP}/installs_report/v5":
        rows = [
            [
                f"{day} 10:0{i}:00",
                f"{day} 10:0{i}:00",
                "install",
                "",
                "googleadwords_int",
                "brand, search",
                f"af-{day}-{i}",
                "android",
                "DE",
            ]
            for i in range(3)
        ]
        return 200, _csv(RAW_HEADER, rows), {"Content-Type": "text/csv"}
    if path == f"/api/agg-data/export/app/{APP}/partners_by_date_report/v5":
        header = [
            "Date",
            "Agency/PMD (af_prt)",
            "Media Source (pid)",
            "Campaign (c)",
            "Impressions",
            "Clicks",
            "Installs",
            "Total Revenue",
            "Total Cost",
        ]
        return (
            200,
            _csv(
                header,
                [
                    [
                        day,
                        "None",
                        "facebook",
                        "spring",
                        1000,
                        50,
                        5,
                        "12.50",
                        "N/A" if day.endswith("2") else "3.10",
                    ]
                ],
            ),
            {},
        )
    return 404, b"not found", {}


@pytest.fixture
def af():
    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_AF"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": TOKEN, "extra": {"max_retries": 2}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, keys: list[str], **source):
    return parse_manifest(
        {
            "pipeline": "mobile",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "appsflyer",
                        "conn_id": "af",
                        "resource": resource,
                        "options": {"app_id": APP, **options},
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.af_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": keys,
                    },
                }
            ],
        }
    )


INC = {"incremental": {"mode": "cursor", "cursor": "event_time"}}


def test_installs_day_by_day_incremental_from_the_watermark(af, clean_pg) -> None:
    m = manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-03"}, ["appsflyer_id"], **INC)
    assert run(m, "r1").rows == 9
    assert [q["query"]["from"] for q in af.log] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    row = clean_pg.query(
        "dst",
        "select event_time::text, media_source, campaign, country_code from raw.af_installs order by 1 limit 1",
    )
    assert row == [("2026-03-01 10:00:00", "googleadwords_int", "brand, search", "DE")]
    af.log.clear()
    run(manifest("installs", {"end_date": "2026-03-04"}, ["appsflyer_id"], **INC), "r2")
    assert [q["query"]["from"] for q in af.log] == ["2026-03-03", "2026-03-04"]  # from the watermark day
    assert clean_pg.query("dst", "select count(*) from raw.af_installs") == [(12,)]


def test_aggregate_headers_become_column_names(af, clean_pg) -> None:
    keys = ["date", "agency_pmd", "media_source", "campaign"]
    with pytest.raises(Exception, match="field 'total_cost'"):  # "N/A" is not a number: named clearly
        run(manifest("partners_by_date", {"start_date": "2026-03-01", "end_date": "2026-03-02"}, keys), "r1")
    report = run(
        manifest("partners_by_date", {"start_date": "2026-03-03", "end_date": "2026-03-03"}, keys), "r2"
    )
    assert report.rows == 1
    assert clean_pg.query(
        "dst", "select media_source, installs, total_revenue::text from raw.af_partners_by_date"
    ) == [("facebook", 5, "12.500000")]


def test_an_invalid_token_is_not_retried(af, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_AF"] = json.dumps({"conn_type": "http", "host": af.url, "password": "expired"})
    with pytest.raises(AuthError, match="returned 401"):
        run(
            manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-01"}, ["appsflyer_id"]),
            "r1",
        )
    assert len(af.log) == 1


def test_limits_and_server_errors_are_retried(af, clean_pg) -> None:
    af.faults = [(429, b"Limit reached", {"Retry-After": "0"}), (500, b"", {})]
    assert (
        run(
            manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-01"}, ["appsflyer_id"]),
            "r1",
        ).rows
        == 3
    )


def test_a_run_killed_mid_range_resumes_at_the_next_day(af, clean_pg) -> None:
    m = manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-04"}, ["appsflyer_id"])

    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    af.log.clear()
    run(m, "r1")
    assert [q["query"]["from"] for q in af.log] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert clean_pg.query("dst", "select count(*) from raw.af_installs") == [(12,)]


@pytest.mark.integration_live
def test_live_installs() -> None:
    token, app = os.environ.get("DPONE_LIVE_APPSFLYER_TOKEN"), os.environ.get("DPONE_LIVE_APPSFLYER_APP_ID")
    if not (token and app):
        pytest.skip("live test: set DPONE_LIVE_APPSFLYER_TOKEN and DPONE_LIVE_APPSFLYER_APP_ID")
    from airflow_provider_dpone.apis.appsflyer import AppsFlyerHook

    os.environ["AIRFLOW_CONN_AF"] = json.dumps({"conn_type": "http", "password": token})
    spec = manifest("installs", {"app_id": app}, ["appsflyer_id"]).loads[0].source
    list(AppsFlyerHook(conn_id="af").extract(spec, None).artifact.batches)
