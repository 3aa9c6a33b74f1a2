"""``dpone doctor`` on a Kafka connection: the brokers answer (timed), the topics the loads read
and write exist with their partitions, the consumer groups can be described (the group ACL),
and a transactional producer can start (the sink's exactly-once path). Its transactional id is
the doctor's own and carries no message."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..contracts.doctor import ConnectionUse, Finding, LoadUse

TIMEOUT = 10.0


def _topic(metadata: Any, topic: str) -> tuple[int | None, str | None]:
    """(partitions, None), or (None, why not) when it does not exist or cannot be described.
    Read from the cluster's metadata: asking for one topic by name lets a broker create it."""
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return None, str(info.error) if info is not None and info.error is not None else "unknown topic"
    return len(info.partitions), None


def _source(hook: Any, admin: Any, metadata: Any, use: LoadUse) -> list[Finding]:
    subject, topic = f"{use.key} source", getattr(use.load.source, "topic", "")
    partitions, why = _topic(metadata, topic)
    if partitions is None:
        return [
            Finding(
                "fail",
                "object",
                subject,
                f"topic {topic} cannot be read: {why}",
                fix="check source.topic and the topic's Describe/Read ACLs",
            )
        ]
    found = [Finding("ok", "object", subject, f"topic {topic}: {partitions} partition(s)")]
    group = hook.group_id(None, f"{use.load.source.conn_id}.{topic}")
    try:
        future = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group]
        future.result(timeout=TIMEOUT)
        found.append(Finding("ok", "privilege", subject, f"consumer group {group} can be described"))
    except Exception as exc:
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"consumer group {group}: {exc}",
                fix=f"grant the group's Describe and Read ACLs for {group}",
            )
        )
    return found


def _sink(hook: Any, metadata: Any, use: LoadUse) -> list[Finding]:
    from confluent_kafka import Producer

    subject, topic = f"{use.key} sink", use.load.sink.topic or ""
    partitions, why = _topic(metadata, topic)
    found = [
        Finding("ok", "object", subject, f"topic {topic}: {partitions} partition(s)")
        if partitions is not None
        else Finding(
            "warn",
            "object",
            subject,
            f"topic {topic} does not exist ({why}): only a broker that creates topics on first use accepts the load",
            fix=f"create topic {topic} with the partitions you want",
        )
    ]
    producer = Producer({**hook.client_config(), "transactional.id": f"dpone.doctor.{uuid.uuid4().hex[:12]}"})
    try:
        producer.init_transactions(TIMEOUT)
        found.append(
            Finding("ok", "setting", subject, "transactions are supported (a transactional producer started)")
        )
    except Exception as exc:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"a transactional producer cannot start: {hook.redactor().redact(str(exc))}",
                fix="the sink produces in transactions: allow TransactionalId Write and IdempotentWrite, "
                "and a broker with transactions (transaction.state.log.*)",
            )
        )
    return found


def check(hook: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one Kafka connection and the loads that use it."""
    from confluent_kafka.admin import AdminClient

    started = time.monotonic()
    admin = AdminClient({**hook.client_config(), "logger": _quiet()})
    try:
        metadata = admin.list_topics(timeout=TIMEOUT)
    except Exception as exc:
        return [
            Finding(
                "fail",
                "reachable",
                use.conn_id,
                hook.redactor().redact(f"no broker answered within {TIMEOUT:.0f}s: {exc}"),
                fix="check bootstrap.servers, the security protocol and the SASL credentials",
                seconds=time.monotonic() - started,
            )
        ]
    found = [
        Finding(
            "ok",
            "reachable",
            use.conn_id,
            f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s) visible",
            seconds=time.monotonic() - started,
        )
    ]
    for load in use.sources:
        found += _source(hook, admin, metadata, load)
    for load in use.sinks:
        found += _sink(hook, metadata, load)
    return found


def _quiet() -> Any:
    import logging

    return logging.getLogger("airflow_provider_dpone.doctor.kafka")
