"""A deferrable trigger on Kafka offsets: new messages past a baseline, or a consumer group's lag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def pending(high: dict[int, int], baseline: dict[int, int]) -> int:
    """Messages written past ``baseline`` (partitions missing from it count from 0)."""
    return sum(max(0, end - baseline.get(p, 0)) for p, end in high.items())


class KafkaOffsetsTrigger(BaseTrigger):
    """Fire when ``topic`` has ``min_messages`` past ``baseline`` (mode ``new``), or when
    consumer group ``group_id`` lags by at most ``max_lag`` messages (mode ``lag``).

    The broker is asked from a worker thread every ``poll_interval`` seconds, so the
    triggerer's event loop never blocks on librdkafka.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        topic: str,
        mode: str,
        baseline: dict[str, int] | None = None,
        min_messages: int = 1,
        group_id: str | None = None,
        max_lag: int = 0,
        poll_interval: float = 30.0,
    ) -> None:
        super().__init__()
        self.conn_id, self.topic, self.mode = conn_id, topic, mode
        self.baseline = {str(k): int(v) for k, v in (baseline or {}).items()}
        self.min_messages, self.group_id, self.max_lag = min_messages, group_id, max_lag
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "topic": self.topic,
                "mode": self.mode,
                "baseline": self.baseline,
                "min_messages": self.min_messages,
                "group_id": self.group_id,
                "max_lag": self.max_lag,
                "poll_interval": self.poll_interval,
            },
        )

    def check(self) -> tuple[bool, int]:
        """(condition met, pending messages or lag), asked of the broker now."""
        from ..hooks.kafka import DponeKafkaHook

        hook = DponeKafkaHook(conn_id=self.conn_id)
        high = hook.high_watermarks(self.topic)
        if self.mode == "lag":
            lag = pending(high, hook.committed_offsets(self.topic, self.group_id or ""))
            return lag <= self.max_lag, lag
        new = pending(high, {int(p): o for p, o in self.baseline.items()})
        return new >= self.min_messages, new

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            met, count = await asyncio.to_thread(self.check)
            if met:
                yield TriggerEvent(
                    {"status": "success", "topic": self.topic, "mode": self.mode, "count": count}
                )
                return
            self.log.info("%s: %s=%d, waiting %.0fs", self.topic, self.mode, count, self.poll_interval)
            await asyncio.sleep(self.poll_interval)
