"""Google Sheets API v4 (https://developers.google.com/sheets/api/reference/rest).

Auth (``rest_auth.GoogleAuth``): a service account, whose JSON key is the connection's extra
``service_account_key`` (the default: share the sheet with the account's e-mail), or a user's
refresh token (login = client id, password = client secret, extra ``refresh_token``); scope
``spreadsheets.readonly``. The A1 range is URL-encoded into the path. A range's first row holds
the column names (a repeated name gets ``_2``, ``_3``...); each following row becomes a record.
Declare ``source.fields`` to type the columns you want (by their header names); without it each
row lands as one json ``record``. Sheets have no change filter: every run reads the range in full.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..contracts.sources import EndpointSource, ResourceSource, SourceSpec, source_of
from .base import ApiHook, ApiSource, Resource

SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
# kept as they are in the path: what an A1 range needs unescaped ('Sheet 1'!A1:B2, $A$1)
_RANGE_SAFE = "!:$'"


def unique_names(header: list[str]) -> list[str]:
    """``header`` with each repeated name numbered (``name``, ``name_2``, ...), skipping numbers
    another column already has; empty names stay empty (their column is dropped)."""
    taken = set(header)
    used: set[str] = set()
    out = []
    for name in header:
        unique = name
        if name and name in used:
            n = 2
            while f"{name}_{n}" in used or f"{name}_{n}" in taken:
                n += 1
            unique = f"{name}_{n}"
        used.add(unique)
        out.append(unique)
    return out


def value_records(body: Any) -> list[dict[str, Any]]:
    rows = body.get("values") or []
    if not rows:
        return []
    header = unique_names([str(h).strip() for h in rows[0]])
    out = []
    for row in rows[1:]:
        if not any(cell not in ("", None) for cell in row):
            continue  # blank lines inside the range
        padded = list(row) + [None] * (len(header) - len(row))  # the API trims trailing empty cells
        out.append(
            {
                name: (None if value == "" else value)
                for name, value in zip(header, padded, strict=False)
                if name
            }
        )
    return out


def sheet_records(body: Any) -> list[dict[str, Any]]:
    return [
        {
            "sheet_id": (s.get("properties") or {}).get("sheetId"),
            "title": (s.get("properties") or {}).get("title"),
            "index": (s.get("properties") or {}).get("index"),
            "row_count": ((s.get("properties") or {}).get("gridProperties") or {}).get("rowCount"),
            "column_count": ((s.get("properties") or {}).get("gridProperties") or {}).get("columnCount"),
        }
        for s in body.get("sheets") or []
    ]


GOOGLE_SHEETS = ApiSource(
    name="google_sheets",
    title="Google Sheets",
    base_url="https://sheets.googleapis.com/",
    docs_url="https://developers.google.com/sheets/api/reference/rest",
    auth="service account: extra service_account_key = its JSON key (the sheet shared with its e-mail); "
    "or OAuth2 refresh token: login = client id, password = client secret, extra refresh_token",
    extra={
        "auth": "google",
        "service_account_scope": SCOPE,
        "grant_type": "refresh_token",
        "token_url": "https://oauth2.googleapis.com/token",
        "token_auth": "body",
        "requests_per_second": 5.0,
    },
    rate_limits="read requests: 300 per minute per project and 60 per minute per user; over it the API "
    "answers 429 RESOURCE_EXHAUSTED, retried with backoff",
    resources={
        "values": Resource(
            name="values",
            path="v4/spreadsheets/{spreadsheet_id}/values/{range}",
            description="The cells of a range (spreadsheets.values.get), first row = column names",
            fields={},
            primary_key=(),
            params={
                "valueRenderOption": "UNFORMATTED_VALUE",
                "dateTimeRenderOption": "FORMATTED_STRING",
                "majorDimension": "ROWS",
            },
            records=value_records,
            required_options=("spreadsheet_id", "range"),
        ),
        "sheets": Resource(
            name="sheets",
            path="v4/spreadsheets/{spreadsheet_id}",
            description="The tabs of a spreadsheet with their sizes (spreadsheets.get, fields=sheets.properties)",
            fields={
                "sheet_id": "int64",
                "title": "string",
                "index": "int32",
                "row_count": "int64",
                "column_count": "int64",
            },
            primary_key=("sheet_id",),
            params={"fields": "sheets.properties"},
            records=sheet_records,
            required_options=("spreadsheet_id",),
        ),
    },
)


class GoogleSheetsHook(ApiHook):
    api = GOOGLE_SHEETS
    conn_type = "dpone_google_sheets"
    hook_name = "dpone Google Sheets"

    def effective(self, spec: SourceSpec) -> EndpointSource:
        """The endpoint with the spreadsheet id and the A1 range URL-encoded into its path (a
        tab title may hold ``/``, ``#``, ``?``, ``%``, spaces or quotes)."""
        source = source_of(spec, ResourceSource, spec.connector)
        encoded = {
            name: quote(str(source.options[name]), safe=safe)
            for name, safe in (("spreadsheet_id", ""), ("range", _RANGE_SAFE))
            if name in source.options
        }
        return super().effective(source.model_copy(update={"options": {**source.options, **encoded}}))
