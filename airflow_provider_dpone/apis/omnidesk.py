"""Omnidesk help desk API (https://omnidesk.ru/api/).

The connection's host is your account, ``https://<domain>.omnidesk.ru``. Auth: HTTP basic,
login = staff e-mail, password = API key (Settings -> API). Lists page by ``page``/``limit``
(at most 100 per page, 500 pages); the body is an object of numbered entries plus
``total_count``. Cases and users filter on ``from_updated_time`` on the server (unix seconds);
the limit is 500 calls per hour per staff member (at least 1,000 per account).
"""

from __future__ import annotations

from typing import Any

from .base import ApiHook, ApiSource, Resource

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


PAGES = {"type": "page", "page_size": 100, "limit_param": "limit", "page_param": "page", "max_pages": 500}
UPDATED = {"param": "from_updated_time", "field": "updated_at", "format": "unix"}

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
    extra={"auth": "basic"},
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


class OmnideskHook(ApiHook):
    api = OMNIDESK
    conn_type = "dpone_omnidesk"
    hook_name = "dpone Omnidesk"

    def base_url(self) -> str:
        if not self._conn().host:
            from ..contracts.errors import BadInputError

            raise BadInputError(
                f"connection '{self.dpone_conn_id}': set host to your account, https://<domain>.omnidesk.ru/api/"
            )
        return super().base_url()
