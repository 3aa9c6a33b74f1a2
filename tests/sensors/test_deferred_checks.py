"""Deferrable ClickHouse and BigQuery sensors: they check once, defer to a
``ThreadedConditionTrigger`` that asks the same check in a worker thread, and the task resumes
when rows arrive; errors end the wait with the check's own code and message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_dpone.sensors.bigquery import DponeBigQuerySensor
from airflow_provider_dpone.sensors.clickhouse import ClickHouseWatermarkSensor
from airflow_provider_dpone.triggers.polling import ThreadedConditionTrigger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
CLASSPATH = "airflow_provider_dpone.triggers.polling.ThreadedConditionTrigger"


def _deferred(sensor: Any) -> ThreadedConditionTrigger:
    """The trigger the sensor defers to, rebuilt from what Airflow stores of it."""
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == CLASSPATH and deferred.value.method_name == "execute_complete"
    return ThreadedConditionTrigger(**kwargs)


def _wait_then(trigger: ThreadedConditionTrigger, change: Any) -> Any:
    """The trigger's event, with ``change`` made after it has polled a few times in vain."""

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(asyncio.wait_for(trigger.run().__anext__(), 60))
        await asyncio.sleep(1.0)
        assert not waiting.done(), "the trigger fired before the data arrived"
        await asyncio.to_thread(change)
        return await waiting

    return asyncio.run(scenario())


def test_a_deferred_clickhouse_sensor_resumes_when_rows_arrive(clean_ch) -> None:
    ch = clean_ch
    ch.command("create table src.events (id Int64, at DateTime64(6, 'UTC')) engine = MergeTree order by id")
    ch.command("insert into src.events values (1, '2026-01-01 00:00:00')")
    sensor = ClickHouseWatermarkSensor(
        task_id="wait", conn_id="ch", table="src.events", column="at", watermark="2026-01-01 00:00:00",
        deferrable=True, poke_interval=0.2, timeout=60,
    )  # fmt: skip
    trigger = _deferred(sensor)
    assert trigger.arguments["watermark"] == "2026-01-01 00:00:00" and trigger.poll_interval == 0.2
    event = _wait_then(
        trigger, lambda: ch.command("insert into src.events values (2, '2026-01-01 00:00:01')")
    )
    assert event.payload["status"] == "success" and "1 row(s) with at > 2026-01-01" in event.payload["seen"]
    assert sensor.execute_complete({}, event.payload)["status"] == "success"


def test_a_deferred_check_that_fails_ends_the_wait_with_its_error(clean_ch) -> None:
    ch = clean_ch
    ch.command("create table src.events (id Int64, at DateTime64(6, 'UTC')) engine = MergeTree order by id")
    sensor = ClickHouseWatermarkSensor(
        task_id="wait", conn_id="ch", table="src.events", column="at", deferrable=True, poke_interval=0.2
    )
    trigger = _deferred(sensor)
    event = _wait_then(trigger, lambda: ch.command("drop table src.events sync"))
    assert event.payload["status"] == "error" and not event.payload["retryable"]
    with pytest.raises(AirflowFailException, match=r"^\[DPONE"):
        sensor.execute_complete({}, event.payload)


def test_a_deferred_bigquery_sensor_resumes_when_the_query_answers_true(clean_bq) -> None:
    clean_bq.client.create_dataset("raw")
    clean_bq.query("create table raw.flags (ready BOOL)")
    sensor = DponeBigQuerySensor(
        task_id="wait", conn_id="bq", sql="select logical_or(ready) from raw.flags",
        deferrable=True, poke_interval=0.5, timeout=60,
    )  # fmt: skip
    trigger = _deferred(sensor)
    event = _wait_then(trigger, lambda: clean_bq.query("insert into raw.flags values (true)"))
    assert event.payload == {"status": "success", "seen": "the query answers true: yes"}


@pytest.mark.unit
def test_only_a_dpone_check_is_imported_and_the_trigger_round_trips() -> None:
    trigger = ThreadedConditionTrigger(check="os:system", arguments={"command": "true"}, poll_interval=1)
    event = asyncio.run(asyncio.wait_for(trigger.run().__anext__(), 10))
    assert (
        event.payload["status"] == "error"
        and "not a dpone sensor check: 'os:system'" in event.payload["message"]
    )
    assert ThreadedConditionTrigger(**trigger.serialize()[1]).serialize() == trigger.serialize()


@pytest.mark.unit
def test_an_unclassified_failure_in_the_trigger_is_retried_as_a_pokes_would_be(monkeypatch) -> None:
    from airflow_provider_dpone.contracts.errors import TransientError
    from airflow_provider_dpone.sensors.deferrable import finish
    from airflow_provider_dpone.triggers import polling

    def reset(**_: object) -> tuple[bool, str]:
        raise ConnectionResetError("peer went away")

    monkeypatch.setattr(polling, "load_check", lambda path: reset)
    trigger = ThreadedConditionTrigger(check="airflow_provider_dpone.x:y", arguments={}, poll_interval=1)
    event = asyncio.run(asyncio.wait_for(trigger.run().__anext__(), 10))
    assert event.payload["status"] == "error" and event.payload["retryable"] is True
    assert (
        "ConnectionResetError" in event.payload["message"]
        and "peer went away" not in event.payload["message"]
    )
    with pytest.raises(TransientError):
        finish(event.payload, "test")
