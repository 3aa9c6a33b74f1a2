"""Google Sheets source against a fake of the Sheets v4 API and Google's OAuth token endpoint."""

from __future__ import annotations

import csv
import io
import json
import os
import re
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
TABS["Report"] = [  # a title line, a blank line, the header on row 3, a units row under it
    ["Sales report, January"],
    [],
    ["id", "customer", "amount"],
    ["", "", "EUR"],
    [1, "Ann", 5],
    [2, "Bob", 6],
]
TABS["Gaps"] = [["id", "", "amount", "", "column_2"], [1, "x", 5, "y", "z", "beyond"]]  # blank headers
GIDS = {"Orders": 0, ODD_TITLE: 1402513167, "Dupes": 77, "Report": 1822, "Gaps": 6}  # sheetId = gid
_CELLS = re.compile(r"([A-Z]*)([0-9]*)(?::([A-Z]*)([0-9]*))?")


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


def parse_a1(a1: str) -> tuple[str | None, str] | None:
    """(tab title, cells) of an A1 range as Google reads it: a quoted title (``''`` a quote) or
    an unquoted one before ``!``; no ``!``: a tab's title, else cells of the first tab (None).
    None: not a range."""
    if a1.startswith("'"):
        title, i = "", 1
        while i < len(a1):
            if a1[i] == "'" and a1[i + 1 : i + 2] == "'":
                title, i = title + "'", i + 2
            elif a1[i] == "'":
                break
            else:
                title, i = title + a1[i], i + 1
        rest = a1[i + 1 :]
        return (title, rest[1:]) if rest == "" or rest.startswith("!") else None
    if "!" in a1:
        title, _, cells = a1.partition("!")
        return title, cells
    return (a1, "") if a1 in TABS else (None, a1)


def _column(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def cut(rows: list[list], cells: str) -> list[list] | None:
    """The cells of ``rows`` in ``cells`` (``A1:D``, ``B2``, ``A:C``, ``3:9``), with the empty
    trailing cells of each row and the empty trailing rows left out, as the API answers."""
    found = _CELLS.fullmatch(cells.upper())
    if cells and found is None:
        return None
    c1, r1, c2, r2 = found.groups() if found else ("", "", None, None)
    if c2 is None and r2 is None and cells:  # one cell
        c2, r2 = c1, r1
    top, bottom = int(r1 or 1), int(r2) if r2 else len(rows)
    left, right = _column(c1) if c1 else 1, _column(c2) if c2 else 10**6
    out = [list(r[left - 1 : right]) for r in rows[top - 1 : bottom]]
    for row in out:
        while row and row[-1] in ("", None):
            row.pop()
    while out and not out[-1]:
        out.pop()
    return out


def metadata() -> dict:
    """spreadsheets.get with fields=sheets.properties: each tab's properties, in tab order."""
    return {
        "sheets": [
            {
                "properties": {
                    "sheetId": GIDS[title],
                    "title": title,
                    "index": index,
                    "sheetType": "GRID",
                    "gridProperties": {"rowCount": 1000, "columnCount": 26},
                }
            }
            for index, title in enumerate(TABS)
        ]
    }


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
        parsed = parse_a1(a1)
        title, cells = parsed if parsed else ("", "")
        title = next(iter(TABS)) if title is None else title
        rows = cut(TABS[title], cells) if title in TABS else None
        if rows is None:
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
        return _json(200, {"range": a1, "majorDimension": "ROWS", **({"values": rows} if rows else {})})
    if path == f"/v4/spreadsheets/{SHEET}":
        return _json(200, metadata())
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
    assert run(manifest("sheets", {"spreadsheet_id": SHEET}), "r1").rows == len(TABS)  # one row per tab


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
    assert run(manifest("sheets", {"spreadsheet_id": SHEET}), "r1").rows == len(TABS)  # one row per tab
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


def api_paths(fake: VendorFake) -> list[str]:
    """The Sheets API requests of a run (the token grant left out), path decoded."""
    return [unquote(r["path"]) for r in fake.log if r["path"] != "/token"]


def test_a_spreadsheet_url_gives_the_id(gs, clean_pg) -> None:
    url = f"https://docs.google.com/spreadsheets/d/{SHEET}/edit?usp=sharing#gid=0"
    report = run(manifest("values", {"spreadsheet_url": url, "range": "Orders!A1:D"}, fields=FIELDS), "r1")
    assert report.rows == 3
    assert api_paths(gs) == [f"/v4/spreadsheets/{SHEET}/values/Orders!A1:D"]


def test_a_url_without_the_spreadsheet_id_fails_naming_the_option(gs, clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    for url, problem in (
        ("https://docs.google.com/document/d/1Xyz/edit", "no '/spreadsheets/d/<id>'"),
        ("https://docs.google.com/spreadsheets/d/e/2PACX-1vQabc/pubhtml", "Publish to the web"),
    ):
        with pytest.raises(BadInputError, match=re.escape("source.options.spreadsheet_url")) as caught:
            run(manifest("values", {"spreadsheet_url": url, "range": "A1:B"}), "r1")
        assert problem in str(caught.value)
    with pytest.raises(BadInputError, match="not both"):
        run(
            manifest("values", {"spreadsheet_url": f"/spreadsheets/d/{SHEET}", "spreadsheet_id": SHEET}), "r1"
        )
    assert not gs.log  # refused before any request


def test_without_a_range_the_first_tab_is_read_after_one_metadata_request(gs, clean_pg) -> None:
    report = run(manifest("values", {"spreadsheet_id": SHEET}, fields=FIELDS), "r1")
    assert report.rows == 3
    assert api_paths(gs) == [f"/v4/spreadsheets/{SHEET}", f"/v4/spreadsheets/{SHEET}/values/'Orders'"]
    meta = next(r for r in gs.log if r["path"] == f"/v4/spreadsheets/{SHEET}")
    assert meta["query"]["fields"] == "sheets.properties"


def test_a_tab_by_index_or_by_title_with_cells_is_quoted_and_encoded(gs, clean_pg) -> None:
    report = run(
        manifest("values", {"spreadsheet_id": SHEET, "sheet_index": 1}, fields={"id": "int64"}), "r1"
    )
    assert report.rows == 1
    quoted = "'" + ODD_TITLE.replace("'", "''") + "'"
    assert api_paths(gs)[-1] == f"/v4/spreadsheets/{SHEET}/values/{quoted}"
    assert "%2F" in gs.log[-1]["path"] and "%23" in gs.log[-1]["path"]  # / and # encoded, not path parts
    m = raw_manifest({"spreadsheet_id": SHEET, "sheet": "Orders", "cells": "A1:B"})
    assert run(m, "r2").rows == 3
    assert api_paths(gs)[-1] == f"/v4/spreadsheets/{SHEET}/values/'Orders'!A1:B"
    records = [r for (r,) in clean_pg.query("dst", "select record from raw.gs_rows order by 1")]
    assert {tuple(r) for r in records} == {("id", "customer")}  # only the cells asked for


def test_an_unknown_tab_names_the_tabs_there_are(gs, clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    with pytest.raises(BadInputError, match=re.escape("source.options.sheet: no tab 'Order'")) as caught:
        run(manifest("values", {"spreadsheet_id": SHEET, "sheet": "Order"}), "r1")
    assert "'Orders', " in str(caught.value) and repr(ODD_TITLE) in str(caught.value)
    with pytest.raises(BadInputError, match=f"sheet_index: 9, but the spreadsheet has {len(TABS)} tab"):
        run(manifest("values", {"spreadsheet_id": SHEET, "sheet_index": 9}), "r2")
    assert all("/values/" not in p for p in api_paths(gs))  # only the metadata was read


def test_contradicting_tab_options_are_refused_before_any_request(gs, clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    for options, message in (
        ({"range": "Orders!A1:D", "sheet": "Orders"}, "range names its tab and cells itself"),
        ({"range": "Orders!A1:D", "cells": "A1:B"}, "range names its tab and cells itself"),
        ({"sheet": "Orders", "sheet_index": 0}, "not both"),
        ({"cells": "Orders!A1:B"}, "source.options.cells"),
        ({"gid": 0}, "only for auth published_csv"),
        ({"header_row": 0}, "source.options.header_row: a whole number >= 1"),
        ({"skip_rows": -1}, "source.options.skip_rows"),
    ):
        with pytest.raises(BadInputError, match=message):
            run(manifest("values", {"spreadsheet_id": SHEET, **options}), "r1")
    assert not gs.log


def test_header_row_and_skip_rows_choose_the_names_and_the_first_record(gs, clean_pg) -> None:
    options = {"spreadsheet_id": SHEET, "sheet": "Report", "header_row": 3, "skip_rows": 1}
    assert run(raw_manifest(options), "r1").rows == 2
    records = [r for (r,) in clean_pg.query("dst", "select record from raw.gs_rows order by record->>'id'")]
    assert records == [{"id": 1, "customer": "Ann", "amount": 5}, {"id": 2, "customer": "Bob", "amount": 6}]


def test_blank_header_cells_become_column_n_and_keep_their_data(gs, clean_pg) -> None:
    # Before: a column under a blank header was dropped, and so was a cell past the header's end.
    assert run(raw_manifest({"spreadsheet_id": SHEET, "range": "Gaps!A1:F"}), "r1").rows == 1
    (record,) = clean_pg.query("dst", "select record from raw.gs_rows")[0]
    assert record == {
        "id": 1,
        "column_2_2": "x",  # column 2 is blank, and a header of its own is already column_2
        "amount": 5,
        "column_4": "y",
        "column_2": "z",
        "column_6": "beyond",  # past the header (the API trims its empty trailing cells)
    }


def test_csv_rows_drop_a_bom_and_share_the_header_handling() -> None:
    from airflow_provider_dpone.apis.google_sheets import csv_rows, table_records

    rows = csv_rows('\ufeffid,,"a, b"\r\n1,x,"say ""hi"""\r\n,,\r\n'.encode())
    assert rows[0] == ["id", "", "a, b"]  # no BOM glued to the first name
    assert table_records(rows) == [{"id": "1", "column_2": "x", "a, b": 'say "hi"'}]


# --- published CSV: docs.google.com's export, Google's redirect to its content host -------------

PRIVATE = "1PrivateSheet"


def export_csv(title: str) -> bytes:
    """A tab as the export writes it: every row as wide as the widest, cells as text."""
    rows = TABS[title]
    width = max(len(r) for r in rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([[*map(str, r), *[""] * (width - len(r))] for r in rows])
    return out.getvalue().encode()


class Docs:
    """``docs.google.com`` (the connection's host): ``/spreadsheets/d/{id}/export?format=csv&gid=``
    answers 307 to a ``doc-*-sheets.googleusercontent.com`` address (another origin) that serves
    the CSV; a sheet not shared by link goes to the sign-in page (an HTML page), an unknown id 404."""

    def __init__(self) -> None:
        self.content = VendorFake(self.serve)
        self.export = VendorFake(self.redirect)

    def redirect(self, method: str, path: str, query: dict, headers: object, body: bytes):
        gid = query.get("gid", "0")
        if path == f"/spreadsheets/d/{PRIVATE}/export":
            return 302, b"", {"Location": f"{self.content.url}/ServiceLogin?continue=x"}
        if path != f"/spreadsheets/d/{SHEET}/export" or query.get("format") != "csv":
            return 404, b"<html>Not Found</html>", {"Content-Type": "text/html"}
        location = f"{self.content.url}/export/54bog/s3qi/1772106225000/*/{SHEET}?format=csv&gid={gid}"
        return 307, b"", {"Location": location, "Set-Cookie": "NID=511=abc; Domain=127.0.0.1; Path=/"}

    def serve(self, method: str, path: str, query: dict, headers: object, body: bytes):
        if path == "/ServiceLogin":
            return 200, b"<!DOCTYPE html><html>Sign in</html>", {"Content-Type": "text/html; charset=utf-8"}
        titles = {str(gid): title for title, gid in GIDS.items()}
        if not path.endswith(f"/{SHEET}") or query.get("gid") not in titles:
            return 400, b"<html>Bad Request</html>", {"Content-Type": "text/html"}
        return 200, export_csv(titles[query["gid"]]), {"Content-Type": "text/csv; charset=utf-8"}

    def close(self) -> None:
        self.export.close()
        self.content.close()


@pytest.fixture
def docs(gs, sa):
    """A published_csv connection that also holds every credential the API connection could."""
    found = Docs()
    extra = {
        "auth": "published_csv",
        "service_account_key": json.dumps(sa.key()),
        "refresh_token": REFRESH,
        "token_url": f"{gs.url}/token",
        "headers": {"Authorization": "Bearer planted-token", "X-Goog-Api-Key": "planted-key"},
        "max_retries": 2,
    }
    os.environ["AIRFLOW_CONN_GS"] = json.dumps(
        {"conn_type": "http", "host": found.export.url, "login": CLIENT, "password": SECRET, "extra": extra}
    )
    yield found
    found.close()


def test_published_csv_reads_the_export_without_any_credential(gs, sa, docs, clean_pg) -> None:
    url = f"https://docs.google.com/spreadsheets/d/{SHEET}/edit#gid=0"
    report = run(manifest("values", {"spreadsheet_url": url}, fields=FIELDS), "r1")
    assert report.rows == 3
    rows = clean_pg.query(
        "dst", 'select id, customer, amount::text, "paid on"::text from raw.gs_values order by id'
    )
    assert rows == [(1, "Ann", "10.50", "2026-01-02"), (2, "Bob", None, None), (3, "Cy", "7.00", None)]
    assert [r["path"] for r in docs.export.log] == [f"/spreadsheets/d/{SHEET}/export"]
    assert dict(docs.export.log[0]["query"]) == {"format": "csv", "gid": "0"}
    assert docs.content.log[0]["path"].startswith("/export/")  # the redirect was followed
    for request in docs.export.log + docs.content.log:
        names = {k.lower() for k in request["headers"]}
        assert not names & {"authorization", "cookie", "x-goog-api-key"}
        shown = repr(request)
        assert all(s not in shown for s in (SECRET, CLIENT, REFRESH, "planted", "ya29", "assertion"))
    assert not gs.log and not sa.fake.log  # no token was asked for


def test_published_csv_takes_gid_and_the_same_header_options(gs, sa, docs, clean_pg) -> None:
    options = {"spreadsheet_id": SHEET, "gid": GIDS["Report"], "header_row": 3, "skip_rows": 1}
    assert run(raw_manifest(options), "r1").rows == 2
    assert docs.export.log[0]["query"]["gid"] == str(GIDS["Report"])
    records = [r for (r,) in clean_pg.query("dst", "select record from raw.gs_rows order by record->>'id'")]
    assert records == [
        {"id": "1", "customer": "Ann", "amount": "5"},
        {"id": "2", "customer": "Bob", "amount": "6"},
    ]


def test_published_csv_of_a_sheet_not_shared_by_link_fails_clearly(gs, sa, docs, clean_pg) -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    with pytest.raises(BadInputError, match=r"HTML page, not CSV.*Anyone with the link"):
        run(raw_manifest({"spreadsheet_id": PRIVATE}), "r1")
    assert docs.content.log[0]["path"] == "/ServiceLogin"  # sign-in page reached without credentials
    assert "authorization" not in {k.lower() for k in docs.content.log[0]["headers"]}


def test_published_csv_defaults_to_docs_google_com_and_refuses_api_only_options(gs) -> None:
    from airflow_provider_dpone.apis.google_sheets import GoogleSheetsHook
    from airflow_provider_dpone.contracts.errors import BadInputError

    extra = {"auth": "published_csv", "refresh_token": REFRESH}
    os.environ["AIRFLOW_CONN_GS"] = json.dumps({"conn_type": "http", "extra": extra})
    spec = manifest("values", {"spreadsheet_id": SHEET, "gid": 7}).loads[0].source
    plan, _ = GoogleSheetsHook(conn_id="gs").plan_extract(spec, None)
    assert plan["request"] == f"GET https://docs.google.com/spreadsheets/d/{SHEET}/export"
    assert plan["params"] == {"format": "csv", "gid": 7}
    for resource, options, message in (
        ("sheets", {"spreadsheet_id": SHEET}, "'sheets' needs the Sheets API"),
        ("values", {"spreadsheet_id": SHEET, "range": "A1:B"}, "need the Sheets API"),
        ("values", {"spreadsheet_id": SHEET, "sheet": "Orders"}, "need the Sheets API"),
    ):
        with pytest.raises(BadInputError, match=message):
            GoogleSheetsHook(conn_id="gs").plan_extract(manifest(resource, options).loads[0].source, None)
    assert not gs.log


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
