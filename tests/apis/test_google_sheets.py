"""Google Sheets source against a fake of the Sheets v4 API and Google's OAuth token endpoint."""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, unquote

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.google_fake import SHEETS_SCOPE, GoogleTokenFake
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

CLIENT, SECRET, REFRESH = "client-1.apps.example", "gsecret-77", "1//refresh-token-abc"
SHEET = "1AbCdEfGhIjK"
TOKENS: set[str] = set()
ODD_TITLE = 'Q1/Q2 #1? "Ann\'s" 50%'  # a tab title with a slash, hash, question mark, quotes, percent
TABS: dict[str, list[list]] = {
    "Orders": [
        ["id", "customer", "amount", "paid on"],
        [1, "Ann", 10.5, "2026-01-02"],
        [2, "Bob", "", ""],
        [],
        [3, "Cy", 7],
    ],
    ODD_TITLE: [["id", "customer"], [7, "Dee"]],
    "Dupes": [["id", "name", "name", "amount", "name", "name_2"], [1, "Ann", "Lee", 5, "Jr", "x"]],
}
ISSUERS: list = []  # service-account token endpoints whose tokens the API accepts


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
    bearer = headers.get("Authorization", "").removeprefix("Bearer ")  # type: ignore[attr-defined]
    if bearer not in TOKENS and not any(bearer in issuer.tokens for issuer in ISSUERS):
        return _json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    prefix = f"/v4/spreadsheets/{SHEET}/values/"
    if path.startswith(prefix):  # Google decodes the path segment, then parses the A1 range
        a1 = unquote(path[len(prefix) :])
        title, _, _cells = a1.rpartition("!")
        if title.startswith("'") and title.endswith("'"):
            title = title[1:-1].replace("''", "'")
        if title not in TABS:
            return _json(
                400,
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": f"Unable to parse range: {a1}",
                    }
                },
            )
        return _json(200, {"range": a1, "majorDimension": "ROWS", "values": TABS[title]})
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


def raw_manifest(options: dict):
    """Each row as one json ``record`` (no ``fields``), the table replaced each run."""
    return parse_manifest(
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
                        "options": options,
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


def test_without_fields_each_row_is_one_json_record(gs, clean_pg) -> None:
    m = raw_manifest({"spreadsheet_id": SHEET, "range": "Orders!A1:D"})
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


@pytest.fixture
def sa(gs):
    """A service account: its token endpoint on its own socket, its JSON key in the connection."""
    issuer = GoogleTokenFake(SHEETS_SCOPE)
    ISSUERS.append(issuer)
    connect_key(gs, json.dumps(issuer.key()))
    yield issuer
    ISSUERS.remove(issuer)
    issuer.close()


def connect_key(gs: VendorFake, key: object) -> None:
    extra = {"service_account_key": key, "max_retries": 2}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps({"conn_type": "http", "host": gs.url, "extra": extra})


def test_a_service_account_key_signs_a_jwt_grant_and_its_token_reads_the_sheet(gs, sa, clean_pg) -> None:
    report = run(manifest("values", {"spreadsheet_id": SHEET, "range": "Orders!A1:D"}, fields=FIELDS), "r1")
    assert report.rows == 3
    assert len(sa.grants) == 1 and sa.grants[0]["iss"] == sa.email  # signature verified by the fake
    assert [r["path"] for r in gs.log] == [f"/v4/spreadsheets/{SHEET}/values/Orders!A1:D"]
    api_request = repr(gs.log)
    assert gs.log[0]["headers"]["Authorization"] == f"Bearer {sa.tokens[0]}"
    assert "assertion" not in api_request and "PRIVATE KEY" not in api_request
    assert "Authorization" not in sa.fake.log[0]["headers"]  # the token endpoint gets the assertion only


def test_a_key_given_as_an_object_with_escaped_newlines_works(gs, sa, clean_pg) -> None:
    key = sa.key()
    key["private_key"] = key["private_key"].replace("\n", "\\n")  # pasted through a one-line field
    connect_key(gs, key)
    assert run(manifest("sheets", {"spreadsheet_id": SHEET}), "r1").rows == 1
    assert len(sa.grants) == 1


def test_a_key_whose_signature_google_cannot_verify_is_refused_and_never_shown(
    gs, sa, clean_pg, caplog
) -> None:
    from tests.apis.google_fake import new_private_key

    forged = sa.key(new_private_key())  # same account and key id, another private key
    connect_key(gs, json.dumps(forged))
    with pytest.raises(AuthError, match="refused the credentials") as caught:
        run(manifest("sheets", {"spreadsheet_id": SHEET}), "r1")
    assert not sa.grants and len(sa.fake.log) == 1  # refused, not retried
    shown = str(caught.value) + caplog.text
    assert "service_account_key" in str(caught.value)
    body = forged["private_key"].splitlines()[1]
    assert body not in shown and "PRIVATE KEY" not in shown
    assert not gs.log  # no request reached the API without a token


def test_a_range_with_slash_hash_question_mark_spaces_and_quotes_is_url_encoded(gs, clean_pg) -> None:
    a1 = "'" + ODD_TITLE.replace("'", "''") + "'!A1:B"
    report = run(manifest("values", {"spreadsheet_id": SHEET, "range": a1}, fields={"id": "int64"}), "r1")
    assert report.rows == 1
    assert unquote(gs.log[-1]["path"]).endswith("/values/" + a1)


def test_duplicate_header_names_are_made_unique_not_overwritten(gs, clean_pg) -> None:
    assert run(raw_manifest({"spreadsheet_id": SHEET, "range": "Dupes!A1:F"}), "r1").rows == 1
    (record,) = clean_pg.query("dst", "select record from raw.gs_rows")[0]
    assert record == {
        "id": 1,
        "name": "Ann",
        "name_3": "Lee",  # name_2 is a header of its own further right
        "amount": 5,
        "name_4": "Jr",
        "name_2": "x",
    }


@pytest.mark.integration_live
def test_live_sheet_with_a_service_account() -> None:
    needed = ("DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY", "DPONE_LIVE_GS_SPREADSHEET")
    if not all(os.environ.get(n) for n in needed):
        pytest.skip(
            f"live test: set {', '.join(needed)} (a service account's JSON key, or the path of its "
            "file, and a spreadsheet shared with its client_email)"
        )
    from airflow_provider_dpone.apis.google_sheets import GoogleSheetsHook

    key = os.environ[needed[0]]
    if not key.lstrip().startswith("{"):
        with open(key) as f:
            key = f.read()
    extra = {"service_account_key": key}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps({"conn_type": "http", "extra": extra})
    spec = manifest("sheets", {"spreadsheet_id": os.environ[needed[1]]}).loads[0].source
    assert [r for b in GoogleSheetsHook(conn_id="gs").extract(spec, None).artifact.batches for r in b]


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
