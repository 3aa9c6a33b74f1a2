"""AppsFlyer source against a fake of the Pull API v5 (CSV bodies, bearer token, daily ranges)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal

import pytest

from airflow_provider_dpone.apis.appsflyer import APPSFLYER
from airflow_provider_dpone.contracts.errors import BadInputError, QuotaExceededError, SourceContractError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.hooks.rest import AuthError
from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

TOKEN = "eyJhbGciOi.appsflyer-v2-token"
APP = "id123456789"
APP2 = "com.example.shop"  # an Android app: its package name
RAW_HEADER = [
    "Event Time",
    "Install Time",
    "Event Name",
    "Event Revenue",
    "Media Source",
    "Campaign",
    "AppsFlyer ID",
    "Platform",
    "Country Code",
    "App ID",
]


def _csv(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


RAW_REPORTS = {  # the Pull API's raw-data report paths (the vendor's names, hyphens included)
    "installs_report",
    "in_app_events_report",
    "uninstall_events_report",
    "installs-retarget",
    "in-app-events-retarget",
    "organic_installs_report",
    "organic_in_app_events_report",
    "organic_uninstall_events_report",
}
DEFAULT_MAX_ROWS = 200_000  # what the Pull API returns without maximum_rows
QUOTA_TEXT = {  # the vendor's daily-quota answers
    "raw": "You've reached the maximum number of install reports that can be downloaded today for this app.",
    "agg": "Limit reached for daily-report",
}


def _bound(value: str, end: bool) -> str:
    """``from``/``to`` as a comparable timestamp: a date covers its whole day."""
    return value if len(value) > 10 else value + (" 23:59:59" if end else " 00:00:00")


class AppsFlyerFake:
    """Raw reports cut at ``maximum_rows`` without saying so (as the vendor does); a daily
    quota of ``quota`` calls per report, then the vendor's quota answer with ``quota_status``."""

    def __init__(self) -> None:
        self.apps = {APP, APP2}  # the apps the token may read
        self.times: dict[str, list[str]] = {}  # day -> event times (default: 3 at 10:0i)
        self.app_times: dict[tuple[str, str], list[str]] = {}  # (app, day) -> event times of that app
        self.quota: int | None = None
        self.quota_status = 403
        self.calls: dict[str, int] = {}
        self.sizes: list[int] = []  # bytes of each raw report answered
        self.fake = VendorFake(self.route)
        self.url, self.log = self.fake.url, self.fake.log

    def route(self, method: str, path: str, query: dict, headers: object, body: bytes):
        if headers.get("Authorization") != f"Bearer {TOKEN}":  # type: ignore[attr-defined]
            return 401, b'{"error": "Unauthorized"}', {"Content-Type": "application/json"}
        parts = path.strip("/").split("/")
        if len(parts) != 7 or parts[:4] != ["api", parts[1], "export", "app"] or parts[4] not in self.apps:
            return 404, b"not found", {}
        kind, app, report = parts[1], parts[4], parts[5]
        self.calls[report] = self.calls.get(report, 0) + 1
        if self.quota is not None and self.calls[report] > self.quota:
            text = QUOTA_TEXT["raw" if kind == "raw-data" else "agg"]
            return self.quota_status, text.encode(), {"Content-Type": "text/plain"}
        low, high = _bound(query["from"], False), _bound(query["to"], True)
        if kind == "raw-data" and report in RAW_REPORTS:
            cap = int(query.get("maximum_rows", DEFAULT_MAX_ROWS))
            if cap > 1_000_000:
                return 400, b"maximum_rows must be at most 1000000", {}
            day = low[:10]
            times = self.app_times.get((app, day)) or self.times.get(
                day, [f"{day} 10:0{i}:00" for i in range(3)]
            )
            picked = [t for t in times if low <= t <= high][:cap]  # truncated silently
            rows = [  # an AppsFlyer ID is made per install of an app: each app has its own
                [
                    t,
                    t,
                    "install",
                    "",
                    "googleadwords_int",
                    "brand, search",
                    f"af-{app}-{t}-{i}",
                    "android",
                    "DE",
                    app,
                ]
                for i, t in enumerate(picked)
            ]
            body = _csv(RAW_HEADER, rows)
            self.sizes.append(len(body))
            return 200, body, {"Content-Type": "text/csv"}
        if kind == "agg-data" and report in ("partners_by_date_report", "daily_report"):
            if len(query["from"]) != 10 or len(query["to"]) != 10 or "maximum_rows" in query:
                return 400, b"aggregate reports take from/to as yyyy-mm-dd and no maximum_rows", {}
            day = query["from"]
            header = [
                "Date",
                "Agency/PMD (af_prt)",
                "Media Source (pid)",
                "Campaign (c)",
                "Impressions",
                "Clicks",
                "Installs",
                "Total Revenue",
                "Total Cost",
            ]
            cost = "N/A" if day.endswith("2") else "3.10"
            row = [day, "None", "facebook", "spring", 1000, 50, 5, "12.50", cost]
            return 200, _csv(header, [row]), {"Content-Type": "text/csv"}
        return 404, b"not found", {}

    @property
    def faults(self) -> list:
        return self.fake.faults

    @faults.setter
    def faults(self, replies: list) -> None:
        self.fake.faults = replies

    def close(self) -> None:
        self.fake.close()


@pytest.fixture
def af():
    fake = AppsFlyerFake()
    os.environ["AIRFLOW_CONN_AF"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": TOKEN, "extra": {"max_retries": 2}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, keys: list[str], **source):
    """A load of ``resource``: merged on ``keys``, or appended without them."""
    sink = (
        {"strategy": "incremental_merge", "unique_key": keys} if keys else {"strategy": "incremental_append"}
    )
    return parse_manifest(
        {
            "pipeline": "mobile",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "appsflyer",
                        "conn_id": "af",
                        "resource": resource,
                        "options": options if "app_ids" in options else {"app_id": APP, **options},
                        **source,
                    },
                    "sink": {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.af_{resource}",
                        **sink,
                    },
                }
            ],
        }
    )


INC = {"incremental": {"mode": "cursor", "cursor": "event_time"}}


def test_installs_day_by_day_incremental_from_the_watermark(af, clean_pg) -> None:
    m = manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-03"}, ["appsflyer_id"], **INC)
    assert run(m, "r1").rows == 9
    assert [q["query"]["from"] for q in af.log] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    row = clean_pg.query(
        "dst",
        "select event_time::text, media_source, campaign, country_code from raw.af_installs order by 1 limit 1",
    )
    assert row == [("2026-03-01 10:00:00", "googleadwords_int", "brand, search", "DE")]
    af.log.clear()
    run(manifest("installs", {"end_date": "2026-03-04"}, ["appsflyer_id"], **INC), "r2")
    days = [q["query"]["from"] for q in af.log]  # a merge re-reads AppsFlyer's default 10 days
    assert days[0] == "2026-02-21" and days[-1] == "2026-03-04" and len(days) == 12
    # the fake serves 3 installs a day: 02-21..03-04 merged, 12 days
    assert clean_pg.query("dst", "select count(*), count(distinct appsflyer_id) from raw.af_installs") == [
        (36, 36)
    ]


def test_aggregate_headers_become_column_names(af, clean_pg) -> None:
    keys = ["date", "agency_pmd", "media_source", "campaign"]
    with pytest.raises(Exception, match="field 'total_cost'"):  # "N/A" is not a number: named clearly
        run(manifest("partners_by_date", {"start_date": "2026-03-01", "end_date": "2026-03-02"}, keys), "r1")
    report = run(
        manifest("partners_by_date", {"start_date": "2026-03-03", "end_date": "2026-03-03"}, keys), "r2"
    )
    assert report.rows == 1
    assert clean_pg.query(
        "dst", "select media_source, installs, total_revenue::text from raw.af_partners_by_date"
    ) == [("facebook", 5, "12.500000")]


def test_an_invalid_token_is_not_retried(af, clean_pg) -> None:
    os.environ["AIRFLOW_CONN_AF"] = json.dumps({"conn_type": "http", "host": af.url, "password": "expired"})
    with pytest.raises(AuthError, match="returned 401"):
        run(
            manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-01"}, ["appsflyer_id"]),
            "r1",
        )
    assert len(af.log) == 1


def test_limits_and_server_errors_are_retried(af, clean_pg) -> None:
    af.faults = [(429, b"Limit reached", {"Retry-After": "0"}), (500, b"", {})]
    assert (
        run(
            manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-01"}, ["appsflyer_id"]),
            "r1",
        ).rows
        == 3
    )


def test_a_run_killed_mid_range_resumes_at_the_next_day(af, clean_pg) -> None:
    m = manifest("installs", {"start_date": "2026-03-01", "end_date": "2026-03-04"}, ["appsflyer_id"])

    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    af.log.clear()
    run(m, "r1")
    assert [q["query"]["from"] for q in af.log] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert clean_pg.query("dst", "select count(*) from raw.af_installs") == [(12,)]


def _header(entry: dict, name: str) -> str | None:
    return {k.lower(): v for k, v in entry["headers"].items()}.get(name.lower())


ONE_DAY = {"start_date": "2026-03-01", "end_date": "2026-03-01"}


def test_reports_are_asked_for_as_csv_with_maximum_rows(af, clean_pg) -> None:
    run(manifest("installs", ONE_DAY, ["appsflyer_id"]), "r1")
    assert _header(af.log[0], "Accept") == "text/csv"
    assert af.log[0]["query"]["maximum_rows"] == "1000000"  # not the vendor's 200,000 default
    af.log.clear()
    run(manifest("installs", {**ONE_DAY, "maximum_rows": 5000}, ["appsflyer_id"]), "r2")
    assert af.log[0]["query"]["maximum_rows"] == "5000"
    with pytest.raises(BadInputError, match="maximum_rows"):
        run(manifest("installs", {**ONE_DAY, "maximum_rows": 2_000_000}, ["appsflyer_id"]), "r3")


def test_a_report_at_the_row_cap_is_split_instead_of_truncated(af, clean_pg) -> None:
    day = "2026-03-01"
    af.times[day] = [f"{day} {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 10)]  # 144
    report = run(manifest("installs", {**ONE_DAY, "maximum_rows": 100}, ["appsflyer_id"]), "r1")
    assert report.rows == 144
    assert clean_pg.query("dst", "select count(distinct appsflyer_id) from raw.af_installs") == [(144,)]
    windows = [(q["query"]["from"], q["query"]["to"]) for q in af.log]
    assert windows == [
        (day, day),  # 100 rows: at the cap, not loaded
        (f"{day} 00:00:00", f"{day} 11:59:59"),
        (f"{day} 12:00:00", f"{day} 23:59:59"),
    ]


def test_a_window_too_short_to_split_fails_rather_than_load_a_truncated_report(af, clean_pg) -> None:
    day = "2026-03-01"
    af.times[day] = [f"{day} 10:00:00"] * 120  # one second holds more than the cap
    with pytest.raises(SourceContractError, match="maximum_rows") as caught:
        run(manifest("installs", {**ONE_DAY, "maximum_rows": 100}, ["appsflyer_id"]), "r1")
    assert "too short to split" in str(caught.value) and "2026-03-01 10:00" in str(caught.value)
    assert clean_pg.query(
        "dst", "select count(*) from information_schema.tables where table_name = 'af_installs'"
    ) == [(0,)]


@pytest.mark.parametrize("status", [400, 403, 429])
@pytest.mark.parametrize(
    ("resource", "keys"),
    [("installs", ["appsflyer_id"]), ("daily_report", ["date", "agency_pmd", "media_source", "campaign"])],
)
def test_a_used_up_daily_quota_is_a_quota_error_not_credentials_and_not_retried(
    af, clean_pg, status: int, resource: str, keys: list[str]
) -> None:
    af.quota, af.quota_status = 0, status
    with pytest.raises(QuotaExceededError, match="quota") as caught:
        run(manifest(resource, ONE_DAY, keys), "r1")
    assert not isinstance(caught.value, AuthError) and not caught.value.retryable
    assert "credentials" not in str(caught.value)
    assert len(af.log) == 1


@pytest.mark.parametrize(
    ("resource", "report", "keys"),
    [
        ("uninstall_events", "uninstall_events_report", ["appsflyer_id", "event_time"]),
        ("installs_retarget", "installs-retarget", ["appsflyer_id", "event_time"]),
        ("in_app_events_retarget", "in-app-events-retarget", []),
        ("organic_in_app_events", "organic_in_app_events_report", []),
        ("organic_uninstall_events", "organic_uninstall_events_report", ["appsflyer_id", "event_time"]),
    ],
)
def test_the_other_raw_reports(af, clean_pg, resource: str, report: str, keys: list[str]) -> None:
    assert run(manifest(resource, ONE_DAY, keys), "r1").rows == 3  # no keys: appended
    assert af.log[0]["path"] == f"/api/raw-data/export/app/{APP}/{report}/v5"
    assert af.log[0]["query"]["maximum_rows"] == "1000000"


def test_the_daily_report_takes_dates_and_no_row_cap(af, clean_pg) -> None:
    keys = ["date", "agency_pmd", "media_source", "campaign"]
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    m = manifest("daily_report", {"start_date": "2026-03-03", "end_date": "2026-03-04"}, keys, **inc)
    assert run(m, "r1").rows == 2
    assert [e["path"] for e in af.log] == [f"/api/agg-data/export/app/{APP}/daily_report/v5"] * 2
    assert [(e["query"]["from"], e["query"]["to"]) for e in af.log] == [
        ("2026-03-03",) * 2,
        ("2026-03-04",) * 2,
    ]
    assert not [e for e in af.log if "maximum_rows" in e["query"] or "timezone" in e["query"]]
    assert _header(af.log[0], "Accept") == "text/csv"


@pytest.mark.integration_live
def test_live_installs() -> None:
    token, app = os.environ.get("DPONE_LIVE_APPSFLYER_TOKEN"), os.environ.get("DPONE_LIVE_APPSFLYER_APP_ID")
    if not (token and app):
        pytest.skip("live test: set DPONE_LIVE_APPSFLYER_TOKEN and DPONE_LIVE_APPSFLYER_APP_ID")
    from airflow_provider_dpone.apis.appsflyer import AppsFlyerHook

    os.environ["AIRFLOW_CONN_AF"] = json.dumps({"conn_type": "http", "password": token})
    spec = manifest("installs", {"app_id": app}, ["appsflyer_id"]).loads[0].source
    list(AppsFlyerHook(conn_id="af").extract(spec, None).artifact.batches)


def test_an_unkeyed_append_never_loads_the_watermark_day_twice(af, clean_pg) -> None:
    """in_app_events has no key: it is appended. The day filter hands the watermark day back;
    its rows at or before the watermark were loaded by the first run and are skipped."""
    inc = {"incremental": {"mode": "cursor", "cursor": "event_time"}}
    assert (
        run(
            manifest("in_app_events", {"start_date": "2026-03-01", "end_date": "2026-03-03"}, [], **inc), "r1"
        ).rows
        == 9
    )
    af.log.clear()
    second = run(manifest("in_app_events", {"end_date": "2026-03-04"}, [], **inc), "r2")
    assert [q["query"]["from"] for q in af.log] == ["2026-03-03", "2026-03-04"]
    assert second.rows == 3 and second.source["window"]["already_loaded"] == 3
    counts = clean_pg.query(
        "dst", "select count(*), count(distinct (appsflyer_id, event_time)) from raw.af_in_app_events"
    )
    assert counts == [(12, 12)]


def _asked(log: list[dict]) -> list[tuple[str, str]]:
    """(app, from) of each report asked for."""
    return [(e["path"].split("/")[5], e["query"]["from"]) for e in log]


def test_several_apps_are_read_day_by_day_and_every_row_names_its_app(af, clean_pg) -> None:
    days = {"start_date": "2026-03-01", "end_date": "2026-03-02"}
    keys = list(APPSFLYER.resources["installs"].primary_key)
    assert run(manifest("installs", {**days, "app_ids": f"{APP}, {APP2}"}, keys, **INC), "r1").rows == 12
    assert _asked(af.log) == [
        (APP, "2026-03-01"),
        (APP2, "2026-03-01"),
        (APP, "2026-03-02"),
        (APP2, "2026-03-02"),
    ]
    assert clean_pg.query("dst", "select app_id, count(*) from raw.af_installs group by 1 order by 1") == [
        (APP2, 6),
        (APP, 6),
    ]
    af.log.clear()
    keys = list(APPSFLYER.resources["daily_report"].primary_key)
    days = {"start_date": "2026-03-03", "end_date": "2026-03-04"}  # the fake's 03-02 costs "N/A"
    report = run(manifest("daily_report", {**days, "app_ids": [APP, APP2]}, keys), "r2")
    assert report.rows == 4  # the same day, agency, source and campaign once per app
    assert clean_pg.query("dst", "select count(distinct app_id) from raw.af_daily_report") == [(2,)]


@pytest.mark.unit
def test_every_key_tells_the_apps_apart() -> None:
    for resource in APPSFLYER.resources.values():
        key = resource.primary_key
        assert not key or (key[0] == "app_id" and "app_id" in resource.fields), resource.name


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"app_id": APP, "app_ids": [APP2]}, "app_ids: give app_id"),
        ({"app_id": None}, "app_id \\(one app\\) or app_ids"),
        ({"app_ids": []}, "app_ids: a list"),
        ({"app_ids": f"{APP},,{APP2}"}, "app_ids: '' is not an app id"),
        ({"app_ids": ["../other"]}, "app_ids: '../other' is not an app id"),
    ],
)
def test_the_apps_must_be_given_one_way_or_the_run_fails_naming_the_field(
    af, clean_pg, options: dict, named: str
) -> None:
    with pytest.raises(BadInputError, match=named):
        run(manifest("installs", {**ONE_DAY, **options}, ["app_id", "appsflyer_id"]), "r1")
    assert af.log == []  # before any request


def test_a_run_killed_between_apps_resumes_at_the_next_app(af, clean_pg) -> None:
    options = {"start_date": "2026-03-01", "end_date": "2026-03-02", "app_ids": [APP, APP2]}
    m = manifest("installs", options, ["app_id", "appsflyer_id"])
    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    af.log.clear()
    run(m, "r1")
    assert _asked(af.log) == [(APP2, "2026-03-01"), (APP, "2026-03-02"), (APP2, "2026-03-02")]
    assert clean_pg.query("dst", "select count(*) from raw.af_installs") == [(12,)]


def test_a_report_at_the_row_cap_is_split_for_its_app_only(af, clean_pg) -> None:
    day = "2026-03-01"
    af.app_times[(APP2, day)] = [f"{day} {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 10)]
    options = {**ONE_DAY, "maximum_rows": 100, "app_ids": [APP, APP2]}
    assert run(manifest("installs", options, ["app_id", "appsflyer_id"]), "r1").rows == 3 + 144
    asked = [(e["path"].split("/")[5], e["query"]["from"], e["query"]["to"]) for e in af.log]
    assert asked == [
        (APP, day, day),
        (APP2, day, day),  # 100 rows: at the cap, split
        (APP2, f"{day} 00:00:00", f"{day} 11:59:59"),
        (APP2, f"{day} 12:00:00", f"{day} 23:59:59"),
    ]
    assert clean_pg.query("dst", "select app_id, count(*) from raw.af_installs group by 1 order by 1") == [
        (APP2, 144),
        (APP, 3),
    ]


def test_a_report_over_the_response_size_limit_is_split_instead_of_failing(af, clean_pg) -> None:
    """A raw report larger than the connection's max_response_bytes (memory stays bounded by
    it) is read as two halves of its window, down to a minute, rather than fail every run."""
    day = "2026-03-01"
    af.times[day] = [f"{day} {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 10)]  # 144
    run(manifest("installs", ONE_DAY, ["appsflyer_id"]), "r0")
    whole = af.sizes[-1]  # the day's report, in bytes
    af.log.clear()
    clean_pg.execute("dst", "drop table raw.af_installs; delete from dpone.state")
    os.environ["AIRFLOW_CONN_AF"] = json.dumps(
        {"conn_type": "http", "host": af.url, "password": TOKEN,
         "extra": {"max_retries": 2, "max_response_bytes": int(whole * 0.7)}}
    )  # fmt: skip
    report = run(manifest("installs", ONE_DAY, ["appsflyer_id"]), "r1")
    assert report.rows == 144
    assert clean_pg.query("dst", "select count(distinct appsflyer_id) from raw.af_installs") == [(144,)]
    windows = [(q["query"]["from"], q["query"]["to"]) for q in af.log]
    assert windows == [
        (day, day),  # over the limit: not used
        (f"{day} 00:00:00", f"{day} 11:59:59"),
        (f"{day} 12:00:00", f"{day} 23:59:59"),
    ]
