"""Google Ads API over REST: GAQL reports through ``googleAds:searchStream``
(https://developers.google.com/google-ads/api/rest/overview).

Auth (``rest_auth.GoogleAuth``): OAuth2 with a refresh token (connection login = client id,
password = client secret, extra ``refresh_token``) or a service account (extra
``service_account_key``, its JSON key); scope ``adwords``. Plus the ``developer-token`` header
and, for manager accounts, ``login-customer-id``: both in the connection's extra ``headers``.
Each resource is a GAQL query, sent once per customer of ``customer_ids`` (or ``customer_id``);
each selects ``customer.id``, so every row names its customer. Date-segmented ones filter
``segments.date`` on the server from the watermark. The response rows are nested objects; they
are flattened: ``metrics.costMicros`` -> ``cost_micros``, ``segments.date`` -> ``date``,
``campaign.id`` -> ``campaign_id``, ``adGroupCriterion.keyword.text`` ->
``ad_group_criterion_keyword_text``.
"""

from __future__ import annotations

import re
from typing import Any

from ..contracts.errors import BadInputError
from .base import ApiHook, ApiSource, Resource, day_range

DEFAULT_VERSION = "v21"
SCOPE = "https://www.googleapis.com/auth/adwords"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested fields joined by ``_`` in snake case; ``metrics`` and ``segments`` drop their name."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{_snake(key)}"
        if isinstance(value, dict):
            out.update(flatten(value, "" if not prefix and key in ("metrics", "segments") else f"{name}_"))
        else:
            out[name] = value
    return out


def stream_records(body: Any) -> list[dict[str, Any]]:
    """searchStream answers a JSON array of batches, each with ``results``."""
    batches = body if isinstance(body, list) else [body]
    return [flatten(r) for batch in batches for r in (batch or {}).get("results", [])]


def _gaql(select: str, source: str, dated: bool, where: str = "") -> Any:
    def body(options: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
        conditions = [where] if where else []
        if dated:
            days = day_range(options, filters.get("since"), default_days=30)
            if not days:  # never sent: the targets ask nothing when the range is empty
                return {"query": ""}
            conditions.append(f"segments.date BETWEEN '{days[0].isoformat()}' AND '{days[-1].isoformat()}'")
        query = f"SELECT customer.id, {select} FROM {source}"
        return {"query": query + (f" WHERE {' AND '.join(conditions)}" if conditions else "")}

    return body


def customer_ids(options: dict[str, Any]) -> list[str]:
    """The customers to read: option ``customer_ids`` (a list, or ids separated by commas) or
    ``customer_id``; dashes dropped, each once."""
    raw = options.get("customer_ids") or options.get("customer_id")
    items = raw if isinstance(raw, list | tuple) else str(raw or "").split(",")
    ids = [str(item).replace("-", "").strip() for item in items]
    ids = [i for i in ids if i]
    bad = [i for i in ids if not i.isdigit()]
    if not ids or bad:
        raise BadInputError(
            "source.options: Google Ads needs customer_ids (a list of 10-digit customer ids, "
            f"e.g. [123-456-7890]) or customer_id{f'; not ids: {bad}' if bad else ''}"
        )
    return list(dict.fromkeys(ids))


def _streams(dated: bool) -> Any:
    def targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """One searchStream call per customer; none when a dated report's day range is empty
        (the watermark is past ``end_date``): there is nothing to ask, not today's rows."""
        if dated and not day_range(options, filters.get("since"), default_days=30):
            return []
        version = options.get("api_version", DEFAULT_VERSION)
        return [(f"{version}/customers/{c}/googleAds:searchStream", {}) for c in customer_ids(options)]

    return targets


def _report(
    name: str,
    select: str,
    source: str,
    fields: dict[str, str],
    key: tuple[str, ...],
    dated: bool,
    doc: str,
    where: str = "",
) -> Resource:
    return Resource(
        name=name,
        path="{api_version}/customers/{customer_id}/googleAds:searchStream",
        description=doc,
        fields={"customer_id": "int64", **fields},
        primary_key=key,
        method="POST",
        body=_gaql(select, source, dated, where),
        server_filter={"param": "since", "field": "date", "format": "date"} if dated else None,
        records=stream_records,
        targets=_streams(dated),
    )


METRICS = {
    "impressions": "int64",
    "clicks": "int64",
    "cost_micros": "int64",
    "conversions": "float64",
    "conversions_value": "float64",
}
METRICS_SELECT = (
    "metrics.impressions, metrics.clicks, metrics.cost_micros, metrics.conversions, metrics.conversions_value"
)

# The standard report set: daily campaign metrics by keyword, display ad, webpage and campaign type.
STANDARD_SELECT = (
    "campaign.id, campaign.name, segments.date, metrics.impressions, metrics.clicks, metrics.cost_micros"
)
STANDARD_FIELDS = {
    "campaign_id": "int64",
    "campaign_name": "string",
    "date": "date",
    "impressions": "int64",
    "clicks": "int64",
    "cost_micros": "int64",
}


def _standard(name: str, source: str, where: str, doc: str, more: dict[str, str] | None = None) -> Resource:
    """A standard report: ``STANDARD_SELECT`` plus the GAQL fields ``more`` maps to their columns
    (the row's identity within the campaign: keyword, ad, webpage), from ``source``."""
    more = more or {}
    select = ", ".join([STANDARD_SELECT, *more])
    columns = {"_".join(f.split(".")): kind for f, kind in more.items()}
    key = (*columns, "date") if columns else ("campaign_id", "date")
    return _report(name, select, source, {**STANDARD_FIELDS, **columns}, key, True, doc, where)


def _channel(kind: str, op: str = "=") -> str:
    return f"campaign.advertising_channel_type {op} '{kind}'"


STANDARD_REPORTS = {
    "keyword_stats": _standard(
        "keyword_stats",
        "keyword_view",
        _channel("MULTI_CHANNEL", "!="),
        "Daily metrics per keyword (keyword_view), app campaigns excluded",
        {
            "ad_group.id": "int64",
            "ad_group_criterion.criterion_id": "int64",
            "ad_group_criterion.keyword.text": "string",
        },
    ),
    "display_stats": _standard(
        "display_stats",
        "ad_group_ad",
        _channel("DISPLAY"),
        "Daily metrics per ad of Display campaigns (ad_group_ad)",
        {"ad_group.id": "int64", "ad_group_ad.ad.id": "int64"},
    ),
    "webpage_stats": _standard(
        "webpage_stats",
        "webpage_view",
        "",
        "Daily metrics per webpage criterion of Dynamic Search Ads (webpage_view)",
        {"webpage_view.resource_name": "string"},
    ),
    "pmax_stats": _standard(
        "pmax_stats", "campaign", _channel("PERFORMANCE_MAX"), "Daily Performance Max campaign metrics"
    ),
    "demand_gen_stats": _standard(
        "demand_gen_stats", "campaign", _channel("DEMAND_GEN"), "Daily Demand Gen campaign metrics"
    ),
    "app_stats": _standard(
        "app_stats", "campaign", _channel("MULTI_CHANNEL"), "Daily App campaign metrics (MULTI_CHANNEL)"
    ),
    "shopping_stats": _standard(
        "shopping_stats", "campaign", _channel("SHOPPING"), "Daily Shopping campaign metrics"
    ),
}

GOOGLE_ADS = ApiSource(
    name="google_ads",
    title="Google Ads",
    base_url="https://googleads.googleapis.com/",
    docs_url="https://developers.google.com/google-ads/api/rest/overview",
    auth="OAuth2 refresh token (login = client id, password = client secret, extra refresh_token) or "
    "a service account (extra service_account_key = its JSON key), "
    'and extra headers {"developer-token": ..., "login-customer-id": ...}',
    extra={
        "auth": "google",
        "service_account_scope": SCOPE,
        "grant_type": "refresh_token",
        "token_url": "https://oauth2.googleapis.com/token",
        "token_auth": "body",
        "requests_per_second": 1.0,
    },
    rate_limits="operations per day by developer-token access level (Basic: 15,000); RESOURCE_EXHAUSTED (429) "
    "is retried with backoff",
    resources={
        "campaigns": _report(
            "campaigns",
            "campaign.id, campaign.name, campaign.status, campaign.advertising_channel_type, campaign.start_date, campaign.end_date",
            "campaign",
            {
                "campaign_id": "int64",
                "campaign_name": "string",
                "campaign_status": "string",
                "campaign_advertising_channel_type": "string",
                "campaign_start_date": "date",
                "campaign_end_date": "date",
            },
            ("campaign_id",),
            False,
            "Campaigns with status and channel",
        ),
        "campaign_stats": _report(
            "campaign_stats",
            f"campaign.id, segments.date, {METRICS_SELECT}",
            "campaign",
            {"campaign_id": "int64", "date": "date", **METRICS},
            ("campaign_id", "date"),
            True,
            "Daily campaign metrics (segments.date BETWEEN the watermark and end_date)",
        ),
        "ad_group_stats": _report(
            "ad_group_stats",
            f"campaign.id, ad_group.id, segments.date, {METRICS_SELECT}",
            "ad_group",
            {"campaign_id": "int64", "ad_group_id": "int64", "date": "date", **METRICS},
            ("ad_group_id", "date"),
            True,
            "Daily ad group metrics",
        ),
        **STANDARD_REPORTS,
    },
)


class GoogleAdsHook(ApiHook):
    api = GOOGLE_ADS
    conn_type = "dpone_google_ads"
    hook_name = "dpone Google Ads"
