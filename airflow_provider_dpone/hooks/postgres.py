"""The PostgreSQL hook: source (``postgres_source``) and sink (``postgres_connector``), built on the
official provider's PostgresHook (psycopg 3).

The connector's code needs no Airflow class (``postgres_connector.PostgresConnector``); this module puts
it on PostgresHook, so the hook is a proper Airflow hook: ``Connection.get_hook()`` builds it,
its connection is Airflow's, and it offers the DbApiHook surface. The command line uses the
same connector standing alone (``postgres_connector.PostgresEngine``), without importing Airflow.
"""

from __future__ import annotations

from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from airflow.providers.postgres.hooks.postgres import PostgresHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "psycopg", "postgres") from None

from .connection import conn_id_of
from .postgres_connector import PostgresConnector
from .sql_surface import DponeDbApiHook


class DponePostgresHook(PostgresConnector, DponeDbApiHook, PostgresHook):
    """Source and sink for PostgreSQL. Accepts ``postgres`` and ``dpone_postgres`` connections.

    Being the official PostgresHook, it also offers ``run``, ``get_records``, ``get_first`` and
    ``test_connection`` (``select 1``), for ``SQLExecuteQueryOperator`` and ``SqlSensor``.
    """

    conn_type = "dpone_postgres"
    hook_name = "dpone PostgreSQL"

    def __init__(
        self, postgres_conn_id: str | None = None, *, conn_id: str | None = None, **kwargs: Any
    ) -> None:
        """``postgres_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to PostgresHook."""
        super().__init__(postgres_conn_id=conn_id_of(self, postgres_conn_id, conn_id), **kwargs)
