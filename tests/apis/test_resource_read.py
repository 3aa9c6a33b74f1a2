"""One SaaS hook, several extracts: each extract's resource travels with it (``ResourceRead``),
not on the hook, so extracts in a row or interleaved each read their own resource."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest

from airflow_provider_dpone.apis.base import ResourceRead, resource_read
from airflow_provider_dpone.apis.cbr import CbrHook
from airflow_provider_dpone.apis.openexchangerates import OpenExchangeRatesHook
from airflow_provider_dpone.contracts.sources import SourceSpec, source_spec
from airflow_provider_dpone.hooks.rest import Read
from tests.apis.test_cbr import cbr_route
from tests.apis.test_openexchangerates import APP_ID, oxr_route
from tests.apis.vendor_fake import VendorFake

pytestmark = pytest.mark.unit


@pytest.fixture
def oxr() -> Iterator[VendorFake]:
    fake = VendorFake(oxr_route)
    os.environ["AIRFLOW_CONN_OXR_READS"] = json.dumps(
        {"conn_type": "http", "host": f"{fake.url}/api/", "password": APP_ID, "extra": {"max_retries": 0}}
    )
    yield fake
    fake.close()


@pytest.fixture
def cbr() -> Iterator[VendorFake]:
    fake = VendorFake(cbr_route)
    os.environ["AIRFLOW_CONN_CBR_READS"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "extra": {"max_retries": 0}}
    )
    yield fake
    fake.close()


def spec(connector: str, resource: str, **options: object) -> SourceSpec:
    conn_id = f"{connector}_reads"
    return source_spec({"connector": connector, "conn_id": conn_id, "resource": resource, "options": options})


def rows(result) -> list[list]:
    return [row for batch in result.artifact.batches for row in batch]


def test_one_hook_reads_two_resources_in_a_row_and_interleaved(oxr) -> None:
    hook = OpenExchangeRatesHook(conn_id="oxr_reads")
    latest, currencies = spec("openexchangerates", "latest"), spec("openexchangerates", "currencies")
    alone_latest = rows(OpenExchangeRatesHook(conn_id="oxr_reads").extract(latest, None))
    alone_currencies = rows(OpenExchangeRatesHook(conn_id="oxr_reads").extract(currencies, None))
    assert [r[3] for r in alone_latest] == ["EUR", "RUB", "USD"] and alone_latest[0][4] == Decimal("0.92")
    assert alone_currencies == [["EUR", "Euro"], ["RUB", "Russian Ruble"], ["USD", "United States Dollar"]]

    # in a row, on one hook
    assert rows(hook.extract(latest, None)) == alone_latest
    assert rows(hook.extract(currencies, None)) == alone_currencies
    # interleaved: the first extract is read after the second one was set up
    first = hook.extract(latest, None)
    second = hook.extract(currencies, None)
    assert first.schema.names != second.schema.names
    assert rows(second) == alone_currencies
    assert rows(first) == alone_latest


def test_distinct_keys_belong_to_one_extract(cbr) -> None:
    """daily_rates drops a day repeated by the API (a weekend answers Friday's rates): the keys
    seen are the extract's, so a second extract on the same hook reads them again."""
    hook = CbrHook(conn_id="cbr_reads")
    friday_to_monday = spec("cbr", "daily_rates", start_date="2026-01-02", end_date="2026-01-05")
    first = hook.extract(friday_to_monday, None)
    second = hook.extract(friday_to_monday, None)
    one, two = rows(first), rows(second)
    assert [(r[0].isoformat(), r[3]) for r in one] == [
        ("2026-01-02", "USD"),
        ("2026-01-02", "EUR"),
        ("2026-01-05", "USD"),
        ("2026-01-05", "EUR"),
    ]
    assert two == one
    assert rows(hook.extract(friday_to_monday, None)) == one


def test_the_read_is_built_per_extract_and_carries_the_resource() -> None:
    hook = OpenExchangeRatesHook(conn_id="oxr_reads")
    read = hook.read_of(spec("openexchangerates", "historical", date="2026-03-01", base="EUR"))
    again = hook.read_of(spec("openexchangerates", "historical", date="2026-03-01", base="EUR"))
    assert isinstance(read, ResourceRead) and read is not again and read.seen is not again.seen
    assert read.resource.name == "historical" and read.options["base"] == "EUR"
    assert read.endpoint.params["base"] == "EUR" and read.spec.kind == "endpoint"
    assert resource_read(read) is read
    with pytest.raises(TypeError, match="reads resources"):
        resource_read(Read(read.spec, read.endpoint))
