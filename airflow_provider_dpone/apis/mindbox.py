"""Mindbox API v3 exports (https://developers.mindbox.ru/docs/v3).

Mindbox hands out data through export operations configured in the project (their system
names, e.g. ``Export.Customers``, are set up by the project admin or the Mindbox manager).
An export is a background job on ``POST /v3/operations/sync?endpointId=...&operation=...``:

1. the request body starts it, the answer carries ``exportId``;
2. the same request with ``{"exportId": ...}`` polls it until ``exportResult.processingStatus``
   is ``Ready`` (``NotReady`` meanwhile);
3. ``exportResult.urls`` lists the files (JSON or `;` CSV, either maybe gzipped), downloaded without the secret key (signed links).

Auth: the secret key in the connection's password, sent as ``Authorization: SecretKey <key>``.
Every answer carries ``status``; anything but ``Success`` fails the task with Mindbox's
``errorMessage`` (``TransientError`` is retried). Period exports take ``sinceDateTimeUtc`` and
``tillDateTimeUtc``; the watermark is the ``tillDateTimeUtc`` of the last run. Every request of
a load (the start, each poll, each file download) waits for its pace: ``source.requests_per_second``,
else the connection's extra, else 2 a second.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..contracts.errors import BadInputError, TransientError
from ..contracts.records import parse_timestamp
from .async_export import AsyncExport
from .base import ApiHook, ApiSource, Resource, Targets
from .export_files import file_records

PERIOD_FORMAT = "%Y-%m-%d %H:%M"  # UTC, as Mindbox wants sinceDateTimeUtc/tillDateTimeUtc


def column_name(header: str) -> str:
    """``CustomerIdsMindboxId`` / ``Customer.Ids.MindboxId`` -> ``customer_ids_mindbox_id``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2})", "_", header.strip())
    return re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")


EXPORT = AsyncExport(
    job_id_path="exportId",
    poll_body=lambda job: {"exportId": job},
    status_path="exportResult.processingStatus",
    ready="Ready",
    pending=None,  # NotReady and any other status: polled again
    files_path="exportResult.urls",
    column=column_name,
    failed=("Cancelled",),
    reason_path="exportResult.cancellationReason",
    file_records=file_records,
)


def _operation(default: str = "") -> Targets:
    def targets(options: dict[str, Any], _filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        operation = options.get("operation") or default
        return [("v3/operations/sync", {"endpointId": options["endpoint_id"], "operation": operation})]

    return targets


def _full_body(options: dict[str, Any], _filters: dict[str, Any]) -> dict[str, Any]:
    return dict(options.get("body") or {})


def _period_body(options: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
    """The export's period: from the watermark (or ``start_date``) to the run's window end;
    ``sinceDateTimeUtc``/``tillDateTimeUtc``, or with ``options.period: date`` the days
    ``sinceDate``/``tillDate`` (the watermark's day is read again)."""
    since = filters.get("since")
    if since is None:
        if not options.get("start_date"):
            raise BadInputError(
                "source.options.start_date: a Mindbox period export needs a start for its first run "
                "(later runs start at the stored watermark)"
            )
        start = parse_timestamp(str(options["start_date"]), aware=True)
        since = start.astimezone(dt.timezone.utc).strftime(PERIOD_FORMAT)
    till = parse_timestamp(filters["until"], aware=True).astimezone(dt.timezone.utc)
    period = options.get("period", "datetime")
    if period == "date":
        return {**(options.get("body") or {}), "sinceDate": since[:10], "tillDate": till.date().isoformat()}
    if period != "datetime":
        raise BadInputError(f"source.options.period: 'datetime' or 'date', not {period!r}")
    return {
        **(options.get("body") or {}),
        "sinceDateTimeUtc": since,
        "tillDateTimeUtc": till.strftime(PERIOD_FORMAT),
    }


BATCH = {"type": "none", "page_size": 10_000}  # rows per staged batch (and resume point)


def _rereads_day(period: Any) -> str:
    """Why a date-period export loads some rows twice on an unkeyed append ("" when it does not)."""
    return "reads the day of its watermark again (sinceDate is a whole day)" if period == "date" else ""


def _standard(name: str, operation: str, what: str, period: str | None) -> Resource:
    """A standard export: its default operation (``options.operation`` overrides it)."""
    periodic = period is not None
    return Resource(
        name=name,
        path="v3/operations/sync",
        description=f"{what} (operation {operation})"
        + (
            f"; period {'sinceDate/tillDate' if period == 'date' else 'sinceDateTimeUtc/tillDateTimeUtc'}"
            if periodic
            else ""
        ),
        fields={},
        primary_key=(),
        pagination=BATCH,
        server_filter={"param": "since", "field": "export_period", "format": PERIOD_FORMAT}
        if periodic
        else None,
        targets=_operation(operation),
        body=(lambda o, f: _period_body({"period": period, **o}, f)) if periodic else _full_body,
        method="POST",
        export=EXPORT,
        window_end=periodic,
        rereads=(lambda o: _rereads_day(o.get("period", period))) if periodic else None,
        required_options=("endpoint_id",),
    )


STANDARD = [
    _standard("customers", "GetClients", "Customers: JSON files of `customers`", None),
    _standard("orders", "GetOrders", "Orders: JSON files of `orders`", "datetime"),
    _standard(
        "customer_actions", "GetActions", "Customer actions: JSON files of `customerActions`", "datetime"
    ),
    _standard("mailings", "GetMailings", "Mailings: JSON files of `mailings`", "datetime"),
    _standard("messaging_report", "GetMessagingReport", "Messaging report: `;` CSV by day", "date"),
    _standard("operations_logs", "Exports.OperationsLogs", "Operations log: `;` CSV", "datetime"),
]

MINDBOX = ApiSource(
    name="mindbox",
    title="Mindbox",
    base_url="https://api.mindbox.ru/",
    docs_url="https://developers.mindbox.ru/docs/v3",
    auth="secret key in the connection password (Authorization: SecretKey <key>); "
    "options.endpoint_id is the project's endpoint",
    extra={
        "auth": "api_key",
        "api_key_header": "Authorization",
        "api_key_prefix": "SecretKey ",
        "requests_per_second": 2.0,
    },
    rate_limits="Mindbox throttles per endpoint and answers 429 or status TransientError when over it; "
    "429/5xx are retried honouring Retry-After. An export is prepared in the background: dpone polls "
    "it every options.poll_interval seconds (default 10) for up to options.max_wait (default 3600)",
    resources={
        "export": Resource(
            name="export",
            path="v3/operations/sync",
            description="Any export operation without a period (e.g. all customers, the product "
            "catalogue); options.body is sent as the operation's body. Read in full every run",
            fields={},
            primary_key=(),
            pagination=BATCH,
            targets=_operation(),
            body=_full_body,
            method="POST",
            export=EXPORT,
            required_options=("endpoint_id", "operation"),
        ),
        "period_export": Resource(
            name="period_export",
            path="v3/operations/sync",
            description="An export operation over a period of change time (e.g. orders, customer "
            "actions): sinceDateTimeUtc from the watermark, tillDateTimeUtc = options.end_date or "
            "the run's start",
            fields={},
            primary_key=(),
            pagination=BATCH,
            server_filter={"param": "since", "field": "export_period", "format": PERIOD_FORMAT},
            targets=_operation(),
            body=_period_body,
            method="POST",
            export=EXPORT,
            window_end=True,
            rereads=lambda o: _rereads_day(o.get("period")),
            required_options=("endpoint_id", "operation"),
        ),
    }
    | {r.name: r for r in STANDARD},
)


class MindboxHook(ApiHook):
    api = MINDBOX
    conn_type = "dpone_mindbox"
    hook_name = "dpone Mindbox"

    def decode(self, response: Any) -> Any:
        body = super().decode(response)
        status = body.get("status") if isinstance(body, dict) else None
        if status == "Success":
            return body
        message = body.get("errorMessage") if isinstance(body, dict) else None
        details = body.get("validationMessages") if isinstance(body, dict) else None
        text = self.redactor().redact(  # Mindbox's own text may echo what it was sent
            f"Mindbox answered status {status!r}: {message or body!r:.300}"
            + (f" {details!r:.300}" if details else "")
        )
        if status == "TransientError":
            raise TransientError(text)
        raise BadInputError(text)
