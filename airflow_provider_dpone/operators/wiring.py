"""Resolve a load's source, sink and state backend from connection ids (lazily)."""

from __future__ import annotations

from ..contracts.manifest import LoadSpec, StateSpec
from ..hooks.registry import build_hook
from ..state import build_state_backend
from .engine import LoadRuntime


def assemble(load: LoadSpec, state: StateSpec) -> LoadRuntime:
    return LoadRuntime(
        source=build_hook(load.source.connector, load.source.conn_id),
        sink=build_hook(load.sink.connector, load.sink.conn_id),
        state=build_state_backend(state),
    )
