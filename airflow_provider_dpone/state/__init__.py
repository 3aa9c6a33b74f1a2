"""State backends: Airflow Variables and a state table."""

from __future__ import annotations

from typing import Any

from ..contracts.manifest import StateSpec


def build_state_backend(spec: StateSpec) -> Any:
    """The backend a manifest asks for; drivers are imported only here."""
    if spec.backend == "table":
        from .table import TableStateBackend

        return TableStateBackend(conn_id=spec.conn_id or "", table=spec.table)
    from .variable import VariableStateBackend

    return VariableStateBackend()
