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
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run

pytestmark = pytest.mark.integration

CLIENT, SECRET, REFRESH, DEV = "ads-client", "ads-secret-9", "1//ads-refresh", "dev-token-ABC123"
CUSTOMER = "1234567890"
QUERIES: list[str] = []


def _json(status: int, body: object, headers: dict | None = None):
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


def route(method: str, path: str, query: dict, headers: object, body: bytes):
    if path == "/token":
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("refresh_token") != REFRESH or form.get("client_secret") != SECRET:
            return _json(400, {"error": "invalid_grant"})
        return _json(200, {"access_token": "ads-access", "expires_in": 3600})
    if headers.get("Authorization") != "Bearer ads-access":  # type: ignore[attr-defined]
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
    if path != f"/v21/customers/{CUSTOMER}/googleAds:searchStream" or method != "POST":
        return _json(404, {"error": {"code": 404}})
    gaql = json.loads(body)["query"]
    QUERIES.append(gaql)
    if "FROM campaign" in gaql and "segments.date" not in gaql:
        results = [
            {
                "campaign": {
                    "resourceName": f"customers/{CUSTOMER}/campaigns/{i}",
                    "id": str(i),
                    "name": f"C{i}",
                    "status": "ENABLED",
                    "advertisingChannelType": "SEARCH",
                }
            }
            for i in (11, 12)
        ]
        return _json(200, [{"results": results, "fieldMask": "campaign.id,campaign.name", "requestId": "r1"}])
    first, last = re.search(r"BETWEEN '([\d-]+)' AND '([\d-]+)'", gaql).groups()
    days = [
        dt.date.fromisoformat(first) + dt.timedelta(days=i)
        for i in range((dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1)
    ]
    rows = [
        {
            "campaign": {"id": str(c)},
            "segments": {"date": d.isoformat()},
            "metrics": {"impressions": "100", "clicks": "7", "costMicros": "1500000", "conversions": 1.5},
        }
        for d in days
        for c in (11, 12)
    ]
    return _json(200, [{"results": rows[:3]}, {"results": rows[3:]}])  # several batches in one stream


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
                        "options": {"customer_id": "123-456-7890", **options},
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
    assert "WHERE segments.date BETWEEN '2026-03-01' AND '2026-03-03'" in QUERIES[-1]
    run(manifest("campaign_stats", {"end_date": "2026-03-05"}, ["campaign_id", "date"], **inc), "r2")
    assert "BETWEEN '2026-03-03' AND '2026-03-05'" in QUERIES[-1]  # from the watermark
    rows = clean_pg.query(
        "dst", "select count(*), sum(cost_micros), max(date)::text from raw.ads_campaign_stats"
    )
    assert rows == [(10, 15000000, "2026-03-05")]


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
