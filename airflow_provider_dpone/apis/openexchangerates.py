"""Open Exchange Rates (https://docs.openexchangerates.org/reference/api-introduction).

Auth: the App ID, sent as the ``app_id`` query parameter (put it in the connection's password).
Bodies are JSON; rates come as an object keyed by currency, read here as one row per currency.
``usage.json`` (the plan and this month's counters) is one row; it echoes the App ID, never landed.
Errors are JSON with ``status`` and ``message`` (``invalid_app_id`` 401, ``not_allowed`` 403,
``access_restricted`` 429 when the plan's quota is used up).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..hooks.rest_pages import require
from .base import ApiHook, ApiSource, Resource, day_range


def rate_records(body: Any) -> list[dict[str, Any]]:
    stamp = dt.datetime.fromtimestamp(int(require(body, "timestamp")), dt.timezone.utc)
    return [
        {
            "date": stamp.date().isoformat(),
            "timestamp": stamp.isoformat(),
            "base": body.get("base"),
            "currency": code,
            "rate": str(rate),
        }
        for code, rate in sorted((require(body, "rates") or {}).items())  # absent: an error, not 0 rows
    ]


def currency_records(body: Any) -> list[dict[str, Any]]:
    return [{"code": code, "name": name} for code, name in sorted((body or {}).items())]


FEATURES = ("base", "symbols", "experimental", "time-series", "convert")
COUNTERS = (
    "requests",
    "requests_quota",
    "requests_remaining",
    "days_elapsed",
    "days_remaining",
    "daily_average",
)


def usage_records(body: Any) -> list[dict[str, Any]]:
    """usage.json as one row: the App ID's status, its plan (features as ``feature_*``) and this
    month's counters. ``data.app_id`` (the connection's secret) is left out."""
    plan, usage = require(body, "data.plan") or {}, require(body, "data.usage") or {}
    features = plan.get("features") or {}
    return [
        {
            "status": require(body, "data.status"),
            "plan_name": plan.get("name"),
            "plan_quota": plan.get("quota"),
            "plan_update_frequency": plan.get("update_frequency"),
            **{f"feature_{name.replace('-', '_')}": features.get(name) for name in FEATURES},
            **{name: usage.get(name) for name in COUNTERS},
        }
    ]


USAGE = {
    "status": "string",
    "plan_name": "string",
    "plan_quota": "string",
    "plan_update_frequency": "string",
    **{f"feature_{name.replace('-', '_')}": "boolean" for name in FEATURES},
    **dict.fromkeys(COUNTERS, "int64"),
}


def historical_targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """historical/YYYY-MM-DD.json for each day from the watermark (or start_date) to end_date."""
    return [(f"historical/{d.isoformat()}.json", {}) for d in day_range(options, filters.get("since"))]


RATES = {
    "date": "date",
    "timestamp": "timestamptz",
    "base": "string",
    "currency": "string",
    "rate": "decimal(24,12)",
}

OXR = ApiSource(
    name="openexchangerates",
    title="Open Exchange Rates",
    base_url="https://openexchangerates.org/api/",
    docs_url="https://docs.openexchangerates.org/reference/api-introduction",
    auth="App ID in the connection password, sent as the app_id query parameter",
    extra={"auth": "api_key", "api_key_param": "app_id", "requests_per_second": 1.0},
    rate_limits="by plan: requests per month (Free 1,000, hourly updates); over quota the API answers "
    "429 access_restricted. Changing `base` or `symbols` needs a paid plan (403 not_allowed on Free).",
    resources={
        "latest": Resource(
            name="latest",
            path="latest.json",
            description="The latest rates (latest.json; options: base (sent only when given), symbols)",
            fields=RATES,
            primary_key=("timestamp", "currency"),
            params={"base": None, "symbols": None, "show_alternative": None},
            records=rate_records,
        ),
        "historical": Resource(
            name="historical",
            path="historical/{date}.json",
            description="End-of-day rates per day (historical/YYYY-MM-DD.json), one request per day",
            fields=RATES,
            primary_key=("date", "currency"),
            params={"base": None, "symbols": None},
            server_filter={"param": "since", "field": "date", "format": "date"},
            records=rate_records,
            targets=historical_targets,
        ),
        "currencies": Resource(
            name="currencies",
            path="currencies.json",
            description="Currency codes and names (currencies.json)",
            fields={"code": "string", "name": "string"},
            primary_key=("code",),
            records=currency_records,
        ),
        "usage": Resource(
            name="usage",
            path="usage.json",
            description="The App ID's plan and this month's usage (usage.json; not counted in the quota), "
            "one row",
            fields=USAGE,
            primary_key=(),
            records=usage_records,
        ),
    },
)


class OpenExchangeRatesHook(ApiHook):
    api = OXR
    conn_type = "dpone_openexchangerates"
    hook_name = "dpone Open Exchange Rates"
