"""``dpone doctor`` on a Kafka connection: the brokers answer (timed); the topics the loads read
and write exist, with the READ or WRITE the broker says this principal has on them (where the
broker reports authorized operations); the consumer group a load commits to; a missing sink
topic against the broker's ``auto.create.topics.enable``; and a transactional producer
starts (the sink's exactly-once path). Everything is read from the cluster's metadata: asking
for one topic by name lets a broker create it."""

from __future__ import annotations

import time
from typing import Any

from ..contracts.doctor import ConnectionUse, Finding, LoadUse

TIMEOUT = 10.0


def _topic(metadata: Any, topic: str) -> tuple[int | None, str | None]:
    """(partitions, None), or (None, why not) when it does not exist or cannot be described."""
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return None, str(info.error) if info is not None and info.error is not None else "unknown topic"
    return len(info.partitions), None


def _operations(future: Any) -> set[str] | None:
    """The operations the broker says this principal may do on a resource; None when the broker
    does not tell (it predates KIP-430, or answers without them)."""
    try:
        ops = future.result(timeout=TIMEOUT).authorized_operations
    except Exception as exc:
        return set() if _refused(exc) else None  # refused: no operation is allowed
    return None if ops is None else {op.name for op in ops}


def _refused(exc: Exception) -> bool:
    """Whether the broker refused the request for want of an ACL."""
    error: Any = exc.args[0] if exc.args else exc
    name = error.name() if callable(getattr(error, "name", None)) else str(exc)
    return "AUTHORIZATION_FAILED" in str(name)


def _acl(subject: str, what: str, needed: str, ops: set[str] | None, fix: str) -> Finding:
    if ops is None:
        return Finding(
            "info", "privilege", subject, f"the broker does not report the operations allowed on {what}"
        )
    if needed in ops or "ALL" in ops:
        return Finding("ok", "privilege", subject, f"{needed} on {what}")
    return Finding("fail", "privilege", subject, f"no {needed} on {what}", fix=fix)


def _source(hook: Any, admin: Any, metadata: Any, use: LoadUse) -> list[Finding]:
    from confluent_kafka import TopicCollection

    subject, spec = f"{use.key} source", use.load.source
    topic = getattr(spec, "topic", "")
    partitions, why = _topic(metadata, topic)
    if partitions is None:
        return [
            Finding(
                "fail",
                "object",
                subject,
                f"topic {topic} cannot be read: {why}",
                fix="check source.topic and the topic's Describe ACL",
            )
        ]
    found = [Finding("ok", "object", subject, f"topic {topic}: {partitions} partition(s)")]
    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic]
    found.append(
        _acl(subject, f"topic {topic}", "READ", _operations(described), f"allow Read on topic {topic}")
    )
    if getattr(spec, "commit_offsets", False):  # the group the load commits its offsets to
        group = hook.group_id(None, use.key)
        described = admin.describe_consumer_groups([group], include_authorized_operations=True)[group]
        found.append(
            _acl(
                subject,
                f"consumer group {group}",
                "READ",
                _operations(described),
                f"allow Read on group {group}",
            )
        )
    return found


def _auto_create(admin: Any, metadata: Any) -> str | None:
    """The broker's ``auto.create.topics.enable`` ("true"/"false"), None when unreadable."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    try:
        resource = ConfigResource(ResourceType.BROKER, str(metadata.controller_id))
        config = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
        return str(config["auto.create.topics.enable"].value).lower()
    except Exception:
        return None


def _sink(hook: Any, admin: Any, metadata: Any, use: LoadUse) -> list[Finding]:
    from confluent_kafka import Producer, TopicCollection

    subject, topic = f"{use.key} sink", use.load.sink.topic or ""
    partitions, why = _topic(metadata, topic)
    found: list[Finding] = []
    if partitions is not None:
        found.append(Finding("ok", "object", subject, f"topic {topic}: {partitions} partition(s)"))
        described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic]
        found.append(
            _acl(subject, f"topic {topic}", "WRITE", _operations(described), f"allow Write on topic {topic}")
        )
    else:
        auto = _auto_create(admin, metadata)
        missing = f"topic {topic} does not exist ({why})"
        fix = f"create topic {topic} with the partitions you want"
        if auto == "false":
            found.append(
                Finding(
                    "fail", "object", subject, f"{missing} and the broker does not create topics", fix=fix
                )
            )
        else:
            told = (
                "creates topics on first use"
                if auto == "true"
                else "may create it on first use (its setting is not readable)"
            )
            found.append(
                Finding(
                    "warn",
                    "object",
                    subject,
                    f"{missing}; the broker {told}, with its default partitions",
                    fix=fix,
                )
            )
    # The load's own transactional id (dpone.<pipeline>.<load>) would fence a running load:
    # a sibling id is probed, covered by the same prefixed ACL.
    probe_id = f"dpone.{use.key}.doctor"
    producer = Producer({**hook.client_config(), "transactional.id": probe_id})
    try:
        producer.init_transactions(TIMEOUT)
        found.append(
            Finding(
                "ok",
                "setting",
                subject,
                f"a transactional producer started (id {probe_id}; the broker keeps an idle id until "
                "transactional.id.expiration.ms)",
            )
        )
    except Exception as exc:
        if _refused(exc):  # a literal ACL on the load's own id allows the load, not this probe
            found.append(
                Finding(
                    "warn",
                    "privilege",
                    subject,
                    f"transactional id {probe_id} is not allowed; whether dpone.{use.key} is cannot be "
                    "asked without starting it (which would fence a running load)",
                    fix=f"allow Write on transactional id dpone.{use.key} (a prefixed ACL on dpone. covers "
                    "every load and this check)",
                )
            )
            return found
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"a transactional producer cannot start: {hook.redactor().redact(str(exc))}",
                fix=f"the sink produces in transactions: allow Write on transactional id dpone.{use.key} "
                "(a prefixed ACL on dpone. covers every load) and IdempotentWrite on the cluster, on a broker "
                "with transactions",
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
        found += _sink(hook, admin, metadata, load)
    return found


def _quiet() -> Any:
    import logging

    return logging.getLogger("airflow_provider_dpone.doctor.kafka")
