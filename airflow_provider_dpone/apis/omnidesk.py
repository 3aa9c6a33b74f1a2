"""Omnidesk help desk API (https://omnidesk.ru/api/).

The connection's host is your account, ``https://<domain>.omnidesk.ru``. Auth: HTTP basic,
login = staff e-mail, password = API key (Settings -> API). Lists page by ``page``/``limit``
(at most 100 per page); the body is an object of numbered entries plus ``total_count``. Cases
and users filter on ``from_updated_time``/``to_updated_time`` on the server (unix seconds). The
API answers no page past 500, so cases and users are read in update-time windows, each split
until it holds at most 500 pages. ``messages`` fans out over the cases updated in the window.
The limit is 500 calls per hour per staff member (at least 1,000 per account); every request
of a load (window pages, case lists, messages) waits for the load's pace.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..contracts import records as values
from ..contracts.errors import BadInputError, SourceContractError
from ..hooks.rest_pages import Read
from ..sql.extract_plan import CursorPlan
from .base import ApiHook, ApiSource, Resource, resource_read

_BLANK = {"-", ""}  # closed_at / closing_speed read "-" when a case is open


def _entries(kind: str) -> Any:
    def records(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            return []
        numbered = sorted((k for k in body if str(k).isdigit()), key=int)
        out = []
        for key in numbered:
            item = body[key].get(kind, body[key]) if isinstance(body[key], dict) else {}
            out.append({k: (None if isinstance(v, str) and v in _BLANK else v) for k, v in item.items()})
        return out

    return records


MAX_PAGES = 500  # the API answers no page past this one
LIMIT = 100  # records per page, the API's maximum
PAGES = {
    "type": "page",
    "page_size": LIMIT,
    "limit_param": "limit",
    "page_param": "page",
    "max_pages": MAX_PAGES,
}
UPDATED = {"param": "from_updated_time", "field": "updated_at", "format": "unix"}
WINDOWED = {"cases", "users"}  # read in update-time windows under the page cap
LOOKBACK_DAYS = 3  # messages: the cases updated in the last 3 days, without a watermark or start_date
_MESSAGES = re.compile(r"cases/(\d+)/messages\.json")

CASE_FIELDS = {
    "case_id": "int64",
    "case_number": "string",
    "subject": "string",
    "user_id": "int64",
    "staff_id": "int64",
    "group_id": "int64",
    "status": "string",
    "priority": "string",
    "channel": "string",
    "recipient": "string",
    "deleted": "boolean",
    "spam": "boolean",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "closed_at": "timestamptz",
    "last_response_at": "timestamptz",
    "closing_speed": "int64",
    "language_id": "int32",
    "custom_fields": "json",
    "labels": "json",
    "rating": "string",
    "rated_staff_id": "int64",
}

OMNIDESK = ApiSource(
    name="omnidesk",
    title="Omnidesk",
    base_url="https://example.omnidesk.ru/api/",
    docs_url="https://omnidesk.ru/api/",
    auth="host https://<domain>.omnidesk.ru/api/, login = staff e-mail, password = API key (basic auth)",
    extra={"auth": "basic", "requests_per_second": 2.0},
    rate_limits="500 requests per hour per staff member, at least 1,000 per account (header api_calls_left); "
    "429 is retried with backoff",
    resources={
        "cases": Resource(
            name="cases",
            path="cases.json",
            description="Cases (tickets), sorted by update time, filtered on from_updated_time",
            fields=CASE_FIELDS,
            primary_key=("case_id",),
            params={"sort": "updated_at_asc"},
            pagination=PAGES,
            server_filter=UPDATED,
            records=_entries("case"),
        ),
        "users": Resource(
            name="users",
            path="users.json",
            description="End users, filtered on from_updated_time",
            fields={
                "user_id": "int64",
                "user_full_name": "string",
                "user_email": "string",
                "user_phone": "string",
                "user_custom_id": "string",
                "companies": "json",
                "blocked": "boolean",
                "disabled": "boolean",
                "created_at": "timestamptz",
                "updated_at": "timestamptz",
            },
            primary_key=("user_id",),
            pagination=PAGES,
            server_filter=UPDATED,
            records=_entries("user"),
        ),
        "messages": Resource(
            name="messages",
            path="cases.json",  # the parent list; each case's messages: cases/{case_id}/messages.json
            description="Messages of each case updated in the window (cases/{case_id}/messages.json)",
            fields={
                "message_id": "int64",
                "case_id": "int64",
                "user_id": "int64",
                "staff_id": "int64",
                "content": "string",
                "content_html": "string",
                "attachments": "json",
                "note": "boolean",
                "created_at": "timestamptz",
            },
            primary_key=("message_id",),
            params={"order": "asc"},
            pagination=PAGES,
            server_filter={"param": "from_updated_time", "field": "created_at", "format": "unix"},
            records=_entries("message"),
            window_end=True,
            rereads=lambda options: "reads every message of a case again whenever the case changes",
        ),
        "staff": Resource(
            name="staff",
            path="staff.json",
            description="Staff members",
            fields={
                "staff_id": "int64",
                "staff_email": "string",
                "staff_full_name": "string",
                "staff_active": "boolean",
                "staff_role": "string",
                "created_at": "timestamptz",
                "updated_at": "timestamptz",
            },
            primary_key=("staff_id",),
            pagination=PAGES,
            records=_entries("staff"),
        ),
        "groups": Resource(
            name="groups",
            path="groups.json",
            description="Groups",
            fields={
                "group_id": "int64",
                "group_title": "string",
                "group_name": "string",
                "group_active": "boolean",
            },
            primary_key=("group_id",),
            pagination=PAGES,
            records=_entries("group"),
        ),
        "labels": Resource(
            name="labels",
            path="labels.json",
            description="Labels",
            fields={
                "label_id": "int64",
                "label_title": "string",
                "label_color": "string",
                "label_active": "boolean",
            },
            primary_key=("label_id",),
            pagination=PAGES,
            records=_entries("label"),
        ),
    },
)


@dataclass(frozen=True)
class Window:
    """What a windowed read asks for: the list, its query, how its body becomes records, and
    the load's pace (``source.requests_per_second``; None: the connection's or the API's)."""

    path: str
    params: dict[str, Any]
    shape: Callable[[Any], list[dict[str, Any]]]
    pace: float | None


def _unix(value: Any) -> int:
    return int(values.parse_timestamp(str(value), aware=True).timestamp())


class OmnideskHook(ApiHook):
    """Cases and users in update-time windows under the page cap; messages over the cases
    updated in the window, in case id order (a retry resumes at the case it stopped in)."""

    api = OMNIDESK
    conn_type = "dpone_omnidesk"
    hook_name = "dpone Omnidesk"

    def pages(self, path: str, params: dict[str, Any], pagination: Any, selector: str, **kwargs: Any) -> Any:
        read = None if kwargs.get("read") is None or kwargs.get("plain") else resource_read(kwargs["read"])
        if read is not None and read.resource.name in WINDOWED:
            end = (kwargs.get("start") or {}).get("end") or _unix(
                read.options.get("end_date") or dt.datetime.now(dt.timezone.utc)
            )
            lo = int(params.get("from_updated_time") or 0)
            shape = lambda body: read.records(body, "")  # noqa: E731
            window = Window(path, params, shape, read.spec.requests_per_second)
            return self._windows(window, lo, int(end), kwargs.get("start"), kwargs.get("details"))
        pages = super().pages(path, params, pagination, selector, **kwargs)
        found = _MESSAGES.fullmatch(path.lstrip("/"))
        if found:  # a message names its case through the path it was read from
            case_id = int(found.group(1))
            return (([{**r, "case_id": case_id} for r in recs], nxt) for recs, nxt in pages)
        return pages

    def _windows(
        self,
        windowed: Window,
        lo: int,
        end: int,
        start: dict[str, Any] | None,
        details: dict[str, Any] | None,
    ) -> Iterator[tuple[list[Any], dict[str, Any] | None]]:
        """Pages of ``[lo, end]`` (unix seconds, both included) in windows of at most
        ``MAX_PAGES`` pages: a window over the cap (``total_count`` on its first page) is halved,
        the next one starts as wide as the last (twice as wide when that held under half the
        cap). The position after a page names the window, the page and the end. Each request
        waits for the load's pace."""
        path, params, shape = windowed.path, windowed.params, windowed.shape
        cap = MAX_PAGES * LIMIT
        hi, page = end, 1
        if start is not None:
            query = start["query"]
            lo, hi, page = int(query["from_updated_time"]), int(query["to_updated_time"]), int(query["page"])
        while True:
            query = {**params, "from_updated_time": lo, "to_updated_time": hi, "page": page, "limit": LIMIT}
            body = self.decode(self.request("GET", path, params=query, pace=windowed.pace))
            if details is not None:
                details["pages"] = details.get("pages", 0) + 1
            total = int((body or {}).get("total_count") or 0)
            if page == 1 and total > cap:
                if hi == lo:
                    raise SourceContractError(
                        f"{path}: {total} records updated in one second ({lo}): more than the API's "
                        f"{MAX_PAGES} pages of {LIMIT}; they cannot all be read"
                    )
                hi = lo + (hi - lo) // 2
                if details is not None:
                    details["window_splits"] = details.get("window_splits", 0) + 1
                continue
            records = shape(body)
            if records and page * LIMIT < total:
                nxt: dict[str, Any] | None = {"page": page + 1, "lo": lo, "hi": hi}
            elif hi < end:
                width = (hi - lo + 1) * (2 if total < cap // 2 else 1)
                nxt = {"page": 1, "lo": hi + 1, "hi": min(end, hi + width)}
            else:
                nxt = None
            position = None
            if nxt is not None:
                lo, hi, page = nxt["lo"], nxt["hi"], nxt["page"]
                window = {"from_updated_time": lo, "to_updated_time": hi, "page": page}
                position = {"url": path, "query": {**params, **window}, "end": end}
            yield records, position
            if position is None:
                return

    def _targets(
        self, read: Read, filter_params: dict[str, Any], details: dict[str, Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
        res = resource_read(read)
        if res.resource.name != "messages":
            yield from super()._targets(read, filter_params, details)
            return
        options = res.options
        if filter_params.get("from_updated_time"):
            lo = int(filter_params["from_updated_time"])
        elif options.get("start_date"):
            lo = _unix(options["start_date"])
        else:
            days = int(options.get("lookback_days", LOOKBACK_DAYS))
            lo = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).timestamp())
        listed = Window(
            "cases.json", {"sort": "updated_at_asc"}, _entries("case"), res.spec.requests_per_second
        )
        cases = self._windows(listed, lo, _unix(filter_params["until"]), None, details)
        ids = sorted({int(c["case_id"]) for recs, _ in cases for c in recs if c.get("case_id") is not None})
        details["parents"] = len(ids)
        resume = details.get("resumed_from") or {}
        if resume.get("case_id") is not None:  # the case a retry resumes in keeps its index
            done = int(resume["case_id"])
            for _ in range(int(resume["target"])):
                yield None, "", {}, None  # finished before the failure: skipped unread
            ids = [done] + [i for i in ids if i > done]
        params = {**res.endpoint.params}
        for case_id in ids:
            details["case_id"] = case_id
            yield str(case_id), f"cases/{case_id}/messages.json", params, None

    def _rows(
        self,
        read: Read,
        filter_params: dict[str, Any],
        result: Any,
        resume: dict[str, Any] | None,
        plan: CursorPlan | None,
    ) -> Iterator[tuple[list, dict[str, Any]]]:
        for batch, checkpoint in super()._rows(read, filter_params, result, resume, plan):
            case_id = result.details.get("case_id")
            yield batch, checkpoint if case_id is None else {**checkpoint, "case_id": case_id}

    def base_url(self) -> str:
        if not self._conn().host:
            raise BadInputError(
                f"connection '{self.dpone_conn_id}': set host to your account, https://<domain>.omnidesk.ru/api/"
            )
        return super().base_url()
