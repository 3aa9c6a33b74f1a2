"""The ClickHouse hook: source and sink (``clickhouse_connector``) on clickhouse-connect, as an
Airflow DbApiHook.

The connector's code needs no Airflow class (``clickhouse_connector.ClickHouseConnector``); this module
puts it on DbApiHook, so the hook is a proper Airflow hook: ``Connection.get_hook()`` builds
it, its connection is Airflow's. The command line uses the same connector standing alone
(``clickhouse_connector.ClickHouseEngine``), without importing Airflow.
"""

from __future__ import annotations

from typing import Any

from .clickhouse_connector import ClickHouseConnector
from .connection import conn_id_of
from .sql_surface import DponeDbApiHook


class DponeClickHouseHook(ClickHouseConnector, DponeDbApiHook):
    """Source and sink for ClickHouse; also a DbApiHook (``run``, ``get_records``, ``get_first``
    through a small DB-API adapter), for ``SQLExecuteQueryOperator`` and ``SqlSensor``."""

    conn_name_attr = "clickhouse_conn_id"
    default_conn_name = "clickhouse_default"
    conn_type = "dpone_clickhouse"
    hook_name = "dpone ClickHouse"

    def __init__(
        self, clickhouse_conn_id: str | None = None, *, conn_id: str | None = None, **kwargs: Any
    ) -> None:
        """``clickhouse_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to DbApiHook."""
        super().__init__(clickhouse_conn_id=conn_id_of(self, clickhouse_conn_id, conn_id), **kwargs)
