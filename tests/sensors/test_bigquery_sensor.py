"""DponeBigQuerySensor against the BigQuery emulator: rows past the watermark a load stored in a
real state table, or a query answering true; a query that would write is refused, not run."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_dpone.contracts.manifest import StateSpec
from airflow_provider_dpone.contracts.state import CursorState
from airflow_provider_dpone.sensors.bigquery import DponeBigQuerySensor
from airflow_provider_dpone.state import build_state_backend

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
STATE = {"backend": "table", "conn_id": "dst"}


def sensor(**kw: Any) -> DponeBigQuerySensor:
    return DponeBigQuerySensor(task_id="wait", conn_id="bq", **kw)


def test_rows_past_the_loads_watermark(clean_pg: Any, clean_bq: Any) -> None:
    clean_bq.client.create_dataset("raw")
    clean_bq.query("create table raw.events (id INT64, `at` TIMESTAMP)")
    clean_bq.query("insert into raw.events values (1, timestamp '2026-01-01 00:00:00+00')")
    s = sensor(table="raw.events", column="at", load="events", pipeline="shop", state=STATE)
    assert s.poke({}) is True  # nothing stored yet: any row is new
    backend = build_state_backend(StateSpec.model_validate(STATE))
    backend.commit("shop", "events", CursorState("at", "2026-01-01 00:00:00+00", "timestamptz"), "r1")
    assert s.poke({}) is False
    clean_bq.query("insert into raw.events values (2, timestamp '2026-01-02 00:00:00+00')")
    assert s.poke({}) is True


def test_a_query_answering_true_and_one_that_would_write(clean_bq: Any) -> None:
    clean_bq.client.create_dataset("raw")
    clean_bq.query("create table raw.batches (day DATE, ready BOOL)")
    s = sensor(sql="select count(*) from raw.batches where day = ?", parameters=["2026-11-30"])
    assert s.poke({}) is False
    clean_bq.query("insert into raw.batches values (date '2026-11-30', true)")
    assert s.poke({}) is True
    with pytest.raises(AirflowFailException):
        sensor(sql="delete from raw.batches where true").poke({})
    assert clean_bq.query("select count(*) from raw.batches") == [(1,)]


def test_a_missing_column_fails_without_a_retry(clean_pg: Any, clean_bq: Any) -> None:
    clean_bq.client.create_dataset("raw")
    clean_bq.query("create table raw.events (id INT64)")
    backend = build_state_backend(StateSpec.model_validate(STATE))
    backend.commit("shop", "events", CursorState("at", "5", "int64"), "r1")
    with pytest.raises(AirflowFailException, match="has no column 'at'"):
        sensor(table="raw.events", column="at", load="events", pipeline="shop", state=STATE).poke({})
