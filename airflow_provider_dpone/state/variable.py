"""State in Airflow Variables, one JSON value per load: ``dpone.<pipeline>.<load>``."""

from __future__ import annotations

import json
from typing import Any

from ..contracts.state import StateRecord, decode_state, state_to_dict
from . import listed


def _sdk_variable() -> Any | None:
    """The Task SDK Variable when running inside a task, else None (use the core model)."""
    try:
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS  # type: ignore[attr-defined]
    except ImportError:
        return None
    if SUPERVISOR_COMMS is None:
        return None
    from airflow.sdk import Variable

    return Variable


# The run id is stored next to the record's own fields (a resume checkpoint has its own).
_ENVELOPE = ("run_id",)


class VariableStateBackend:
    name = "variable"

    @staticmethod
    def key(pipeline: str, load: str) -> str:
        return f"dpone.{pipeline}.{load}"

    def _get_raw(self, key: str) -> str | None:
        sdk = _sdk_variable()
        if sdk is not None:
            return sdk.get(key, default=None)
        from airflow.models import Variable

        return Variable.get(key, default_var=None)

    def _set_raw(self, key: str, value: str) -> None:
        sdk = _sdk_variable()
        if sdk is not None:
            sdk.set(key, value)
            return
        from airflow.models import Variable

        Variable.set(key, value)

    def where(self, pipeline: str, load: str) -> str:
        """The Variable's key, for messages."""
        return f"Airflow Variable '{self.key(pipeline, load)}'"

    def get(self, pipeline: str, load: str) -> StateRecord | None:
        """The stored record; None for none (or JSON null); ``StateError`` when unreadable."""
        raw = self._get_raw(self.key(pipeline, load))
        return decode_state(raw, self.where(pipeline, load), load, envelope=_ENVELOPE)

    def commit(self, pipeline: str, load: str, record: StateRecord, run_id: str) -> None:
        self._set_raw(self.key(pipeline, load), json.dumps({**state_to_dict(record), "run_id": run_id}))

    def reset(self, pipeline: str, load: str) -> bool:
        key = self.key(pipeline, load)
        existed = self._get_raw(key) is not None
        sdk = _sdk_variable()
        if sdk is not None:
            sdk.delete(key)
        else:
            from airflow.models import Variable

            Variable.delete(key)
        return existed

    def list(self, pipeline: str, loads: list[str]) -> list[dict[str, Any]]:
        out = []
        for load in loads:
            key = self.key(pipeline, load)
            out.append(
                {
                    "pipeline": pipeline,
                    "load": load,
                    **listed(self._get_raw(key), self.where(pipeline, load), load, _ENVELOPE),
                }
            )
        return out

    def colocated_statements(self, *args: Any, **kwargs: Any) -> None:
        return None
