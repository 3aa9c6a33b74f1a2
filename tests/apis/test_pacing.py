"""Client-side pacing: a token bucket per rate, the vendors' default rates, and the manifest's
``requests_per_second``. Time is a fake clock that moves only when the pace sleeps."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os

import pytest

from airflow_provider_dpone.apis.openexchangerates import OpenExchangeRatesHook
from airflow_provider_dpone.contracts.sources import source_spec
from airflow_provider_dpone.hooks.rest_pace import Pace, pace_of
from tests.apis.test_openexchangerates import APP_ID, oxr_route
from tests.apis.vendor_fake import VendorFake

pytestmark = pytest.mark.paced


class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.mark.unit
def test_a_bucket_spaces_requests_at_its_rate_after_its_burst() -> None:
    t = FakeTime()
    pace = Pace(2.0, clock=t.clock, sleep=t.sleep)
    assert [pace.wait() for _ in range(3)] == [0.0, 0.5, 0.5]
    t = FakeTime()
    pace = Pace(1.0, burst=3, clock=t.clock, sleep=t.sleep)
    assert [round(pace.wait(), 6) for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.unit
def test_idle_time_refills_the_bucket_up_to_its_burst_only() -> None:
    t = FakeTime()
    pace = Pace(1.0, burst=2, clock=t.clock, sleep=t.sleep)
    pace.wait(), pace.wait()
    t.now += 60  # a long pause earns at most ``burst`` tokens
    assert [round(pace.wait(), 6) for _ in range(3)] == [0.0, 0.0, 1.0]


@pytest.mark.unit
def test_the_manifest_rate_wins_over_the_connection_and_zero_means_unpaced() -> None:
    assert pace_of({"requests_per_second": 2, "burst": 4}, None) == (2.0, 4)
    assert pace_of({"requests_per_second": 2}, 10.0) == (10.0, 1)
    assert pace_of({"requests_per_second": 0}, None) is None
    assert pace_of({}, None) is None
    with pytest.raises(ValueError):
        Pace(0)


@pytest.fixture
def oxr():
    fake = VendorFake(oxr_route)
    yield fake
    fake.close()


def _historical(oxr, extra: dict, **source) -> list[float]:
    """Read three days of rates; the pace's waits."""
    os.environ["AIRFLOW_CONN_OXR"] = json.dumps(
        {"conn_type": "http", "host": f"{oxr.url}/api/", "password": APP_ID, "extra": extra}
    )
    hook = OpenExchangeRatesHook(conn_id="oxr")
    t = FakeTime()
    hook.clock, hook.sleep = t.clock, t.sleep
    spec = source_spec(
        {
            "connector": "openexchangerates",
            "conn_id": "oxr",
            "resource": "historical",
            "options": {"start_date": "2026-03-01", "end_date": "2026-03-03"},
            **source,
        }
    )
    rows = [row for batch in hook.extract(spec, None).artifact.batches for row in batch]
    assert len(rows) == 9 and len(oxr.log) == 3
    return t.slept


@pytest.mark.integration
def test_a_vendor_is_paced_at_its_default_rate(oxr) -> None:
    assert _historical(oxr, {}) == [1.0, 1.0]  # Open Exchange Rates: one request a second


@pytest.mark.integration
def test_the_manifest_and_the_connection_change_the_pace(oxr) -> None:
    assert _historical(oxr, {}, requests_per_second=4) == [0.25, 0.25]
    oxr.log.clear()
    assert _historical(oxr, {"requests_per_second": 0}) == []  # the connection turns it off


@pytest.mark.unit
def test_a_negative_or_unreadable_rate_is_a_clear_error() -> None:
    from airflow_provider_dpone.contracts.errors import BadInputError

    with pytest.raises(BadInputError, match="0 \\(unpaced\\) or more"):
        pace_of({"requests_per_second": -1}, None)
    with pytest.raises(BadInputError, match="numbers"):
        pace_of({"requests_per_second": "fast"}, None)
    assert pace_of({"requests_per_second": "0.0"}, None) is None


@pytest.fixture
def af():
    from tests.apis.test_appsflyer import TOKEN, AppsFlyerFake

    fake = AppsFlyerFake()
    os.environ["AIRFLOW_CONN_AF"] = json.dumps({"conn_type": "http", "host": fake.url, "password": TOKEN})
    yield fake
    fake.close()


@pytest.mark.integration
def test_a_vendor_hooks_own_report_requests_take_the_manifest_pace(af) -> None:
    """AppsFlyer reads a report per window itself (not through the page reader): each call still
    waits for the load's pace."""
    from airflow_provider_dpone.apis.appsflyer import AppsFlyerHook
    from tests.apis.test_appsflyer import APP

    hook = AppsFlyerHook(conn_id="af")
    t = FakeTime()
    hook.clock, hook.sleep = t.clock, t.sleep
    spec = source_spec(
        {
            "connector": "appsflyer",
            "conn_id": "af",
            "resource": "installs",
            "options": {"app_id": APP, "start_date": "2026-03-01", "end_date": "2026-03-03"},
            "requests_per_second": 4,
        }
    )
    rows = [row for batch in hook.extract(spec, None).artifact.batches for row in batch]
    assert len(rows) == 9 and len(af.log) == 3 and t.slept == [0.25, 0.25]


def _paced(hook, spec: dict) -> tuple[int, list[float]]:
    """Extract ``spec`` through ``hook`` on a fake clock: the rows read and the waits slept."""
    t = FakeTime()
    hook.clock, hook.sleep = t.clock, t.sleep
    batches = hook.extract(source_spec(spec), None).artifact.batches
    return sum(len(batch) for batch in batches), t.slept


@pytest.mark.integration
def test_a_mindbox_export_start_polls_and_downloads_take_the_manifest_pace() -> None:
    """Starting the export, polling it and opening its files all wait for the load's pace (the
    ``0.0`` is the poll interval, ``options.poll_interval: 0``)."""
    from airflow_provider_dpone.apis.mindbox import MindboxHook
    from tests.apis.test_mindbox import ENDPOINT, KEY, MindboxFake

    fake = MindboxFake()  # 5 customers in 2 files
    fake.not_ready = 1
    os.environ["AIRFLOW_CONN_MBX_PACED"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": KEY}
    )
    try:
        rows, slept = _paced(
            MindboxHook(conn_id="mbx_paced"),
            {
                "connector": "mindbox",
                "conn_id": "mbx_paced",
                "resource": "export",
                "options": {"endpoint_id": ENDPOINT, "operation": "Export.Customers", "poll_interval": 0},
                "requests_per_second": 4,
            },
        )
    finally:
        fake.close()
    assert rows == 5 and len(fake.fake.log) == 5  # start, 2 polls, 2 files
    assert slept == [0.25, 0.0, 0.25, 0.25, 0.25]


@pytest.fixture
def omni():
    from tests.apis.test_omnidesk import EMAIL, KEY, route

    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_OMNI_PACED"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/api/", "login": EMAIL, "password": KEY}
    )
    yield fake
    fake.close()


@pytest.mark.integration
def test_omnidesk_window_and_message_requests_take_the_manifest_pace(omni) -> None:
    """Cases are read in update-time windows and messages over the cases listed in one: every
    request waits for the load's pace, in one bucket."""
    from airflow_provider_dpone.apis.omnidesk import OmnideskHook
    from tests.apis.test_omnidesk import BASE, CASES

    source = {"connector": "omnidesk", "conn_id": "omni_paced", "requests_per_second": 4}
    rows, slept = _paced(OmnideskHook(conn_id="omni_paced"), {**source, "resource": "cases"})
    assert rows == 250 and len(omni.log) == 3 and slept == [0.25, 0.25]
    omni.log.clear()
    start, end = BASE + dt.timedelta(hours=240), BASE + dt.timedelta(days=20)
    options = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    spec = {**source, "resource": "messages", "options": options}
    rows, slept = _paced(OmnideskHook(conn_id="omni_paced"), spec)
    cases = [c for c in CASES if start <= email.utils.parsedate_to_datetime(c["updated_at"]) <= end]
    assert cases and omni.log[0]["path"] == "/api/cases.json"
    assert len(omni.log) == 1 + len(cases) and slept == [0.25] * len(cases)  # a list page, then each case


@pytest.mark.integration
def test_yandex_webmaster_user_and_host_lookups_take_the_manifest_pace() -> None:
    """The user id (GET /user) and the hosts a resource fans out over are read at the load's
    pace, in the same bucket as the per-host requests."""
    from airflow_provider_dpone.apis.yandex_webmaster import YandexWebmasterHook
    from tests.apis.test_yandex_webmaster import TOKEN, USER, route

    fake = VendorFake(route)
    os.environ["AIRFLOW_CONN_YWM_PACED"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/v4/", "password": TOKEN}
    )
    try:
        spec = {"connector": "yandex_webmaster", "conn_id": "ywm_paced", "requests_per_second": 4}
        rows, slept = _paced(YandexWebmasterHook(conn_id="ywm_paced"), {**spec, "resource": "summary"})
    finally:
        fake.close()
    assert [q["path"] for q in fake.log][:2] == ["/v4/user", f"/v4/user/{USER}/hosts"]
    assert rows == 2 and len(fake.log) == 4 and slept == [0.25, 0.25, 0.25]
