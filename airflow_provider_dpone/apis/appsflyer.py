"""AppsFlyer Pull API v5: raw data and aggregate reports as CSV (https://dev.appsflyer.com/hc/reference).

Auth: the API V2 token in the connection's password, sent as ``Authorization: Bearer``; reports
are asked for with ``Accept: text/csv``. Reports take ``from``/``to`` dates, filtered on the
server: dpone asks one day at a time from the watermark, so a failed run resumes at the first
day not yet staged. CSV headers become column names (``Event Time`` -> ``event_time``,
``Media Source (pid)`` -> ``media_source``). One app (``options.app_id``) or several
(``options.app_ids``): each day is read for each app in turn, and every row names its app in
``app_id`` (the raw reports' own ``App ID`` column; the aggregate reports have none).

Raw reports send ``maximum_rows`` (1,000,000 unless ``options.maximum_rows`` says otherwise);
the API cuts a report there without saying so. A report that reaches 98% of it is not loaded:
its window is split in halves (``from``/``to`` as ``YYYY-MM-DD HH:MM:SS``) down to a minute, and a
window that cannot be split further fails. The daily quotas answer 400/403/429 with their own
text: that is a :class:`QuotaExceededError`, neither retried nor a credentials error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..contracts.errors import BadInputError, QuotaExceededError, SourceContractError
from ..contracts.sources import PaginationSpec, ResourceSource, SourceSpec, source_of
from ..hooks.rest import Read
from ..hooks.rest_http import ResponseTooLargeError
from .base import ApiHook, ApiSource, Resource, day_range, resource_read

MAX_ROWS = 1_000_000  # the API's largest maximum_rows, and what dpone asks for by default
TRUNCATED = 0.98  # a report with this share of maximum_rows is taken as cut at the cap
MIN_SLICE = dt.timedelta(seconds=60)  # windows are not split below this
STAMP = "%Y-%m-%d %H:%M:%S"
QUOTA = re.compile(
    r"maximum number of install reports that can be downloaded today|limit reached for daily-report", re.I
)
REPORT_PATH = re.compile(r"api/[a-z-]+/export/app/([^/]+)/")  # the app a report's path names


def column_name(header: str) -> str:
    name = header.split(" (", 1)[0]
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def csv_records(rows: Any) -> list[dict[str, Any]]:
    return [{column_name(k): (None if v == "" else v) for k, v in row.items() if k} for row in rows or []]


def max_rows(options: dict[str, Any]) -> int:
    """``options.maximum_rows``: a whole number from 1 to 1,000,000 (default 1,000,000)."""
    value = options.get("maximum_rows", MAX_ROWS)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BadInputError(f"source.options.maximum_rows: a whole number up to {MAX_ROWS:,}, not {value!r}")
    if not 1 <= int(value) <= MAX_ROWS:
        raise BadInputError(f"source.options.maximum_rows: at most {MAX_ROWS:,} (the API's cap), not {value}")
    return int(value)


def _given(value: Any) -> bool:
    return value is not None and value != ""


def app_ids(options: Mapping[str, Any]) -> list[str]:
    """The apps to read: ``options.app_id``, or ``options.app_ids`` (a list, or ids separated by
    commas), in their order, each once."""
    one, many = options.get("app_id"), options.get("app_ids")
    if _given(one) and _given(many):
        raise BadInputError(
            "source.options.app_ids: give app_id (one app) or app_ids (several), not both; "
            "list every app in app_ids"
        )
    if not _given(many):
        if not _given(one):
            raise BadInputError("source.options: app_id (one app) or app_ids (several) is required")
        many, field = [one], "app_id"
    else:
        field = "app_ids"
    items = many.split(",") if isinstance(many, str) else many
    if not isinstance(items, list | tuple) or not items:
        raise BadInputError(
            f"source.options.{field}: a list of app ids or ids separated by commas, not {many!r}"
        )
    ids = [str(item).strip() for item in items]
    wrong = [i for i in ids if not i or re.search(r"[/?#\s]", i)]
    if wrong:
        raise BadInputError(f"source.options.{field}: {wrong[0]!r} is not an app id (in {many!r})")
    return list(dict.fromkeys(ids))


def _daily(report: str, raw: bool) -> Any:
    kind = "raw-data" if raw else "agg-data"

    def targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        params: dict[str, Any] = {}
        if raw:  # aggregate reports take neither a row cap nor, unless asked, a timezone
            params = {"timezone": options.get("timezone", "UTC"), "maximum_rows": max_rows(options)}
            if options.get("additional_fields"):
                params["additional_fields"] = options["additional_fields"]
        elif options.get("timezone"):
            params["timezone"] = options["timezone"]
        apps = app_ids(options)
        return [  # day by day, each app in turn: the watermark moves forward with the days
            (
                f"api/{kind}/export/app/{app}/{report}/v5",
                {**params, "from": d.isoformat(), "to": d.isoformat()},
            )
            for d in day_range(options, filters.get("since"))
            for app in apps
        ]

    return targets


RAW_FIELDS = {
    "event_time": "timestamp",
    "install_time": "timestamp",
    "event_name": "string",
    "event_value": "json",
    "event_revenue": "decimal(20,6)",
    "event_revenue_currency": "string",
    "event_revenue_usd": "decimal(20,6)",
    "media_source": "string",
    "channel": "string",
    "campaign": "string",
    "campaign_id": "string",
    "appsflyer_id": "string",
    "customer_user_id": "string",
    "platform": "string",
    "country_code": "string",
    "app_id": "string",
}
AGG_FIELDS = {
    "date": "date",
    "agency_pmd": "string",
    "media_source": "string",
    "campaign": "string",
    "impressions": "int64",
    "clicks": "int64",
    "installs": "int64",
    "sessions": "int64",
    "loyal_users": "int64",
    "total_revenue": "decimal(20,6)",
    "total_cost": "decimal(20,6)",
    "app_id": "string",
}
# Every key starts with the app: a load of several apps holds the same day, campaign or device
# once per app.
AGG_KEY = ("app_id", "date", "agency_pmd", "media_source", "campaign")
DAY_FILTER = {"param": "since", "field": "event_time", "format": "date"}
INSTALL_KEY = ("app_id", "appsflyer_id")
EVENT_KEY = ("app_id", "appsflyer_id", "event_time")  # a device may uninstall or re-engage more than once
APPEND = "no unique key: load with incremental_append"


def _raw(report: str, description: str, key: tuple[str, ...], name: str = "") -> Resource:
    return Resource(
        name=name or report.removesuffix("_report"),
        path=f"api/raw-data/export/app/{{app_id}}/{report}/v5",
        description=description,
        fields=RAW_FIELDS,
        primary_key=key,
        server_filter=DAY_FILTER,
        records=csv_records,
        targets=_daily(report, raw=True),
    )


def _agg(report: str, description: str, name: str) -> Resource:
    return Resource(
        name=name,
        path=f"api/agg-data/export/app/{{app_id}}/{report}/v5",
        description=description,
        fields=AGG_FIELDS,
        primary_key=AGG_KEY,
        server_filter={"param": "since", "field": "date", "format": "date"},
        records=csv_records,
        targets=_daily(report, raw=False),
    )


RESOURCES = [
    _raw("installs_report", "Non-organic installs, one row per install (raw data)", INSTALL_KEY),
    _raw("in_app_events_report", f"Non-organic in-app events (raw data); {APPEND}", ()),
    _raw("uninstall_events_report", "Non-organic uninstalls (raw data)", EVENT_KEY),
    _raw("installs-retarget", "Retargeting conversions (raw data)", EVENT_KEY, "installs_retarget"),
    _raw("in-app-events-retarget", f"Retargeting in-app events; {APPEND}", (), "in_app_events_retarget"),
    _raw("organic_installs_report", "Organic installs (raw data)", INSTALL_KEY),
    _raw("organic_in_app_events_report", f"Organic in-app events (raw data); {APPEND}", ()),
    _raw("organic_uninstall_events_report", "Organic uninstalls (raw data)", EVENT_KEY),
    _agg(
        "partners_by_date_report",
        "Aggregate performance per day, agency, media source and campaign",
        "partners_by_date",
    ),
    _agg(
        "daily_report", "Daily aggregate report: per day, agency, media source and campaign", "daily_report"
    ),
]

APPSFLYER = ApiSource(
    name="appsflyer",
    title="AppsFlyer",
    base_url="https://hq1.appsflyer.com/",
    docs_url="https://dev.appsflyer.com/hc/reference/overview-11",
    auth="API V2 token in the connection password (Authorization: Bearer)",
    extra={"auth": "bearer", "requests_per_second": 1.0},
    body_format="csv",
    rate_limits="Pull API quotas per app and report type per day: a used-up quota fails with DPONE105, "
    "not retried. Raw reports are capped at maximum_rows (1,000,000): a report at the cap is split "
    "into shorter windows. 429 without a quota text and 5xx are retried with backoff",
    resources={r.name: r for r in RESOURCES},
)


def _app_of(path: str) -> str:
    """The app a report's path names (``api/raw-data/export/app/{app}/...``)."""
    found = REPORT_PATH.match(path.lstrip("/"))
    if found is None:
        raise SourceContractError(f"{path}: not an AppsFlyer report path (api/.../export/app/<app id>/...)")
    return found.group(1)


def _window(value: str, end: bool) -> dt.datetime:
    """A ``from``/``to`` value as a time; a date covers its whole day."""
    if len(value) == 10:
        return dt.datetime.fromisoformat(value + ("T23:59:59" if end else "T00:00:00"))
    return dt.datetime.strptime(value, STAMP)


class AppsFlyerHook(ApiHook):
    api = APPSFLYER
    conn_type = "dpone_appsflyer"
    hook_name = "dpone AppsFlyer"

    def resource(self, spec: SourceSpec) -> Resource:
        """The resource, once its apps are known to be given right (before any request)."""
        found = super().resource(spec)
        app_ids(source_of(spec, ResourceSource, spec.connector).options)
        return found

    def refusal(self, status: int, body: str, shown: str) -> Exception | None:
        if status in (400, 403, 429) and QUOTA.search(body):
            text = self.redactor().redact(body[:200].strip())
            return QuotaExceededError(
                f"{shown} returned {status}: AppsFlyer's daily quota for this app and report is used "
                f"up ({text!r}); not retried: the next day's run reads it, or lower how often it runs"
            )
        return None

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        pagination: PaginationSpec,
        selector: str,
        *,
        read: Read | None = None,
        **kwargs: Any,
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        """One report per window; a raw report at its row cap is split, never loaded. The
        position is the windows still to read of the day."""
        if read is None or kwargs.get("plain"):
            return super().pages(path, params, pagination, selector, read=read, **kwargs)
        return self._windows(path, params, read, kwargs.get("start"), kwargs.get("headers"))

    def _windows(
        self, path: str, params: dict[str, Any], read: Read, start: dict | None, headers: dict | None
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        windows = [list(w) for w in (start or {}).get("windows", [[params["from"], params["to"]]])]
        cap = params.get("maximum_rows")
        app = _app_of(path)
        while windows:
            low, high = windows.pop(0)
            query = {**params, "from": low, "to": high}
            try:
                answer = self.request(
                    "GET",
                    path,
                    params=query,
                    headers={"Accept": "text/csv", **(headers or {})},
                    pace=read.spec.requests_per_second,
                )
            except ResponseTooLargeError as exc:  # over max_response_bytes: ask for half each
                windows[:0] = self._halves(path, low, high, f"the report is too large ({exc.message})")
                continue
            records = resource_read(read).records(self.decode(answer), "")
            if cap is not None and len(records) >= TRUNCATED * int(cap):
                reached = f"{len(records):,} rows reach maximum_rows {int(cap):,} (the report is cut there)"
                windows[:0] = self._halves(path, low, high, reached)
                continue
            yield [{**r, "app_id": app} for r in records], {"windows": windows} if windows else None

    def _halves(self, path: str, low: str, high: str, why: str) -> list[list[str]]:
        """The window's two halves, read instead of it (``why``: what was wrong with it whole)."""
        first, last = _window(low, False), _window(high, True)
        if last - first < 2 * MIN_SLICE:
            raise SourceContractError(
                f"{path}: from {low} to {high} {why}, and the window is too short to split; nothing "
                f"of it was loaded. Raise options.maximum_rows (up to {MAX_ROWS:,}) or the connection's "
                "max_response_bytes, or narrow the report (additional_fields)"
            )
        middle = (first + (last - first) // 2).replace(microsecond=0)
        return [
            [first.strftime(STAMP), middle.strftime(STAMP)],
            [(middle + dt.timedelta(seconds=1)).strftime(STAMP), last.strftime(STAMP)],
        ]
