"""AppsFlyer Pull API v5: raw data and aggregate reports as CSV (https://dev.appsflyer.com/hc/reference).

Auth: the API V2 token in the connection's password, sent as ``Authorization: Bearer``.
Reports take ``from``/``to`` dates, filtered on the server: dpone asks one day at a time from the
watermark, so a failed run resumes at the first day not yet staged. CSV headers are turned into
column names (``Event Time`` -> ``event_time``, ``Media Source (pid)`` -> ``media_source``).
"""

from __future__ import annotations

import re
from typing import Any

from .base import ApiHook, ApiSource, Resource, day_range


def column_name(header: str) -> str:
    name = header.split(" (", 1)[0]
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def csv_records(rows: Any) -> list[dict[str, Any]]:
    return [{column_name(k): (None if v == "" else v) for k, v in row.items() if k} for row in rows or []]


def _daily(report: str, raw: bool) -> Any:
    kind = "raw-data" if raw else "agg-data"

    def targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        params = {"timezone": options.get("timezone", "UTC")}
        if raw and options.get("additional_fields"):
            params["additional_fields"] = options["additional_fields"]
        path = f"api/{kind}/export/app/{options['app_id']}/{report}/v5"
        return [
            (path, {**params, "from": d.isoformat(), "to": d.isoformat()})
            for d in day_range(options, filters.get("since"))
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
}
DAY_FILTER = {"param": "since", "field": "event_time", "format": "date"}


def _raw(report: str, description: str, key: tuple[str, ...]) -> Resource:
    return Resource(
        name=report.removesuffix("_report"),
        path=f"api/raw-data/export/app/{{app_id}}/{report}/v5",
        description=description,
        fields=RAW_FIELDS,
        primary_key=key,
        server_filter=DAY_FILTER,
        records=csv_records,
        targets=_daily(report, raw=True),
        required_options=("app_id",),
    )


APPSFLYER = ApiSource(
    name="appsflyer",
    title="AppsFlyer",
    base_url="https://hq1.appsflyer.com/",
    docs_url="https://dev.appsflyer.com/hc/reference/overview-11",
    auth="API V2 token in the connection password (Authorization: Bearer)",
    extra={"auth": "bearer"},
    body_format="csv",
    rate_limits="Pull API quotas per app and report type per day, and at most 1,000,000 rows per call "
    "(see AppsFlyer's Pull API limitations); 429 is retried with backoff",
    resources={
        "installs": _raw(
            "installs_report", "Non-organic installs, one row per install (raw data)", ("appsflyer_id",)
        ),
        "in_app_events": _raw(
            "in_app_events_report",
            "Non-organic in-app events (raw data); no unique key: load with incremental_append",
            (),
        ),
        "organic_installs": _raw("organic_installs_report", "Organic installs (raw data)", ("appsflyer_id",)),
        "partners_by_date": Resource(
            name="partners_by_date",
            path="api/agg-data/export/app/{app_id}/partners_by_date_report/v5",
            description="Aggregate performance per day, agency, media source and campaign",
            fields=AGG_FIELDS,
            primary_key=("date", "agency_pmd", "media_source", "campaign"),
            server_filter={"param": "since", "field": "date", "format": "date"},
            records=csv_records,
            targets=_daily("partners_by_date_report", raw=False),
            required_options=("app_id",),
        ),
    },
)


class AppsFlyerHook(ApiHook):
    api = APPSFLYER
    conn_type = "dpone_appsflyer"
    hook_name = "dpone AppsFlyer"
