"""Google Sheets source against a fake of the Sheets v4 API and Google's OAuth token endpoint."""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, unquote

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

CLIENT, SECRET, REFRESH = "client-1.apps.example", "gsecret-77", "1//refresh-token-abc"
SHEET = "1AbCdEfGhIjK"
TOKENS: set[str] = set()


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if path == "/token":
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        good = form == {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH,
            "client_id": CLIENT,
            "client_secret": SECRET,
        }
        if not good:
            return _json(400, {"error": "invalid_grant"})
        token = f"ya29.token{len(TOKENS)}"
        TOKENS.add(token)
        return _json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
    if headers.get("Authorization", "").removeprefix("Bearer ") not in TOKENS:  # type: ignore[attr-defined]
        return _json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    if (
        path == f"/v4/spreadsheets/{SHEET}/values/{'Orders!A1:D'}"
        or unquote(path) == f"/v4/spreadsheets/{SHEET}/values/Orders!A1:D"
    ):
        values = [
            ["id", "customer", "amount", "paid on"],
            [1, "Ann", 10.5, "2026-01-02"],
            [2, "Bob", "", ""],
            [],
            [3, "Cy", 7],
        ]
        return _json(200, {"range": "Orders!A1:D6", "majorDimension": "ROWS", "values": values})
    if path == f"/v4/spreadsheets/{SHEET}":
        sheets = [
            {
                "properties": {
                    "sheetId": 0,
                    "title": "Orders",
                    "index": 0,
                    "gridProperties": {"rowCount": 1000, "columnCount": 26},
                }
            }
        ]
        return _json(200, {"sheets": sheets})
    return _json(
        403,
        {
            "error": {
                "code": 403,
                "status": "PERMISSION_DENIED",
                "message": "The caller does not have permission",
            }
        },
    )


@pytest.fixture
def gs():
    TOKENS.clear()
    fake = VendorFake(route)
    extra = {"refresh_token": REFRESH, "token_url": f"{fake.url}/token", "max_retries": 2}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "login": CLIENT, "password": SECRET, "extra": extra}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, **source):
    keys = {"values": ["id"], "sheets": ["sheet_id"]}[resource]
    return parse_manifest(
        {
            "pipeline": "sheets",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "google_sheets",
                        "conn_id": "gs",
                        "resource": resource,
                        "options": options,
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.gs_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": keys,
                    },
                }
            ],
        }
    )


FIELDS = {"id": "int64", "customer": "string", "amount": "decimal(10,2)", "paid on": "date"}


def test_a_range_becomes_typed_rows_by_header(gs, clean_pg) -> None:
    report = run(manifest("values", {"spreadsheet_id": SHEET, "range": "Orders!A1:D"}, fields=FIELDS), "r1")
    assert report.rows == 3  # the blank line is skipped
    rows = clean_pg.query(
        "dst", 'select id, customer, amount::text, "paid on"::text from raw.gs_values order by id'
    )
    assert rows == [(1, "Ann", "10.50", "2026-01-02"), (2, "Bob", None, None), (3, "Cy", "7.00", None)]
    assert gs.log[0]["path"] == "/token" and gs.log[1]["query"]["valueRenderOption"] == "UNFORMATTED_VALUE"


def test_without_fields_each_row_is_one_json_record(gs, clean_pg) -> None:
    m = parse_manifest(
        {
            "pipeline": "sheets",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": "raw",
                    "source": {
                        "connector": "google_sheets",
                        "conn_id": "gs",
                        "resource": "values",
                        "options": {"spreadsheet_id": SHEET, "range": "Orders!A1:D"},
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": "raw.gs_rows",
                        "strategy": "full_refresh",
                    },
                }
            ],
        }
    )
    assert run(m, "r1").rows == 3
    assert clean_pg.query("dst", "select record->>'customer' from raw.gs_rows order by 1") == [
        ("Ann",),
        ("Bob",),
        ("Cy",),
    ]


def test_a_refused_refresh_token_and_a_forbidden_sheet_fail_without_retries(gs, clean_pg) -> None:
    with pytest.raises(AuthError, match="returned 403"):
        run(
            manifest("values", {"spreadsheet_id": "not-shared", "range": "A1:B"}, fields={"id": "int64"}),
            "r1",
        )
    extra = {"refresh_token": "revoked", "token_url": f"{gs.url}/token"}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps(
        {"conn_type": "http", "host": gs.url, "login": CLIENT, "password": SECRET, "extra": extra}
    )
    with pytest.raises(AuthError, match="refused the credentials") as caught:
        run(manifest("sheets", {"spreadsheet_id": SHEET}), "r2")
    assert SECRET not in str(caught.value)


def test_quota_and_server_errors_are_retried(gs, clean_pg) -> None:
    gs.faults = [
        _json(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}, {"Retry-After": "0"}),
        _json(503, {}),
    ]
    assert run(manifest("sheets", {"spreadsheet_id": SHEET}), "r1").rows == 1


@pytest.mark.integration_live
def test_live_sheet() -> None:
    needed = (
        "DPONE_LIVE_GS_CLIENT_ID",
        "DPONE_LIVE_GS_CLIENT_SECRET",
        "DPONE_LIVE_GS_REFRESH_TOKEN",
        "DPONE_LIVE_GS_SPREADSHEET",
    )
    if not all(os.environ.get(n) for n in needed):
        pytest.skip(
            f"live test: set {', '.join(needed)} (an OAuth client, a refresh token and a readable sheet)"
        )
    from airflow_provider_dpone.apis.google_sheets import GoogleSheetsHook

    extra = {"refresh_token": os.environ["DPONE_LIVE_GS_REFRESH_TOKEN"]}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps(
        {
            "conn_type": "http",
            "login": os.environ[needed[0]],
            "password": os.environ[needed[1]],
            "extra": extra,
        }
    )
    spec = manifest("sheets", {"spreadsheet_id": os.environ[needed[3]]}).loads[0].source
    assert [r for b in GoogleSheetsHook(conn_id="gs").extract(spec, None).artifact.batches for r in b]
