"""Similarweb REST API v1: website traffic and engagement (https://developers.similarweb.com/docs).

Auth: the API key in the connection's password, sent as the ``api_key`` query parameter.
Each metric is one endpoint per domain; ``options.domains`` lists the domains. Dates are
months (``YYYY-MM``) for monthly granularity, days for daily; ``start_date`` is the server-side
filter, so incremental runs ask only for the periods after the watermark. The default end is
the last full month (a month's data is published after it ends).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..contracts.errors import BadInputError
from ..hooks.rest_pages import require
from .base import ApiHook, ApiSource, Resource

METRICS = {
    "visits": ("visits", "visits"),
    "pages_per_visit": ("pages-per-visit", "pages_per_visit"),
    "average_visit_duration": ("average-visit-duration", "average_visit_duration"),
    "bounce_rate": ("bounce-rate", "bounce_rate"),
}


def _records(key: str) -> Any:
    def records(body: Any) -> list[dict[str, Any]]:
        request = (body.get("meta") or {}).get("request") or {}
        return [
            {
                "domain": request.get("domain"),
                "country": request.get("country"),
                "date": point.get("date"),
                "value": point.get(key),
            }
            for point in require(body, key) or []  # absent: SourceContractError, not 0 rows
        ]

    return records


def _period(options: dict[str, Any], value: str | None) -> str | None:
    if value is None:
        return None
    day = dt.date.fromisoformat(str(value)[:10]) if len(str(value)) >= 10 else None
    if options.get("granularity", "monthly") == "monthly":
        return day.strftime("%Y-%m") if day else str(value)[:7]
    return day.isoformat() if day else str(value)


def last_published_day(today: dt.date | None = None) -> dt.date:
    """The last day of the previous month: Similarweb publishes a month after it ends."""
    return (today or dt.date.today()).replace(day=1) - dt.timedelta(days=1)


def _targets(slug: str) -> Any:
    def targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        domains = options.get("domains") or []
        if not domains:
            raise BadInputError("source.options.domains: list the domains to read, e.g. [example.com]")
        start = _period(options, filters.get("since")) or _period(options, options.get("start_date"))
        if start is None:
            raise BadInputError("source.options.start_date: the first period to read (YYYY-MM or YYYY-MM-DD)")
        params: dict[str, Any] = {
            "start_date": start,
            "end_date": _period(options, options.get("end_date"))
            or _period(options, last_published_day().isoformat()),
            "country": options.get("country", "world"),
            "granularity": options.get("granularity", "monthly"),
            "main_domain_only": str(bool(options.get("main_domain_only", False))).lower(),
            "format": "json",
        }
        return [(f"v1/website/{d}/total-traffic-and-engagement/{slug}", params) for d in domains]

    return targets


SIMILARWEB = ApiSource(
    name="similarweb",
    title="Similarweb",
    base_url="https://api.similarweb.com/",
    docs_url="https://developers.similarweb.com/docs/similarweb-web-traffic-api",
    auth="API key in the connection password, sent as the api_key query parameter",
    extra={"auth": "api_key", "api_key_param": "api_key", "requests_per_second": 1.0},
    rate_limits="10 requests per second per key, and data credits per plan; 429 is retried with backoff",
    resources={
        name: Resource(
            name=name,
            path=f"v1/website/{{domain}}/total-traffic-and-engagement/{slug}",
            description=f"Total (desktop + mobile web) {name.replace('_', ' ')} per period, per domain",
            fields={"domain": "string", "country": "string", "date": "date", "value": "float64"},
            primary_key=("domain", "country", "date"),
            server_filter={"param": "since", "field": "date", "format": "date"},
            records=_records(key),
            targets=_targets(slug),
            required_options=("domains",),
        )
        for name, (slug, key) in METRICS.items()
    },
)


class SimilarwebHook(ApiHook):
    api = SIMILARWEB
    conn_type = "dpone_similarweb"
    hook_name = "dpone Similarweb"
