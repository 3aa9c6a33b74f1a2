"""FastTrack (Fasttrack, fstrk.io), the chat-bot and messaging platform: two HTTP surfaces.

- Dashboard reports, ``GET {host}/reports/?type=...&uuid=...`` on the connection's host
  (default ``https://dashboard.fstrk.io/api/partners``) with header ``bot-key`` (the password):
  one ``;`` CSV per request, possibly gzip without ``Content-Encoding`` (detected by its magic
  bytes) and with a UTF-8 BOM. Russian headers are transliterated to snake_case.
- Flex tickets, ``GET {flex_endpoint}/ticket/?category=...&page_size=...`` on the tenant's flex
  host (extra ``flex_endpoint``) with header ``X-Token`` (extra ``flex_x_token``): DRF JSON
  ``{count, next, previous, results}``, ``next`` absolute or host-relative.

Each credential goes only to its own origin (``_authorize_other``). Every option but the few
dpone reads itself is sent as a query parameter (``uuid``, ``category``, ``date_from``, ...).
There is no server-side watermark: a keyed report is re-read and merged each run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any

from ..contracts.connectors import CONNECTORS
from ..contracts.errors import BadInputError, SourceContractError
from ..contracts.records import as_bool
from ..contracts.sources import ResourceSource, SourceSpec, source_of
from ..hooks.rest import DponeRestHook
from ..hooks.rest_http import Origin, origin_of
from .base import ApiHook, ApiSource, Resource, ResourceRead

log = logging.getLogger(__name__)

DASHBOARD_URL = "https://dashboard.fstrk.io/api/partners/"
SESSION_DATE = "%d-%m-%Y %H:%M:%S"
_FALLBACK_DATES = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")
PARSE_ENV = "DPONE_PARSE_TEMPORAL_FIELDS_DEFAULT"
# Options dpone reads itself; every other option is a query parameter.
NOT_PARAMS = frozenset(
    {
        "resource",
        "batch_size",
        "unique_key",
        "incremental_column",
        "lookback_days",
        "full_refresh_days",
        "log_sample_rows",
        "table_labels",
        "table_description",
        "technical_columns",
        "include_technical_columns",
        "apply_table_metadata",
        "connection_id",
        "connection_type",
        "vault_path",
        "parse_temporal_fields",
        "timeout",
        "max_retries",
        "retries",
        "retry_delay",
        "rate_limit_delay",
    }
)

_LATIN = "a b v g d e e zh z i i k l m n o p r s t u f h ts ch sh sch - y - e yu ya"  # - : dropped
_CYRILLIC = {
    c: ("" if t == "-" else t)
    for c, t in zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", _LATIN.split(), strict=True)
}
_TRANSLIT = str.maketrans(_CYRILLIC | {c.upper(): t.capitalize() for c, t in _CYRILLIC.items()})


def column_name(header: str) -> str:
    """A CSV header or JSON key as a column: ``Дата начала`` -> ``data_nachala``,
    ``doneAt`` -> ``done_at``, ``1st`` -> ``column_1st``, ``""`` -> ``column``."""
    text = re.sub(r"[-\s]", "_", header.translate(_TRANSLIT))
    text = re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()
    text = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]+", "_", text)).strip("_")
    if not text:
        return "column"
    return f"column_{text}" if text[0].isdigit() else text


def column_names(headers: list[str]) -> list[str]:
    """Each header's column; a name taken before gets ``_2``, ``_3``, ... in order."""
    taken: set[str] = set()
    out = []
    for header in headers:
        name, n = column_name(header), 1
        unique = name
        while unique in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique)
        out.append(unique)
    return out


def parse_when(value: Any, fmt: str | None) -> dt.datetime | str | None:
    """A report date as naive UTC: the resource's format, ISO 8601 (``Z`` too), then
    ``YYYY-MM-DD[ T]HH:MM:SS[.f]``. Empty is None; anything else is returned as it was."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    parsed: dt.datetime | None = None
    for attempt in (fmt, None, *_FALLBACK_DATES):
        try:
            if attempt is None:
                parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
            else:
                parsed = dt.datetime.strptime(text, attempt)
            break
        except ValueError:
            continue
    if parsed is None:
        return text
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed


def _inflated(content: bytes, limit: int) -> bytes:
    """Every gzip member of ``content``, inflated up to ``limit`` bytes; a body cut short (no end
    of stream) fails instead of loading the rows before the cut."""
    out, data = bytearray(), content
    while data:
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflate.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise SourceContractError(f"FastTrack report: a gzip body that does not inflate: {exc}") from None
        if len(out) > limit or inflate.unconsumed_tail:
            raise SourceContractError(
                f"FastTrack report: the gzip body inflates past {limit:,} bytes; raise the connection "
                "extra max_response_bytes, or narrow the report with date_from/date_to"
            )
        if not inflate.eof:
            raise SourceContractError(
                "FastTrack report: the gzip body ends before its end of stream (cut short); nothing "
                "was loaded"
            )
        data = inflate.unused_data
    return bytes(out)


def report_rows(content: bytes, charset: str | None, limit: int) -> list[dict[str, str | None]]:
    """A dashboard report's rows by header: gunzipped when the body starts with the gzip magic
    (up to ``limit`` bytes), decoded as UTF-8 (a BOM dropped) or the answer's charset, split on
    ``;``. An empty or blank body is no rows."""
    if content[:2] == b"\x1f\x8b":
        content = _inflated(content, limit)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode(charset or "utf-8", errors="replace")
    if not text.strip():
        return []
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


@dataclass(frozen=True)
class Shape:
    """How one resource's records are shaped: its date fields and their format."""

    surface: str  # dashboard | flex
    dates: tuple[str, ...]
    date_format: str | None = None  # None: ISO 8601 with the fallbacks


@dataclass(frozen=True, eq=False)
class FastTrackRead(ResourceRead):
    """A read whose records get column names and dates (``parse`` off: dates stay text);
    each record also keeps every column as read under ``record`` (json)."""

    shape: Shape = Shape("dashboard", ())
    parse: bool = True

    def records(self, payload: Any, selector: str) -> Any:
        if isinstance(payload, dict):  # a flex page
            found = payload.get("results")
            if found is None:
                if "results" not in payload:
                    log.warning(
                        "FastTrack flex page without 'results' (keys %s): no rows", sorted(payload)[:20]
                    )
                return []
            items = found if isinstance(found, list) else [found]
            rows = [item for item in items if isinstance(item, dict)]
        else:
            rows = payload or []
        out, unparsed = [], 0
        names: dict[tuple[str, ...], list[str]] = {}
        for row in rows:
            keys = tuple("" if k is None else str(k) for k in row)
            columns = names.get(keys) or names.setdefault(keys, column_names(list(keys)))
            record = dict(zip(columns, row.values(), strict=True))
            shaped: dict[str, Any] = {**record, "record": dict(record)}
            for name in self.shape.dates if self.parse else ():
                value = parse_when(record.get(name), self.shape.date_format)
                if isinstance(value, str):  # the original stays in `record`
                    unparsed += 1
                    value = None
                shaped[name] = value
            out.append(shaped)
        if unparsed:
            log.warning(
                "FastTrack %s: %d date value(s) not understood, NULL in their column (kept as text "
                "in `record`)",
                self.resource.name,
                unparsed,
            )
        return out


def _resource(name: str, path: str, params: dict[str, Any], shape: Shape, **more: Any) -> Resource:
    """A resource whose merge keys are text and date fields timestamps; ``record`` holds the row."""
    keys = more.pop("keys", ())
    fields = dict.fromkeys(keys, "string") | dict.fromkeys(shape.dates, "timestamp") | more.pop("fields", {})
    return Resource(name, path, fields | {"record": "json"}, keys, params=params, **more)


# The merge keys (and default strategies) are declared with the connector, where validation reads them.
_DEFAULTS = CONNECTORS["fasttrack"].resource_defaults
CASCADE = Shape("dashboard", ("created_at", "done_at"))
SESSIONS = Shape(
    "dashboard",
    ("data_nachala", "data_okonchaniya", "naznachen_na_komandu", "naznachen_na_operatora"),
    SESSION_DATE,
)
RATINGS = Shape("flex", ("created", "modified"))
SHAPES = {"cascade_transactions": CASCADE, "chat_sessions": SESSIONS, "flex_cms_ratings": RATINGS}

FASTTRACK = ApiSource(
    name="fasttrack",
    title="FastTrack",
    base_url=DASHBOARD_URL,
    docs_url="https://docs.fstrk.io/",
    auth="host = the dashboard base URL (default https://dashboard.fstrk.io/api/partners), password = "
    "the bot key (header bot-key); extras flex_endpoint (https://<tenant>.flex.fstrk.io/api) and "
    "flex_x_token (header X-Token) for the flex resources",
    extra={"auth": "api_key", "api_key_header": "bot-key", "requests_per_second": 5.0, "burst": 5},
    body_format="csv",
    rate_limits="no published limit; a report is one request and a flex page holds page_size (10,000) "
    "tickets. 429 and 5xx are retried honouring Retry-After",
    resources={
        "cascade_transactions": _resource(
            "cascade_transactions",
            "reports/",
            {"type": "CASCADE_TRANSACTIONS", "uuid": None},
            CASCADE,
            keys=_DEFAULTS["cascade_transactions"][1],
            fields={"phone_number": "string"},
            description="Cascade (mailing) transactions report of a bot: one row per transaction",
            required_options=("uuid",),
        ),
        "chat_sessions": _resource(
            "chat_sessions",
            "reports/",
            {"type": "SESSIONS", "uuid": None},
            SESSIONS,
            keys=_DEFAULTS["chat_sessions"][1],
            description="Chat sessions report of a bot (Russian headers, dd-mm-YYYY HH:MM:SS dates)",
            required_options=("uuid",),
        ),
        "flex_cms_ratings": _resource(
            "flex_cms_ratings",
            "ticket/",
            {"category": None, "page_size": 10_000},
            RATINGS,
            record_selector="results",
            pagination={"type": "next_url", "next_url_path": "next", "max_pages": 100_000},
            description="Flex tickets of one category (CMS ratings), paged by DRF next links",
            required_options=("category",),
        ),
    },
)


def _param(value: Any) -> Any:
    """An option as a query parameter (a YAML date as ``YYYY-MM-DD``)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return value


class FastTrackHook(ApiHook):
    api = FASTTRACK
    conn_type = "dpone_fasttrack"
    hook_name = "dpone FastTrack"

    def flex_base(self) -> str | None:
        """Extra ``flex_endpoint`` with a trailing ``/``; None when unset."""
        value = str(self._extra().get("flex_endpoint") or "").strip()
        if not value:
            return None
        if not re.match(r"https?://[^/]", value):
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': extra flex_endpoint must be a URL with its "
                "scheme, e.g. https://<tenant>.flex.fstrk.io/api"
            )
        if origin_of(value) == origin_of(self.base_url()):
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': extra flex_endpoint is on the dashboard's host; "
                "each host gets only its own key, so they must differ"
            )
        return value.rstrip("/") + "/"

    def _authorize_other(self, request: Any, there: Origin) -> bool:
        """The X-Token, only to the flex host (the bot key goes only to the dashboard)."""
        flex, token = self.flex_base(), self._extra().get("flex_x_token")
        if flex is None or not token or there != origin_of(flex):
            return False
        request.headers["X-Token"] = str(token)
        return True

    def read_of(self, spec: SourceSpec) -> FastTrackRead:
        read = super().read_of(spec)
        name, shape = read.resource.name, SHAPES[read.resource.name]
        options = read.options
        parse = as_bool(options.get("parse_temporal_fields", os.environ.get(PARSE_ENV, "true")))
        params = {**read.endpoint.params} | {
            k: _param(v) for k, v in options.items() if k not in NOT_PARAMS and v is not None
        }
        if shape.surface == "flex":
            flex = self.flex_base()
            if flex is None or not self._extra().get("flex_x_token"):
                raise BadInputError(
                    f"FastTrack '{name}' reads the flex host: set the extras flex_endpoint "
                    f"(https://<tenant>.flex.fstrk.io/api) and flex_x_token on connection '{self.dpone_conn_id}'"
                )
            updates: dict[str, Any] = {"path": flex + read.endpoint.path, "params": params}
        else:
            if not self._conn().password:
                raise BadInputError(
                    f"FastTrack '{name}' reads a dashboard report: set the bot key as the password of "
                    f"connection '{self.dpone_conn_id}'"
                )
            updates = {"params": params, "headers": {"Accept": "*/*"}}  # a CSV answer, not JSON
        endpoint = read.endpoint.model_copy(update=updates)
        fields = read.spec.fields
        if not parse and fields and not source_of(spec, ResourceSource, spec.connector).fields:
            fields = {k: ("string" if k in shape.dates else v) for k, v in fields.items()}
        source = read.spec.model_copy(update={"endpoint": endpoint, "fields": fields})
        return FastTrackRead(source, endpoint, read.resource, options, shape=shape, parse=parse)

    def plan_extract(self, spec: SourceSpec, state: Any) -> tuple[dict[str, Any], Any]:
        plan, schema = super().plan_extract(spec, state)
        path = self.read_of(spec).endpoint.path
        if "://" in path:
            plan["request"] = f"GET {path}"
        return plan, schema

    def decode(self, response: Any) -> Any:
        flex = self.flex_base()
        if flex is not None and origin_of(response.request.url) == origin_of(flex):
            return DponeRestHook.decode(self, response)
        return report_rows(response.content, response.charset_encoding, self.max_response_bytes())
