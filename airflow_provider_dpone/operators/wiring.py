"""The wiring of one load: its source and sink hooks and its state backend, built from
connection ids (drivers imported only here, when a load runs). Used by the operator and the
CLI; the runtime itself only sees the protocols.

The operator builds the Airflow hooks. The CLI passes ``standalone=True``: connectors with a
standalone engine (``hooks.registry.ENGINES``) run without importing Airflow when their
connections are ``AIRFLOW_CONN_<ID>`` variables.
"""

from __future__ import annotations

from ..contracts.manifest import LoadSpec, StateSpec
from ..hooks.registry import build_hook
from ..runtime.engine import LoadRuntime
from ..state import build_state_backend


def assemble(load: LoadSpec, state: StateSpec, *, standalone: bool = False) -> LoadRuntime:
    return LoadRuntime(
        source=build_hook(load.source.connector, load.source.conn_id, standalone=standalone),
        sink=build_hook(load.sink.connector, load.sink.conn_id, standalone=standalone),
        state=build_state_backend(state, standalone=standalone),
    )
