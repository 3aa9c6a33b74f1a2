"""Google Sheets API v4 (https://developers.google.com/sheets/api/reference/rest).

Auth, chosen by the connection: a service account (extra ``service_account_key``, the default;
share the sheet with its e-mail), a user's refresh token (login = client id, password = client
secret, extra ``refresh_token``), both ``rest_auth.GoogleAuth`` with scope
``spreadsheets.readonly``; or extra ``auth: published_csv``: the ``values`` of one tab read from
``https://docs.google.com/spreadsheets/d/{id}/export?format=csv&gid={gid}`` with no credential at
all (the connection's are dropped; Google's redirect to its content host is followed bare).

``values`` reads ``range`` as given, or a tab (``sheet`` title, ``sheet_index``, default the first)
found in the spreadsheet's metadata, optionally narrowed to ``cells``. Row ``header_row`` of the
range names the columns (blank: ``column_N``; repeated: ``_2``, ``_3``...), ``skip_rows`` rows
after it are skipped, each following non-blank row is a record. Declare ``source.fields`` to type
the columns; without it each row lands as one json ``record``. Every run reads the range in full.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..contracts.errors import BadInputError
from ..contracts.sources import EndpointSource, ResourceSource, SourceSpec, source_of
from ..hooks.rest_http import AuthError
from .base import ApiHook, ApiSource, Resource, ResourceRead

SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
PUBLISHED = "published_csv"  # connection extra ``auth``: the CSV export, without credentials
EXPORT_BASE = "https://docs.google.com/"
# kept as they are in the path: what an A1 range needs unescaped ('Sheet 1'!A1:B2, $A$1)
_RANGE_SAFE = "!:$'"
_ID_IN_URL = re.compile(r"/spreadsheets/d/([a-zA-Z0-9_-]+)")
# The extras a published_csv connection keeps: the transport's own, never a credential.
_TRANSPORT_EXTRAS = frozenset(
    {
        "timeout",
        "max_retries",
        "max_retry_after",
        "max_response_bytes",
        "requests_per_second",
        "burst",
        "test_path",
    }
)
_TAB_OPTIONS = ("sheet", "sheet_index", "cells")


def _free(name: str, used: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... the first not in ``used``."""
    n, unique = 1, name
    while unique in used:
        n += 1
        unique = f"{name}_{n}"
    return unique


def unique_names(header: list[str]) -> list[str]:
    """``header`` with each repeated name numbered (``name``, ``name_2``, ...), skipping numbers
    another column already has; empty names stay empty."""
    taken = set(header)
    used: set[str] = set()
    out = []
    for name in header:
        unique = _free(name, used | taken) if name and name in used else name
        used.add(unique)
        out.append(unique)
    return out


def column_names(cells: list[Any], width: int) -> list[str]:
    """The header cells (padded to ``width``) as unique column names: a blank cell is
    ``column_N`` (its 1-based position), numbered on if a header already has that name."""
    named = unique_names(
        [str(c).strip() if c is not None else "" for c in cells] + [""] * (width - len(cells))
    )
    used = set(named)
    out = []
    for position, name in enumerate(named, 1):
        if not name:
            name = _free(f"column_{position}", used)
            used.add(name)
        out.append(name)
    return out


def table_records(rows: list[list[Any]], header_row: int = 1, skip_rows: int = 0) -> list[dict[str, Any]]:
    """Rows as records: row ``header_row`` (1-based) names the columns, ``skip_rows`` rows after it
    are skipped, blank rows are dropped, empty cells are None (short rows padded)."""
    if len(rows) < header_row:
        return []
    body = [r for r in rows[header_row + skip_rows :] if any(cell not in ("", None) for cell in r)]
    header = rows[header_row - 1]
    names = column_names(list(header), max([len(header), *(len(r) for r in body)]))
    return [
        {
            name: (None if value == "" else value)
            for name, value in zip(names, list(r) + [None] * (len(names) - len(r)), strict=True)
        }
        for r in body
    ]


def value_records(body: Any) -> list[dict[str, Any]]:
    """The records of a ``values`` answer, header in its first row."""
    return table_records(body.get("values") or [])


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


def csv_rows(content: bytes, content_type: str = "") -> list[list[str]]:
    """A CSV export's rows (UTF-8, a BOM dropped). An HTML page (Google's sign-in or error page
    instead of the file) fails."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError("the CSV export is not UTF-8") from None
    head = text.lstrip()[:20].lower()
    if "html" in content_type.lower() or head.startswith(("<!doctype html", "<html")):
        raise BadInputError(
            "Google answered an HTML page, not CSV: the spreadsheet is not shared as 'Anyone with "
            "the link' (auth published_csv sends no credentials, so Google shows its sign-in "
            "page), or option gid is not one of its tabs"
        )
    return list(csv.reader(io.StringIO(text, newline="")))


def count_option(options: Mapping[str, Any], name: str, default: int, least: int) -> int:
    """Option ``name`` as a whole number of at least ``least`` (``default`` when absent)."""
    value = options.get(name)
    if value is None:
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not (isinstance(value, int) or text.isdigit()) or int(text) < least:
        raise BadInputError(f"source.options.{name}: a whole number >= {least}, got {value!r}")
    return int(text)


def spreadsheet_id_of(url: Any) -> str:
    """The id in a spreadsheet's URL (``.../spreadsheets/d/<id>/edit#gid=0``)."""
    found = _ID_IN_URL.search(str(url))
    if found is None:
        raise BadInputError(
            f"source.options.spreadsheet_url: no '/spreadsheets/d/<id>' in {str(url)[:200]!r}; paste "
            "the sheet's address (https://docs.google.com/spreadsheets/d/<id>/edit) or give spreadsheet_id"
        )
    if found.group(1) == "e":
        raise BadInputError(
            "source.options.spreadsheet_url: a 'Publish to the web' link (/spreadsheets/d/e/...) does "
            "not hold the spreadsheet's id; paste the sheet's own address (.../spreadsheets/d/<id>/edit)"
        )
    return found.group(1)


def with_spreadsheet_id(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``spreadsheet_url`` replaced by the ``spreadsheet_id`` in it."""
    out = dict(options)
    if out.get("spreadsheet_url") is not None:
        if out.get("spreadsheet_id") is not None:
            raise BadInputError("source.options: give spreadsheet_id or spreadsheet_url, not both")
        out["spreadsheet_id"] = spreadsheet_id_of(out.pop("spreadsheet_url"))
    elif out.get("spreadsheet_id") is None:
        raise BadInputError("source.options: Google Sheets needs spreadsheet_id or spreadsheet_url")
    return out


def check_values_options(options: Mapping[str, Any], published: bool) -> None:
    """Refuse options of ``values`` that contradict each other or the connection's mode."""
    given = [k for k in ("range", *_TAB_OPTIONS) if options.get(k) is not None]
    if published and given:
        raise BadInputError(
            f"source.options: {given} need the Sheets API; a connection with auth published_csv "
            "reads one whole tab, chosen by option gid (the number after #gid= in its address)"
        )
    if not published and options.get("gid") is not None:
        raise BadInputError(
            "source.options.gid: only for auth published_csv; with the Sheets API choose the tab "
            "with sheet (its title) or sheet_index"
        )
    if options.get("range") is not None and len(given) > 1:
        raise BadInputError(f"source.options: range names its tab and cells itself; drop {given[1:]}")
    if options.get("sheet") is not None and options.get("sheet_index") is not None:
        raise BadInputError("source.options: give sheet (a tab's title) or sheet_index, not both")
    if "!" in str(options.get("cells") or ""):
        raise BadInputError("source.options.cells: cells only (A1:F); name the tab with sheet")
    for name, least in (("header_row", 1), ("skip_rows", 0), ("sheet_index", 0), ("gid", 0)):
        if options.get(name) is not None:
            count_option(options, name, 0, least)


def a1_range(title: str, cells: Any = None) -> str:
    """The A1 range of a tab: its title quoted (``'`` doubled), then ``!cells`` if given."""
    quoted = "'" + title.replace("'", "''") + "'"
    return f"{quoted}!{cells}" if cells else quoted


def tab_title(body: Any, options: Mapping[str, Any]) -> str:
    """The title of the tab ``options`` choose from a spreadsheet's metadata: ``sheet`` (a title),
    ``sheet_index`` (0-based position), else the first grid tab."""
    tabs = sorted(
        (s.get("properties") or {} for s in (body or {}).get("sheets") or []),
        key=lambda p: int(p.get("index") or 0),
    )
    titles = [str(p.get("title")) for p in tabs]
    shown = ", ".join(repr(t) for t in titles) or "none"
    if options.get("sheet") is not None:
        if str(options["sheet"]) in titles:
            return str(options["sheet"])
        raise BadInputError(f"source.options.sheet: no tab {str(options['sheet'])!r}; the tabs are {shown}")
    if options.get("sheet_index") is not None:
        index = count_option(options, "sheet_index", 0, 0)
        if index < len(titles):
            return titles[index]
        raise BadInputError(
            f"source.options.sheet_index: {index}, but the spreadsheet has {len(titles)} tab(s), "
            f"counted from 0: {shown}"
        )
    grid = [str(p.get("title")) for p in tabs if p.get("sheetType", "GRID") == "GRID"]
    if not grid:
        raise BadInputError(f"the spreadsheet has no grid tab to read (its tabs: {shown})")
    return grid[0]


@dataclass(frozen=True, eq=False)
class SheetRead(ResourceRead):
    """A read whose ``values`` records take their names from row ``header_row``."""

    header_row: int = 1
    skip_rows: int = 0

    def records(self, payload: Any, selector: str) -> Any:
        if self.resource.name != "values":
            return super().records(payload, selector)
        rows = payload.get("values") if isinstance(payload, dict) else None
        return table_records(rows or [], self.header_row, self.skip_rows)


VALUE_PARAMS = {
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "FORMATTED_STRING",
    "majorDimension": "ROWS",
}

GOOGLE_SHEETS = ApiSource(
    option_aliases={"spreadsheet_id": ("spreadsheet_url",)},  # a URL holds the id (_normalized)
    name="google_sheets",
    title="Google Sheets",
    base_url="https://sheets.googleapis.com/",
    docs_url="https://developers.google.com/sheets/api/reference/rest",
    auth="service account: extra service_account_key = its JSON key (the sheet shared with its e-mail); "
    "or OAuth2 refresh token: login = client id, password = client secret, extra refresh_token; "
    "or extra auth: published_csv (a sheet anyone with the link can view; no credentials)",
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
            description="The cells of a range or tab (spreadsheets.values.get), a header row naming the columns",
            fields={},
            primary_key=(),
            params=VALUE_PARAMS,
            records=value_records,
            required_options=("spreadsheet_id",),
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

# ``values`` of a connection with auth published_csv: one tab's CSV export, no credentials; Google
# answers with a redirect to its content host (another origin), followed without any.
PUBLISHED_VALUES = Resource(
    name="values",
    path="spreadsheets/d/{spreadsheet_id}/export",
    description="One tab as CSV (docs.google.com export), a header row naming the columns",
    fields={},
    primary_key=(),
    params={"format": "csv", "gid": 0},
    required_options=("spreadsheet_id",),
    cross_origin="follow_without_credentials",
)


class GoogleSheetsHook(ApiHook):
    api = GOOGLE_SHEETS
    conn_type = "dpone_google_sheets"
    hook_name = "dpone Google Sheets"

    def published(self) -> bool:
        """Whether the connection reads published CSV (extra ``auth: published_csv``)."""
        return self._conn().extra_dejson.get("auth") == PUBLISHED

    def _read_extra(self) -> dict[str, Any]:
        """Published CSV: the transport's extras only, auth ``none`` (no key, token or header)."""
        extra = super()._read_extra()
        if extra.get("auth") != PUBLISHED:
            return extra
        return {k: v for k, v in extra.items() if k in _TRANSPORT_EXTRAS} | {"auth": "none"}

    def base_url(self) -> str:
        if self.published() and not self._conn().host:
            return EXPORT_BASE
        return super().base_url()

    def dataset(self, table: str) -> dict[str, str]:
        namespace = EXPORT_BASE if self.published() else self.api.base_url
        return {"namespace": namespace.rstrip("/"), "name": table}

    def _normalized(self, spec: SourceSpec) -> ResourceSource:
        """``spec`` with ``spreadsheet_id`` (from ``spreadsheet_url`` if given), options checked."""
        source = source_of(spec, ResourceSource, spec.connector)
        options = with_spreadsheet_id(source.options)
        if source.resource == "values":
            check_values_options(options, self.published())
        return source.model_copy(update={"options": options})

    def resource(self, spec: SourceSpec) -> Resource:
        found = super().resource(self._normalized(spec))
        if not self.published():
            return found
        if found.name != "values":
            raise BadInputError(
                f"source.resource: '{found.name}' needs the Sheets API; connection "
                f"'{self.dpone_conn_id}' has auth published_csv, which reads only 'values' (one tab)"
            )
        return PUBLISHED_VALUES

    def read_of(self, spec: SourceSpec) -> SheetRead:
        read = super().read_of(self._normalized(spec))
        header_row = count_option(read.options, "header_row", 1, 1)
        skip_rows = count_option(read.options, "skip_rows", 0, 0)
        return SheetRead(
            read.spec, read.endpoint, read.resource, read.options, header_row=header_row, skip_rows=skip_rows
        )

    def effective(self, spec: SourceSpec) -> EndpointSource:
        """The endpoint with the spreadsheet id and the A1 range URL-encoded into its path (a tab
        title may hold ``/``, ``#``, ``?``, ``%``, spaces or quotes); published CSV: the export
        of tab ``gid``."""
        source = self._normalized(spec)
        options = source.options
        updates: dict[str, Any] = {"spreadsheet_id": quote(str(options["spreadsheet_id"]), safe="")}
        if self.published():
            updates["gid"] = count_option(options, "gid", 0, 0)
        elif source.resource == "values":
            updates["range"] = quote(self._a1(source), safe=_RANGE_SAFE)
        filled = {k: v for k, v in options.items() if k not in _TAB_OPTIONS} | updates  # range replaces them
        found = super().effective(source.model_copy(update={"options": filled}))
        if not self.published():
            return found
        endpoint = found.endpoint.model_copy(update={"headers": {"Accept": "text/csv, */*"}})
        return found.model_copy(update={"endpoint": endpoint})

    def _a1(self, source: ResourceSource) -> str:
        """Option ``range`` as given, else the chosen tab's (one metadata request)."""
        options = source.options
        if options.get("range") is not None:
            return str(options["range"])
        path = f"v4/spreadsheets/{quote(str(options['spreadsheet_id']), safe='')}"
        answer = self.request(
            "GET", path, params={"fields": "sheets.properties"}, pace=source.requests_per_second
        )
        return a1_range(tab_title(self.decode(answer), options), options.get("cells"))

    def decode(self, response: Any) -> Any:
        if not self.published():
            return super().decode(response)
        try:
            return {"values": csv_rows(response.content, response.headers.get("Content-Type", ""))}
        except BadInputError as exc:
            shown = self.redactor().redact(str(response.request.url.copy_with(query=None)))
            raise BadInputError(f"GET {shown}: {exc}") from None

    def refusal(self, status: int, body: str, shown: str) -> Exception | None:
        """Published CSV: 401/403 is a sheet not shared by link, 404 an unknown id."""
        if not self.published() or status not in (401, 403, 404):
            return None
        if status == 404:
            return BadInputError(f"{shown} returned 404: no spreadsheet with this id; check spreadsheet_id")
        return AuthError(
            f"{shown} returned {status}: the spreadsheet is not readable without credentials (auth "
            "published_csv); share it as 'Anyone with the link: Viewer', or use a service account; not retried"
        )
