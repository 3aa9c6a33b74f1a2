"""Kafka sensors: new messages beyond a load's stored offsets, and a consumer group's lag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from ..triggers.kafka import KafkaOffsetsTrigger


class _KafkaOffsetsSensor(BaseSensorOperator):
    """Pokes with :class:`KafkaOffsetsTrigger`'s check; ``deferrable=True`` frees the worker slot."""

    def __init__(
        self, *, conn_id: str = "kafka_default", topic: str, deferrable: bool = False, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.topic = topic
        self.deferrable = deferrable

    def trigger(self) -> KafkaOffsetsTrigger:
        raise NotImplementedError

    def poke(self, context: Any) -> bool:
        met, count = self.trigger().check()
        self.log.info("%s: %s (%d)", self.topic, "condition met" if met else "waiting", count)
        return met

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        trigger = self.trigger()
        met, count = trigger.check()
        if met:
            return {"status": "success", "topic": self.topic, "count": count}
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") != "success":
            raise RuntimeError(f"kafka trigger ended without success: {event}")
        self.log.info("%s: %s", self.topic, event)
        return event


class KafkaNewMessagesSensor(_KafkaOffsetsSensor):
    """Succeed once ``topic`` holds ``min_messages`` beyond the offsets a dpone load stored.

    :param pipeline, load, state: the load whose stored offsets are the baseline (``state`` is the
        manifest's state mapping); without stored offsets every message counts.
    """

    template_fields: Sequence[str] = ("topic",)
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        pipeline: str,
        load: str,
        state: dict[str, Any] | None = None,
        min_messages: int = 1,
        poll_interval: float = 30.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.pipeline, self.load, self.state = pipeline, load, state or {}
        self.min_messages = min_messages
        self.trigger_poll_interval = poll_interval

    def trigger(self) -> KafkaOffsetsTrigger:
        from ..contracts.manifest import StateSpec
        from ..contracts.state import OffsetsState
        from ..state import build_state_backend

        stored = build_state_backend(StateSpec.model_validate(self.state)).get(self.pipeline, self.load)
        baseline = stored.offsets if isinstance(stored, OffsetsState) and stored.topic == self.topic else {}
        return KafkaOffsetsTrigger(
            conn_id=self.conn_id,
            topic=self.topic,
            mode="new",
            baseline=baseline,
            min_messages=self.min_messages,
            poll_interval=self.trigger_poll_interval,
        )


class KafkaConsumerLagSensor(_KafkaOffsetsSensor):
    """Succeed once consumer group ``group_id`` lags ``topic`` by at most ``max_lag`` messages."""

    template_fields: Sequence[str] = ("topic", "group_id")
    ui_color = "#e8f4e4"

    def __init__(self, *, group_id: str, max_lag: int = 0, poll_interval: float = 30.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.group_id, self.max_lag = group_id, max_lag
        self.trigger_poll_interval = poll_interval

    def trigger(self) -> KafkaOffsetsTrigger:
        return KafkaOffsetsTrigger(
            conn_id=self.conn_id,
            topic=self.topic,
            mode="lag",
            group_id=self.group_id,
            max_lag=self.max_lag,
            poll_interval=self.trigger_poll_interval,
        )
