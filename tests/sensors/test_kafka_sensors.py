"""Kafka sensors and their deferrable trigger against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_dpone.contracts.manifest import StateSpec
from airflow_provider_dpone.contracts.state import OffsetsState
from airflow_provider_dpone.sensors.kafka import KafkaConsumerLagSensor, KafkaNewMessagesSensor
from airflow_provider_dpone.state import build_state_backend
from airflow_provider_dpone.triggers.kafka import KafkaOffsetsTrigger

pytestmark = pytest.mark.integration

STATE = {"backend": "table", "conn_id": "dst"}


def test_new_messages_beyond_the_stored_offsets(clean_pg, kafka) -> None:
    topic = f"s_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 2)
    kafka.produce(topic, [(str(i).encode(), b"{}") for i in range(10)])
    sensor = KafkaNewMessagesSensor(
        task_id="wait", conn_id="kafka", topic=topic, pipeline="p", load="l", state=STATE, min_messages=5
    )
    assert sensor.poke({}) is True  # nothing stored yet: all 10 are new
    assert sensor.trigger().check() == (True, 10)
    from airflow_provider_dpone.hooks.kafka import DponeKafkaHook

    ends = DponeKafkaHook(conn_id="kafka").high_watermarks(topic)
    build_state_backend(StateSpec.model_validate(STATE)).commit(
        "p", "l", OffsetsState(topic, {str(p): o for p, o in ends.items()}), "r1"
    )
    assert sensor.poke({}) is False  # the load has read everything
    kafka.produce(topic, [(str(i).encode(), b"{}") for i in range(4)])
    assert sensor.poke({}) is False  # 4 < 5
    kafka.produce(topic, [(b"x", b"{}")])
    assert sensor.poke({}) is True


def test_consumer_lag_sensor_defers_and_the_trigger_fires(kafka) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = f"s_{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 1)
    kafka.produce(topic, [(None, b"{}")] * 6)
    sensor = KafkaConsumerLagSensor(
        task_id="lag",
        conn_id="kafka",
        topic=topic,
        group_id="g1",
        max_lag=2,
        deferrable=True,
        poll_interval=0.2,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # lag 6 > 2: hand over to the triggerer
    trigger = deferred.value.trigger
    assert isinstance(trigger, KafkaOffsetsTrigger)
    classpath, kwargs = trigger.serialize()
    assert (
        classpath == "airflow_provider_dpone.triggers.kafka.KafkaOffsetsTrigger"
        and kwargs["group_id"] == "g1"
    )

    async def first_event():
        return await asyncio.wait_for(KafkaOffsetsTrigger(**kwargs).run().__anext__(), timeout=30)

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "g1"})
    consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)  # lag now 1
    consumer.close()
    event = asyncio.run(first_event())
    assert event.payload == {"status": "success", "topic": topic, "mode": "lag", "count": 1}
    assert sensor.execute_complete({}, event.payload)["count"] == 1
