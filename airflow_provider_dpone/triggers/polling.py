"""A deferrable trigger for sensors whose client has no async API (BigQuery, ClickHouse, SQL
Server): the sensor's own check, a module-level function, asked in a worker thread every
``poll_interval`` seconds, so the triggerer's event loop never blocks on the database.

The trigger carries the check's import path and its arguments (connection ids and values, never
a connection or a credential); each poll resolves the connection again, as a poke does. The
check answers ``(met, what it saw)`` and raises a ``DponeError`` when the check itself fails:
the trigger then ends with an ``error`` event carrying its code, message and whether a retry
can help (the same event ``PostgresConditionTrigger`` sends).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..contracts.errors import BadInputError, DponeError, TransientError

Check = Callable[..., tuple[bool, str]]


def load_check(path: str) -> Check:
    """The function at ``module:function`` (only this package's checks)."""
    module, _, name = path.partition(":")
    if not module.startswith("airflow_provider_dpone.") or not name:
        raise BadInputError(f"not a dpone sensor check: {path!r}")
    found: Check = getattr(importlib.import_module(module), name)
    return found


def error_event(exc: DponeError, **extra: Any) -> TriggerEvent:
    """The event a failed check ends the wait with."""
    return TriggerEvent(
        {"status": "error", "code": exc.code, "message": exc.message, "retryable": exc.retryable, **extra}
    )


class ThreadedConditionTrigger(BaseTrigger):
    """Fire once ``check(**arguments)`` answers met; ask it every ``poll_interval`` seconds."""

    def __init__(self, *, check: str, arguments: Mapping[str, Any], poll_interval: float = 60.0) -> None:
        super().__init__()
        self.check, self.arguments, self.poll_interval = check, dict(arguments), float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"check": self.check, "arguments": self.arguments, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                met, seen = await asyncio.to_thread(load_check(self.check), **self.arguments)
            except DponeError as exc:
                self.log.error("%s", exc)
                yield error_event(exc)
                return
            except Exception as exc:  # a failure the check did not classify: retried, as a poke's is
                failure = TransientError(
                    f"the sensor's check failed: {type(exc).__name__} (unclassified; the task is retried)"
                )
                self.log.error("%s (%s)", failure, self.check)
                yield error_event(failure)
                return
            if met:
                yield TriggerEvent({"status": "success", "seen": seen})
                return
            self.log.info("%s; next check in %gs", seen, self.poll_interval)
            await asyncio.sleep(self.poll_interval)
