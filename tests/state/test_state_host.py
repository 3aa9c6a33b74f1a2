"""Where state commits: the sink is asked whether it hosts the state table; no class checks."""

from __future__ import annotations

from airflow_provider_dpone.contracts.state import CursorState
from airflow_provider_dpone.state.table import TableStateBackend

RECORD = CursorState("updated_at", "2026-01-01T00:00:00+00:00", "timestamptz")


class _Host:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    def hosts_state(self, conn_id: str) -> bool:
        return conn_id == self.conn_id


def test_a_sink_that_is_not_a_state_host_gets_no_colocated_statements() -> None:
    backend = TableStateBackend("dst")
    assert backend.colocated_statements(object(), "p", "l", RECORD, "r1") is None


def test_a_host_of_another_connection_gets_none() -> None:
    backend = TableStateBackend("dst")
    assert backend.colocated_statements(_Host("elsewhere"), "p", "l", RECORD, "r1") is None


def test_the_state_table_hook_is_built_by_its_connector() -> None:
    backend = TableStateBackend("dst", connector="postgres")
    from airflow_provider_dpone.hooks.postgres import DponePostgresHook

    assert isinstance(backend.hook, DponePostgresHook) and backend.hook.hosts_state("dst")
    assert not backend.hook.hosts_state("other")
