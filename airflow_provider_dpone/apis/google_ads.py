"""Google Ads API over REST: GAQL reports through ``googleAds:searchStream``
(https://developers.google.com/google-ads/api/rest/overview).

Auth: OAuth2 with a refresh token (connection login = client id, password = client secret,
extra ``refresh_token``) plus the ``developer-token`` header and, for manager accounts,
``login-customer-id``: put both in the connection's extra ``headers``. Each resource is a GAQL
query; date-segmented ones filter ``segments.date`` on the server from the watermark. The
response rows are nested objects; they are flattened: ``metrics.costMicros`` -> ``cost_micros``,
``segments.date`` -> ``date``, ``campaign.id`` -> ``campaign_id``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .base import ApiHook, ApiSource, Resource, day_range

DEFAULT_VERSION = "v21"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, values in row.items():
        if not isinstance(values, dict):
            out[_snake(group)] = values
            continue
        for key, value in values.items():
            name = _snake(key) if group in ("metrics", "segments") else f"{_snake(group)}_{_snake(key)}"
            out[name] = value
    return out


def stream_records(body: Any) -> list[dict[str, Any]]:
    """searchStream answers a JSON array of batches, each with ``results``."""
    batches = body if isinstance(body, list) else [body]
    return [flatten(r) for batch in batches for r in (batch or {}).get("results", [])]


def _gaql(select: str, source: str, dated: bool) -> Any:
    def body(options: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
        query = f"SELECT {select} FROM {source}"
        if dated:
            days = day_range(options, filters.get("since"), default_days=30)
            first, last = (days[0], days[-1]) if days else (dt.date.today(), dt.date.today())
            query += f" WHERE segments.date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}'"
        return {"query": query}

    return body


def _stream_path(options: dict[str, Any], _: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    customer = str(options["customer_id"]).replace("-", "")
    return [
        (f"{options.get('api_version', DEFAULT_VERSION)}/customers/{customer}/googleAds:searchStream", {})
    ]


def _report(
    name: str, select: str, source: str, fields: dict[str, str], key: tuple[str, ...], dated: bool, doc: str
) -> Resource:
    return Resource(
        name=name,
        path="{api_version}/customers/{customer_id}/googleAds:searchStream",
        description=doc,
        fields=fields,
        primary_key=key,
        method="POST",
        body=_gaql(select, source, dated),
        server_filter={"param": "since", "field": "date", "format": "date"} if dated else None,
        records=stream_records,
        targets=_stream_path,
        required_options=("customer_id",),
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

GOOGLE_ADS = ApiSource(
    name="google_ads",
    title="Google Ads",
    base_url="https://googleads.googleapis.com/",
    docs_url="https://developers.google.com/google-ads/api/rest/overview",
    auth="OAuth2 refresh token (login = client id, password = client secret, extra refresh_token) "
    'and extra headers {"developer-token": ..., "login-customer-id": ...}',
    extra={
        "auth": "oauth2",
        "grant_type": "refresh_token",
        "token_url": "https://oauth2.googleapis.com/token",
        "token_auth": "body",
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
    },
)


class GoogleAdsHook(ApiHook):
    api = GOOGLE_ADS
    conn_type = "dpone_google_ads"
    hook_name = "dpone Google Ads"
