"""State in Airflow Variables, one JSON value per load: ``dpone.<pipeline>.<load>``.

Reads and writes go through Airflow (imported when the backend is first used), also from the
command line: a run writes its state to the metadata database (or, in a task, through the
API server). Airflow reads a Variable from ``AIRFLOW_VAR_<KEY>`` or a secrets backend before
the database, so a state written under a key one of those holds would never be read back: the
next run would load the same batch again. Such writes are refused (``StateError``) instead of
being lost; the command line checks before a run moves any data (``check_writable``).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..contracts.errors import StateError
from ..contracts.state import RESUME_SUFFIX, StateRecord, decode_state, state_to_dict
from . import listed

log = logging.getLogger(__name__)


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


def _shadowed_by(key: str) -> str | None:
    """Where Airflow would read ``key`` from before the metadata database, if anywhere: an
    ``AIRFLOW_VAR_<KEY>`` variable, or the configured secrets backend."""
    name = "AIRFLOW_VAR_" + key.upper()
    if os.environ.get(name):
        return f"environment variable {name}"
    from ..hooks.connection import custom_secrets_backend

    if not custom_secrets_backend():
        return None
    try:
        from airflow.sdk.configuration import get_custom_secret_backend

        backend = get_custom_secret_backend()
        if backend is not None and backend.get_variable(key) is not None:
            return f"secrets backend {type(backend).__name__}"
    except Exception as exc:  # the backend is Airflow's to reach; its own reads report failures
        log.warning("cannot ask the secrets backend about Variable %s: %s", key, type(exc).__name__)
    return None


class VariableStateBackend:
    name = "variable"

    @staticmethod
    def key(pipeline: str, load: str) -> str:
        return f"dpone.{pipeline}.{load}"

    def _get_raw(self, key: str) -> str | None:
        sdk = _sdk_variable()
        if sdk is not None:
            return sdk.get(key, default=None)
        if _shadowed_by(key) is None:
            # Variable.get logs a metadata database error and answers None: read as "no state",
            # that would re-read everything (or drop a change feed's slot). Asked directly, the
            # database's error is raised.
            from airflow.secrets.metastore import MetastoreBackend

            return MetastoreBackend().get_variable(key)  # type: ignore[no-any-return]
        from airflow.models import Variable

        return Variable.get(key, default_var=None)

    def _refuse_shadowed(self, key: str) -> None:
        source = _shadowed_by(key)
        if source is not None:
            raise StateError(
                f"Airflow Variable '{key}' is set by {source}, which Airflow reads before the "
                "metadata database: state written there would never be read back (the next run "
                "would load the same rows again). Remove it, or use the table state backend"
            )

    def check_writable(self, pipeline: str, load: str) -> None:
        """Refuse now, before a run moves data, a state its end could not write."""
        for key in (self.key(pipeline, load), self.key(pipeline, load + RESUME_SUFFIX)):
            self._refuse_shadowed(key)

    def _set_raw(self, key: str, value: str) -> None:
        self._refuse_shadowed(key)
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
        self._refuse_shadowed(key)
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
