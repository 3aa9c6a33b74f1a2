"""The ClickHouse watermark sensor against the real engine."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_dpone.sensors.clickhouse import ClickHouseWatermarkSensor

pytestmark = pytest.mark.integration


def test_pokes_until_rows_newer_than_the_watermark_arrive(clean_ch) -> None:
    ch = clean_ch
    ch.command("create table src.events (id Int64, at DateTime64(6, 'UTC')) engine = MergeTree order by id")
    ch.command("insert into src.events values (1, '2026-01-01 00:00:00')")
    sensor = ClickHouseWatermarkSensor(
        task_id="wait",
        conn_id="ch",
        table="src.events",
        column="at",
        watermark="2026-01-01 00:00:00",
        min_rows=2,
    )
    assert sensor.poke({}) is False
    ch.command("insert into src.events values (2, '2026-01-01 00:00:01')")
    assert sensor.poke({}) is False  # one newer row, two wanted
    ch.command("insert into src.events values (3, '2026-01-02 00:00:00')")
    assert sensor.poke({}) is True
    hostile = ClickHouseWatermarkSensor(
        task_id="w2", conn_id="ch", table="src.events", column="at", watermark="x') or 1=1 --"
    )
    with pytest.raises(Exception, match=r"(?i)cannot parse|DateTime"):  # bound as a DateTime64, never pasted
        hostile.poke({})
    missing = ClickHouseWatermarkSensor(task_id="w3", conn_id="ch", table="src.events", column="nope")
    with pytest.raises(AirflowFailException, match=r"\[DPONE100\] column 'nope'"):  # no retry fixes it
        missing.poke({})
