"""Sensors whose check is one module-level function: the poke asks it, and ``deferrable=True``
asks it once on the worker, then waits in the triggerer (:class:`ThreadedConditionTrigger`, the
same function in a worker thread every ``poke_interval`` seconds) until it holds or ``timeout``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from ..contracts.errors import BadInputError, DponeError, TransientError
from ..triggers.polling import ThreadedConditionTrigger, load_check


def finish(event: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """A trigger's final event as the task's outcome: its payload on success; a retry for an
    error a retry can help with (a lost connection), else a failure without retry."""
    from airflow.sdk.exceptions import AirflowFailException

    if event and event.get("status") == "success":
        return event
    if not event or not event.get("message"):
        raise AirflowFailException(f"the {what} trigger ended without success: {event}")
    if event.get("retryable"):
        raise TransientError(event["message"])  # the retry waits again
    raise AirflowFailException(f"[{event.get('code', BadInputError.code)}] {event['message']}")


class CheckSensor(BaseSensorOperator):
    """Base of the sensors with a ``check_call()``: ``(module:function, its arguments)``, the
    arguments resolved now (a load's stored watermark is read when the call is made)."""

    what = "sensor"  # for messages

    def __init__(self, *, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def check_call(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _task_errors(self) -> Iterator[None]:
        """A dpone error no retry fixes (a missing table, bad SQL, a state that does not fit)
        fails the task at once; a retryable one is raised for Airflow to retry."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            yield
        except DponeError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc

    def _ask(self) -> tuple[bool, str, dict[str, Any]]:
        """(met, the check's path, its arguments), asked here, now."""
        with self._task_errors():
            path, arguments = self.check_call()
            met, seen = load_check(path)(**arguments)
        self.log.info("%s", seen)
        return met, path, arguments

    def poke(self, context: Any) -> bool:
        return self._ask()[0]

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        met, path, arguments = self._ask()
        if met:
            return {"status": "success"}
        trigger = ThreadedConditionTrigger(check=path, arguments=arguments, poll_interval=self.poke_interval)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        done = finish(event, self.what)
        self.log.info("condition met: %s", done.get("seen"))
        return done
