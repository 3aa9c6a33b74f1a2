"""Similarweb REST API: v1 website traffic and engagement, v4 website keywords
(https://developers.similarweb.com/docs).

Auth: the API key in the connection's password, sent as the ``api_key`` query parameter.
``options.domains`` lists the domains. v1: each metric is one endpoint per domain; dates are
months (``YYYY-MM``) for monthly granularity, days for daily; ``start_date`` is the server-side
filter, so incremental runs ask only for the periods after the watermark. v4 ``keywords``: one
request series per domain and month (``start_date`` = ``end_date`` = the month; the API takes
one month per request), offset pages of ``limit`` keywords. The default end is the last full
month (a month's data is published after it ends).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from ..contracts.artifacts import ExtractResult
from ..contracts.errors import BadInputError
from ..contracts.sources import EndpointSource, ResourceSource, SourceSpec, source_of
from ..hooks.rest_pages import Read, require
from ..sql.extract_plan import CursorPlan
from .base import ApiHook, ApiSource, Resource, resource_read

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


KEYWORDS_PATH = "v4/website-analysis/keywords"
KEYWORDS_LIMIT = 2000  # keywords per page (the API's limit parameter)
# A keyword record of GET /v4/website-analysis/keywords, plus the request's domain and month.
KEYWORD_FIELDS = {
    "domain": "string",
    "month": "date",
    "keyword": "string",
    "clicks": "float64",
    "traffic_share": "float64",
    "difficulty": "int64",
    "competition": "float64",
    "primary_intent": "string",
    "secondary_intent": "string",
    "volume": "int64",
    "cpc": "float64",
    "cpc_low_bid": "float64",
    "cpc_high_bid": "float64",
    "zero_clicks_share": "float64",
    "position": "int64",
    "serp_features": "json",
    "top_url": "string",
}


def _month(value: Any, name: str) -> dt.date:
    """The first day of the month ``value`` names (``YYYY-MM`` or a date in it)."""
    try:
        return dt.date.fromisoformat(f"{str(value)[:7]}-01")
    except ValueError:
        raise BadInputError(f"source.options.{name}: '{value}' is not a month (YYYY-MM)") from None


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def keyword_months(
    options: dict[str, Any], filters: dict[str, Any], today: dt.date | None = None
) -> list[str]:
    """The months to read (``YYYY-MM``, oldest first), each its own request series: after the
    stored watermark's month (``filters.since``), else from ``filters.start`` (a first run's
    initial_value) or ``options.start_date``, else just the end month; through
    ``options.end_date`` or the last full month. A month not yet over is refused."""
    last = last_published_day(today).replace(day=1)
    end = _month(options["end_date"], "end_date") if options.get("end_date") else last
    if end > last:
        raise BadInputError(
            f"source.options.end_date: {end:%Y-%m} is not over yet; Similarweb publishes a month after "
            f"it ends (the last full month is {last:%Y-%m})"
        )
    if filters.get("since"):
        start = _next_month(_month(filters["since"], "incremental"))
    elif filters.get("start") or options.get("start_date"):
        start = _month(filters.get("start") or options["start_date"], "start_date")
    else:
        start = end
    months = []
    while start <= end:
        months.append(f"{start:%Y-%m}")
        start = _next_month(start)
    return months


def keyword_targets(options: dict[str, Any], filters: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One request series per month and domain: ``URL`` (upper case, as the API names it) and
    ``start_date`` = ``end_date`` = the month."""
    domains = options.get("domains") or []
    if not domains:
        raise BadInputError("source.options.domains: list the domains to read, e.g. [example.com]")
    return [
        (KEYWORDS_PATH, {"URL": d, "start_date": m, "end_date": m})
        for m in keyword_months(options, filters)
        for d in domains
    ]


def keyword_records(body: Any) -> list[Any]:
    """The page's keyword records; a body without ``keywords`` fails (an empty list: 0 rows)."""
    return list(require(body, "keywords") or [])


def stamped(records: list[Any], params: dict[str, Any]) -> list[Any]:
    """``records`` with the request's ``domain`` (``URL``) and ``month`` (its first day)."""
    stamp = {"domain": params.get("URL"), "month": f"{params.get('start_date')}-01"}
    return [{**r, **stamp} if isinstance(r, dict) else r for r in records]


def page_limit(options: Mapping[str, Any]) -> int:
    """``options.limit``: keywords per page (default 2000)."""
    try:
        limit = int(options.get("limit", KEYWORDS_LIMIT))
    except (TypeError, ValueError):
        limit = 0
    if limit <= 0:
        raise BadInputError(f"source.options.limit: '{options.get('limit')}' is not a positive number")
    return limit


KEYWORDS = Resource(
    name="keywords",
    path=KEYWORDS_PATH,
    description="Search keywords per domain and month (GET /v4/website-analysis/keywords), "
    "one month per request, offset pages",
    fields=KEYWORD_FIELDS,
    primary_key=("domain", "month", "keyword"),
    params={
        "traffic_source": "Organic",
        "web_source": "Total",
        "branded_type": "All",
        "country": "world",
        "sort": None,
        "asc": None,
    },
    pagination={"type": "offset", "page_size": KEYWORDS_LIMIT},
    server_filter={"param": "since", "field": "month", "format": "date"},
    records=keyword_records,
    targets=keyword_targets,
    required_options=("domains",),
)

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
    }
    | {"keywords": KEYWORDS},
)


class SimilarwebHook(ApiHook):
    """Pages ``keywords`` by ``options.limit`` and stamps each record with its request's
    domain and month; a first run starts at its initial_value's month, a stored watermark's
    month is not read again."""

    api = SIMILARWEB
    conn_type = "dpone_similarweb"
    hook_name = "dpone Similarweb"

    def effective(self, spec: SourceSpec) -> EndpointSource:
        source = super().effective(spec)
        if self.resource(spec).name != "keywords":
            return source
        options = source_of(spec, ResourceSource, spec.connector).options
        pagination = source.endpoint.pagination.model_copy(update={"page_size": page_limit(options)})
        return source.model_copy(
            update={"endpoint": source.endpoint.model_copy(update={"pagination": pagination})}
        )

    def _rows(
        self,
        read: Read,
        filter_params: dict[str, Any],
        result: ExtractResult,
        resume: dict[str, Any] | None,
        plan: CursorPlan | None,
    ) -> Iterator[tuple[list, dict[str, Any]]]:
        first_run = plan is not None and plan.state is None and "since" in filter_params
        if first_run and resource_read(read).resource.name == "keywords":
            filter_params = {"start": filter_params["since"]}  # where to start, not what was loaded
        return super()._rows(read, filter_params, result, resume, plan)

    def pages(self, path: str, params: dict[str, Any], pagination: Any, selector: str, **kwargs: Any) -> Any:
        pages = super().pages(path, params, pagination, selector, **kwargs)
        read = kwargs.get("read")
        if read is None or kwargs.get("plain") or resource_read(read).resource.name != "keywords":
            return pages
        return ((stamped(records, params), nxt) for records, nxt in pages)
