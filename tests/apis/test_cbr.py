"""Central Bank of Russia source against a fake that reproduces cbr.ru's XML contract."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from decimal import Decimal

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, TransientError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.runtime.failpoints import AFTER_CHECKPOINT
from tests.apis.vendor_fake import VendorFake
from tests.helpers import run_first_load as run
from tests.helpers import run_killed

pytestmark = pytest.mark.integration

CURRENCIES = {"R01235": ("840", "USD", "Доллар США", 1), "R01239": ("978", "EUR", "Евро", 1)}


def _rate(day: dt.date, cid: str) -> str:
    base = 90 if cid == "R01235" else 100
    return f"{base + day.day / 100:.4f}".replace(".", ",")


def _effective(day: dt.date) -> dt.date:
    while day.weekday() >= 5:  # the rates of a weekend day are Friday's
        day -= dt.timedelta(days=1)
    return day


def _xml(text: str) -> bytes:
    return ('<?xml version="1.0" encoding="windows-1251"?>' + text).encode("cp1251")


def cbr_route(method: str, path: str, query: dict, headers: object, body: bytes):
    if path == "/scripts/XML_daily.asp":
        day = _effective(dt.datetime.strptime(query["date_req"], "%d/%m/%Y").date())
        valutes = "".join(
            f'<Valute ID="{cid}"><NumCode>{num}</NumCode><CharCode>{code}</CharCode><Nominal>{nom}</Nominal>'
            f"<Name>{name}</Name><Value>{_rate(day, cid)}</Value><VunitRate>{_rate(day, cid)}</VunitRate></Valute>"
            for cid, (num, code, name, nom) in CURRENCIES.items()
        )
        return (
            200,
            _xml(f'<ValCurs Date="{day:%d.%m.%Y}" name="Foreign Currency Market">{valutes}</ValCurs>'),
            {},
        )
    if path == "/scripts/XML_dynamic.asp":
        first = dt.datetime.strptime(query["date_req1"], "%d/%m/%Y").date()
        last = dt.datetime.strptime(query["date_req2"], "%d/%m/%Y").date()
        cid = query["VAL_NM_RQ"]
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        records = "".join(
            f'<Record Date="{d:%d.%m.%Y}" Id="{cid}"><Nominal>1</Nominal><Value>{_rate(d, cid)}</Value>'
            f"<VunitRate>{_rate(d, cid)}</VunitRate></Record>"
            for d in days
            if d.weekday() < 5
        )
        return (
            200,
            _xml(
                f'<ValCurs ID="{cid}" DateRange1="{first:%d.%m.%Y}" name="Foreign Currency Market Dynamic">{records}</ValCurs>'
            ),
            {},
        )
    if path == "/scripts/XML_valFull.asp":
        items = "".join(
            f'<Item ID="{cid}"><Name>{name}</Name><EngName>{code}</EngName><Nominal>{nom}</Nominal>'
            f"<ParentCode>{cid}    </ParentCode><ISO_Num_Code>{int(num)}</ISO_Num_Code><ISO_Char_Code>{code}</ISO_Char_Code></Item>"
            for cid, (num, code, name, nom) in CURRENCIES.items()
        )
        return 200, _xml(f'<Valuta name="Foreign Currency Market Lib">{items}</Valuta>'), {}
    return 404, b"Not Found", {}


@pytest.fixture
def cbr():
    fake = VendorFake(cbr_route)
    os.environ["AIRFLOW_CONN_CBR"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "extra": {"max_retries": 3}}
    )
    yield fake
    fake.close()


def manifest(resource: str, options: dict, sink: dict | None = None, **source):
    return parse_manifest(
        {
            "pipeline": "rates",
            "state": {"backend": "table", "conn_id": "dst"},
            "loads": [
                {
                    "name": resource,
                    "source": {
                        "connector": "cbr",
                        "conn_id": "cbr",
                        "resource": resource,
                        "options": options,
                        **source,
                    },
                    "sink": sink
                    or {
                        "connector": "postgres",
                        "conn_id": "dst",
                        "table": f"raw.cbr_{resource}",
                        "strategy": "incremental_merge",
                        "unique_key": ["date", "char_code"],
                    },
                }
            ],
        }
    )


WEEK = {"start_date": "2026-03-05", "end_date": "2026-03-10"}  # Thu .. Tue, a weekend inside


def test_daily_rates_over_a_range_with_a_weekend(cbr, clean_pg) -> None:
    pg = clean_pg
    report = run(manifest("daily_rates", WEEK), "r1")
    assert [q["query"]["date_req"] for q in cbr.log] == [f"{d:02d}/03/2026" for d in range(5, 11)]
    rows = pg.query("dst", "select date::text, char_code, value, name from raw.cbr_daily_rates order by 1, 2")
    assert [r[0] for r in rows[::2]] == [
        "2026-03-05",
        "2026-03-06",
        "2026-03-09",
        "2026-03-10",
    ]  # weekend = Friday
    assert rows[0][1:] == ("EUR", Decimal("100.0500"), "Евро")  # cp1251 and decimal commas
    assert report.rows == 8


def test_rate_limit_and_server_errors_are_retried(cbr, clean_pg) -> None:
    cbr.faults = [(429, b"Too Many Requests", {"Retry-After": "0"}), (503, b"busy", {})]
    assert (
        run(
            manifest(
                "currencies",
                {},
                {
                    "connector": "postgres",
                    "conn_id": "dst",
                    "table": "raw.cbr_currencies",
                    "strategy": "full_refresh",
                },
            ),
            "r1",
        ).rows
        == 2
    )
    assert len(cbr.log) == 3


def test_a_block_by_the_site_is_not_retried(cbr, clean_pg) -> None:
    cbr.faults = [(403, b"<html>Access denied</html>", {})]
    with pytest.raises(BadInputError, match="returned 403"):
        run(
            manifest(
                "currencies",
                {},
                {"connector": "postgres", "conn_id": "dst", "table": "raw.c", "strategy": "full_refresh"},
            ),
            "r1",
        )
    assert len(cbr.log) == 1


def test_dynamics_are_incremental_with_the_server_side_date_range(cbr, clean_pg) -> None:
    pg = clean_pg
    sink = {
        "connector": "postgres",
        "conn_id": "dst",
        "table": "raw.usd",
        "strategy": "incremental_merge",
        "unique_key": ["date", "id"],
    }
    inc = {"incremental": {"mode": "cursor", "cursor": "date"}}
    m = manifest(
        "dynamics",
        {"currency_id": "R01235", "start_date": "2026-03-02", "end_date": "2026-03-13"},
        sink,
        **inc,
    )
    assert run(m, "r1").rows == 10
    assert cbr.log[0]["query"] == {
        "date_req1": "02/03/2026",
        "date_req2": "13/03/2026",
        "VAL_NM_RQ": "R01235",
    }
    m2 = manifest("dynamics", {"currency_id": "R01235", "end_date": "2026-03-20"}, sink, **inc)
    second = run(m2, "r2")
    # from the watermark minus the Bank's default 3-day lookback (a merge), on the server
    assert cbr.log[-1]["query"]["date_req1"] == "10/03/2026"
    assert second.rows == 9  # 10..13 again (merged), then 16..20
    assert pg.query("dst", "select count(*), max(date)::text from raw.usd") == [(15, "2026-03-20")]


def test_incremental_on_a_resource_without_a_server_filter_is_refused(cbr, clean_pg) -> None:
    """Refused by validation (the catalogue's facts, contracts/api_catalog.py), before a run."""
    from airflow_provider_dpone.contracts.errors import ManifestError

    with pytest.raises(
        ManifestError, match=r"source.incremental: resource 'currencies' of 'cbr' has no server-side filter"
    ):
        run(manifest("currencies", {}, incremental={"mode": "cursor", "cursor": "id"}), "r1")
    with pytest.raises(
        ManifestError,
        match=r"source.resource: 'nope' is not a resource of 'cbr'; allowed: currencies, daily_rates, dynamics",
    ):
        run(manifest("nope", {}), "r1")
    with pytest.raises(
        ManifestError, match=r"source.incremental.cursor: resource 'daily_rates' filters on 'date', not 'id'"
    ):
        run(manifest("daily_rates", {}, incremental={"mode": "cursor", "cursor": "id"}), "r1")


def test_a_run_killed_mid_range_resumes_at_the_next_day(cbr, clean_pg) -> None:
    pg = clean_pg
    m = manifest("daily_rates", WEEK)

    # dies after the first day is staged and checkpointed
    assert run_killed(m, "r1", AFTER_CHECKPOINT) == -signal.SIGKILL
    cbr.log.clear()
    run(m, "r1")  # the retry
    assert [q["query"]["date_req"] for q in cbr.log] == [f"{d:02d}/03/2026" for d in range(6, 11)]
    assert pg.query("dst", "select count(*) from raw.cbr_daily_rates") == [(8,)]


def test_failures_are_transient_after_the_retries(cbr, clean_pg) -> None:
    cbr.faults = [(502, b"bad gateway", {})] * 5
    with pytest.raises(TransientError, match="502"):
        run(
            manifest(
                "currencies",
                {},
                {"connector": "postgres", "conn_id": "dst", "table": "raw.c", "strategy": "full_refresh"},
            ),
            "r1",
        )


@pytest.mark.integration_live
def test_live_cbr_daily_rates() -> None:
    if not os.environ.get("DPONE_LIVE_CBR"):
        pytest.skip(
            "live test: set DPONE_LIVE_CBR=1 on a machine that can reach www.cbr.ru (no credentials needed)"
        )
    from airflow_provider_dpone.apis.cbr import CbrHook

    os.environ.pop("AIRFLOW_CONN_CBR", None)
    spec = manifest("daily_rates", {"start_date": dt.date.today().isoformat()}).loads[0].source
    result = CbrHook(conn_id="cbr").extract(spec, None)
    rows = [r for batch in result.artifact.batches for r in batch]
    assert any(r[3] == "USD" for r in rows)
