"""Client-side pacing: a token bucket per rate, the vendors' default rates, and the manifest's
``requests_per_second``. Time is a fake clock that moves only when the pace sleeps."""

from __future__ import annotations

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
