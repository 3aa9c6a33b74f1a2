"""Google Ads source against a fake of googleAds:searchStream (GAQL, OAuth2, developer token)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from urllib.parse import parse_qs

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from tests.apis.google_fake import ADS_SCOPE, GoogleTokenFake
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

CLIENT, SECRET, REFRESH, DEV = "ads-client", "ads-secret-9", "1//ads-refresh", "dev-token-ABC123"
CUSTOMER = "1234567890"
QUERIES: list[tuple[str, str]] = []  # (customer, GAQL)
ISSUERS: list[GoogleTokenFake] = []  # service-account token endpoints whose tokens the API accepts


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if path == "/token":
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("refresh_token") != REFRESH or form.get("client_secret") != SECRET:
            return _json(400, {"error": "invalid_grant"})
        return _json(200, {"access_token": "ads-access", "expires_in": 3600})
    bearer = headers.get("Authorization", "").removeprefix("Bearer ")  # type: ignore[attr-defined]
    if bearer != "ads-access" and not any(bearer in issuer.tokens for issuer in ISSUERS):
        return _json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    if headers.get("developer-token") != DEV:  # type: ignore[attr-defined]
        return _json(
            403,
            {
                "error": {
                    "code": 403,
                    "status": "PERMISSION_DENIED",
                    "details": [
                        {"errors": [{"errorCode": {"authorizationError": "DEVELOPER_TOKEN_NOT_APPROVED"}}]}
                    ],
                }
            },
        )
    found = re.fullmatch(r"/v21/customers/(\d+)/googleAds:searchStream", path)
    if not found or method != "POST" or found.group(1) not in CAMPAIGNS:
        return _json(404, {"error": {"code": 404}})
    gaql = json.loads(body)["query"]
    QUERIES.append((found.group(1), gaql))
    rows = gaql_rows(found.group(1), gaql)
    if isinstance(rows, str):
        error = {"code": 400, "status": "INVALID_ARGUMENT", "details": [{"errors": [{"message": rows}]}]}
        return _json(400, {"error": error})
    return _json(200, [{"results": rows[:3]}, {"results": rows[3:]}])  # several batches in one stream


# campaigns of each customer: id -> advertising channel type
CAMPAIGNS = {
    CUSTOMER: {11: "SEARCH", 12: "SEARCH"},
    "9876543210": {21: "SEARCH"},
    "5550001111": {
        31: "SEARCH",
        32: "DISPLAY",
        33: "PERFORMANCE_MAX",
        34: "DEMAND_GEN",
        35: "MULTI_CHANNEL",
        36: "SHOPPING",
    },
}
# what a GAQL query may select FROM each resource (the resource itself and those it attributes)
SELECTABLE = {
    "campaign": {"campaign", "customer"},
    "ad_group": {"ad_group", "campaign", "customer"},
    "keyword_view": {"keyword_view", "ad_group_criterion", "ad_group", "campaign", "customer"},
    "ad_group_ad": {"ad_group_ad", "ad_group", "campaign", "customer"},
    "webpage_view": {"webpage_view", "ad_group", "campaign", "customer"},
}
_CAMEL = re.compile(r"_([a-z])")


def gaql_rows(customer: str, gaql: str) -> list[dict] | str:
    """The rows of a GAQL query as searchStream returns them: only the selected fields, nested
    and camelCased, int64 as strings; one row per campaign (and per day when segmented),
    filtered by the channel type and date conditions. A string: Google's query error."""
    query = re.fullmatch(r"SELECT (.+) FROM (\w+)(?: WHERE (.+))?", gaql.strip())
    if not query:
        return "Error in query: unexpected input"
    selected = [f.strip() for f in query.group(1).split(",")]
    source, where = query.group(2), query.group(3) or ""
    if source not in SELECTABLE:
        return f"Error in query: unrecognized resource '{source}'"
    for name in selected:
        group = name.split(".")[0]
        if group not in SELECTABLE[source] | {"segments", "metrics"}:
            return f"PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE: {name}"
    if "segments.date" in selected and "segments.date" not in where:
        return "Filtering on a date range is required when segments.date is selected"
    days: list[dt.date | None] = [None]
    if "segments.date" in where:
        first, last = re.search(r"segments\.date BETWEEN '([\d-]+)' AND '([\d-]+)'", where).groups()
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    channel = re.search(r"campaign\.advertising_channel_type (=|!=) '(\w+)'", where)
    rows = []
    for campaign, kind in CAMPAIGNS[customer].items():
        if channel and (kind == channel.group(2)) != (channel.group(1) == "="):
            continue
        for day in days:
            values = {
                "customer.id": customer,
                "campaign.id": str(campaign),
                "campaign.name": f"C{campaign}",
                "campaign.status": "ENABLED",
                "campaign.advertising_channel_type": kind,
                "ad_group.id": str(campaign * 100),
                "ad_group_criterion.criterion_id": str(campaign * 1000),
                "ad_group_criterion.keyword.text": f"kw {campaign}",
                "ad_group_ad.ad.id": str(campaign * 10000),
                "webpage_view.resource_name": f"customers/{customer}/webpageViews/{campaign * 100}~{campaign * 1000}",
                "segments.date": day and day.isoformat(),
                "metrics.impressions": "100",
                "metrics.clicks": "7",
                "metrics.cost_micros": "1500000",
                "metrics.conversions": 1.5,
                "metrics.conversions_value": 30.0,
            }
            row: dict = {}
            for name in selected:
                *groups, leaf = [_CAMEL.sub(lambda m: m.group(1).upper(), p) for p in name.split(".")]
                node = row
                for group in groups:
                    node = node.setdefault(group, {})
                node[leaf] = values.get(name)
            rows.append(row)
    return rows


@pytest.fixture
def ads():
    QUERIES.clear()
    fake = VendorFake(route)
    extra = {
        "refresh_token": REFRESH,
        "token_url": f"{fake.url}/token",
        "headers": {"developer-token": DEV},
        "max_retries": 2,
    }
    os.environ["AIRFLOW_CONN_ADS"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "login": CLIENT, "password": SECRET, "extra": extra}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, keys: list[str], **source):
    return parse_manifest(
        {
            "pipeline": "ads",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "google_ads",
                        "conn_id": "ads",
                        "resource": resource,
                        "options": options
                        if "customer_ids" in options
                        else {"customer_id": "123-456-7890", **options},
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.ads_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": keys,
                    },
                }
            ],
        }
    )


def test_campaigns_are_flattened(ads, clean_pg) -> None:
    assert run(manifest("campaigns", {}, ["campaign_id"]), "r1").rows == 2
    assert clean_pg.query(
        "dst",
        "select campaign_id, campaign_name, campaign_advertising_channel_type from raw.ads_campaigns order by 1",
    ) == [
        (11, "C11", "SEARCH"),
        (12, "C12", "SEARCH"),
    ]


def test_daily_stats_filter_segments_date_on_the_server(ads, clean_pg) -> None:
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    m = manifest(
        "campaign_stats",
        {"start_date": "2026-03-01", "end_date": "2026-03-03"},
        ["campaign_id", "date"],
        **inc,
    )
    assert run(m, "r1").rows == 6
    assert "WHERE segments.date BETWEEN '2026-03-01' AND '2026-03-03'" in QUERIES[-1][1]
    run(manifest("campaign_stats", {"end_date": "2026-03-05"}, ["campaign_id", "date"], **inc), "r2")
    assert "BETWEEN '2026-02-28' AND '2026-03-05'" in QUERIES[-1][1]  # the watermark minus 3 days
    rows = clean_pg.query(
        "dst", "select count(*), sum(cost_micros), max(date)::text from raw.ads_campaign_stats"
    )
    assert rows == [(12, 18000000, "2026-03-05")]  # 02-28..03-05, two campaigns a day, merged
    asked = len(QUERIES)
    past = run(manifest("campaign_stats", {"end_date": "2026-02-20"}, ["campaign_id", "date"], **inc), "r3")
    assert past.rows == 0 and len(QUERIES) == asked  # the watermark is past end_date: nothing asked
    assert clean_pg.query("dst", "select count(*) from raw.ads_campaign_stats") == [(12,)]


def test_an_unapproved_developer_token_fails_without_retries(ads, clean_pg) -> None:
    extra = {
        "refresh_token": REFRESH,
        "token_url": f"{ads.url}/token",
        "headers": {"developer-token": "unapproved"},
    }
    os.environ["AIRFLOW_CONN_ADS"] = json.dumps(
        {"conn_type": "http", "host": ads.url, "login": CLIENT, "password": SECRET, "extra": extra}
    )
    with pytest.raises(AuthError, match="returned 403") as caught:
        run(manifest("campaigns", {}, ["campaign_id"]), "r1")
    assert SECRET not in str(caught.value) and REFRESH not in str(caught.value)


def test_resource_exhausted_and_server_errors_are_retried(ads, clean_pg) -> None:
    ads.faults = [
        _json(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}, {"Retry-After": "0"}),
        _json(503, {}),
    ]
    assert run(manifest("campaigns", {}, ["campaign_id"]), "r1").rows == 2


@pytest.fixture
def sa(ads):
    """A service account (its token endpoint on its own socket) instead of the refresh token."""
    issuer = GoogleTokenFake(ADS_SCOPE)
    ISSUERS.append(issuer)
    extra = {"service_account_key": json.dumps(issuer.key()), "headers": {"developer-token": DEV}}
    os.environ["AIRFLOW_CONN_ADS"] = json.dumps({"conn_type": "http", "host": ads.url, "extra": extra})
    yield issuer
    ISSUERS.remove(issuer)
    issuer.close()


def test_a_service_account_reads_with_the_adwords_scope(ads, sa, clean_pg) -> None:
    assert run(manifest("campaigns", {}, ["campaign_id"]), "r1").rows == 2
    assert len(sa.grants) == 1 and sa.grants[0]["scope"] == ADS_SCOPE  # signature verified by the fake
    (request,) = ads.log
    assert request["headers"]["Authorization"] == f"Bearer {sa.tokens[0]}"
    assert "assertion" not in repr(ads.log) and "Authorization" not in sa.fake.log[0]["headers"]


def test_several_customers_are_read_one_query_each_and_each_row_names_its_customer(ads, sa, clean_pg) -> None:
    m = manifest(
        "campaign_stats",
        {
            "customer_ids": ["123-456-7890", "987-654-3210"],
            "start_date": "2026-03-01",
            "end_date": "2026-03-02",
        },
        ["campaign_id", "date"],
    )
    assert run(m, "r1").rows == 6  # (2 + 1 campaigns) x 2 days
    assert [customer for customer, _ in QUERIES] == [CUSTOMER, "9876543210"]
    assert len(sa.grants) == 1  # the token is cached across the customers' requests
    rows = clean_pg.query(
        "dst", "select customer_id, count(*) from raw.ads_campaign_stats group by 1 order by 1"
    )
    assert rows == [(1234567890, 4), (9876543210, 2)]


STANDARD = {  # resource -> (FROM, its channel condition, the campaigns of customer 5550001111 it reads)
    "keyword_stats": (
        "keyword_view",
        "campaign.advertising_channel_type != 'MULTI_CHANNEL'",
        {31, 32, 33, 34, 36},
    ),
    "display_stats": ("ad_group_ad", "campaign.advertising_channel_type = 'DISPLAY'", {32}),
    "webpage_stats": ("webpage_view", None, {31, 32, 33, 34, 35, 36}),
    "pmax_stats": ("campaign", "campaign.advertising_channel_type = 'PERFORMANCE_MAX'", {33}),
    "demand_gen_stats": ("campaign", "campaign.advertising_channel_type = 'DEMAND_GEN'", {34}),
    "app_stats": ("campaign", "campaign.advertising_channel_type = 'MULTI_CHANNEL'", {35}),
    "shopping_stats": ("campaign", "campaign.advertising_channel_type = 'SHOPPING'", {36}),
}


@pytest.mark.parametrize("resource", sorted(STANDARD))
def test_the_standard_reports_query_their_view_and_channel(resource: str, ads, clean_pg) -> None:
    from airflow_provider_dpone.apis.google_ads import GOOGLE_ADS

    source, condition, campaigns = STANDARD[resource]
    key = list(GOOGLE_ADS.resources[resource].primary_key)
    options = {"customer_ids": "555-000-1111", "start_date": "2026-03-01", "end_date": "2026-03-01"}
    assert run(manifest(resource, options, key), "r1").rows == len(campaigns)
    ((_, gaql),) = QUERIES
    assert f" FROM {source} " in gaql and (condition is None or condition in gaql)
    for field in (
        "segments.date",
        "campaign.id",
        "campaign.name",
        "metrics.impressions",
        "metrics.clicks",
        "metrics.cost_micros",
    ):
        assert field in gaql
    rows = clean_pg.query(
        "dst",
        f"select customer_id, campaign_id, campaign_name, date::text, impressions, clicks, cost_micros from raw.ads_{resource} order by 2",
    )
    assert rows == [(5550001111, c, f"C{c}", "2026-03-01", 100, 7, 1500000) for c in sorted(campaigns)]
    if resource == "keyword_stats":
        terms = clean_pg.query(
            "dst", "select ad_group_criterion_keyword_text from raw.ads_keyword_stats order by 1"
        )
        assert terms[0] == ("kw 31",)


@pytest.mark.integration_live
def test_live_campaigns_with_a_service_account() -> None:
    needed = (
        "DPONE_LIVE_ADS_SERVICE_ACCOUNT_KEY",
        "DPONE_LIVE_ADS_DEVELOPER_TOKEN",
        "DPONE_LIVE_ADS_CUSTOMER_ID",
    )
    if not all(os.environ.get(n) for n in needed):
        pytest.skip(
            f"live test: set {', '.join(needed)} (a service account's JSON key or its file's path, the "
            "account added as a user of the Ads account; DPONE_LIVE_ADS_SUBJECT for domain-wide delegation)"
        )
    from airflow_provider_dpone.apis.google_ads import GoogleAdsHook

    key = os.environ[needed[0]]
    if not key.lstrip().startswith("{"):
        with open(key) as f:
            key = f.read()
    extra = {
        "service_account_key": key,
        "service_account_subject": os.environ.get("DPONE_LIVE_ADS_SUBJECT"),
        "headers": {"developer-token": os.environ[needed[1]]},
    }
    os.environ["AIRFLOW_CONN_ADS"] = json.dumps({"conn_type": "http", "extra": extra})
    spec = manifest("campaigns", {"customer_id": os.environ[needed[2]]}, ["campaign_id"]).loads[0].source
    list(GoogleAdsHook(conn_id="ads").extract(spec, None).artifact.batches)


@pytest.mark.integration_live
def test_live_campaigns() -> None:
    needed = (
        "DPONE_LIVE_ADS_CLIENT_ID",
        "DPONE_LIVE_ADS_CLIENT_SECRET",
        "DPONE_LIVE_ADS_REFRESH_TOKEN",
        "DPONE_LIVE_ADS_DEVELOPER_TOKEN",
        "DPONE_LIVE_ADS_CUSTOMER_ID",
    )
    if not all(os.environ.get(n) for n in needed):
        pytest.skip(f"live test: set {', '.join(needed)}")
    from airflow_provider_dpone.apis.google_ads import GoogleAdsHook

    extra = {"refresh_token": os.environ[needed[2]], "headers": {"developer-token": os.environ[needed[3]]}}
    os.environ["AIRFLOW_CONN_ADS"] = json.dumps(
        {
            "conn_type": "http",
            "login": os.environ[needed[0]],
            "password": os.environ[needed[1]],
            "extra": extra,
        }
    )
    spec = manifest("campaigns", {"customer_id": os.environ[needed[4]]}, ["campaign_id"]).loads[0].source
    list(GoogleAdsHook(conn_id="ads").extract(spec, None).artifact.batches)
