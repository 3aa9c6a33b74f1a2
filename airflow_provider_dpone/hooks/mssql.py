"""The SQL Server hook: source (``mssql_source``) and sink (``mssql_connector``), built on the
official provider's MsSqlHook.

The hook reads the official ``mssql`` connection (host, port, login, password, schema as the
database, extras) and connects with Microsoft's ``mssql-python`` driver, whose ``bulkcopy``
speaks the TDS bulk-load protocol; the official hook's own driver (pymssql) has no bulk path.
The DbApiHook surface (``run``, ``get_records``, ``get_first``, ``test_connection``) runs on
that same connection, with ``?`` parameters.
"""

from __future__ import annotations

from typing import Any

from ..contracts.errors import MissingExtraError

try:
    from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "mssql_python", "mssql") from None

from .connection import conn_id_of
from .mssql_connector import MsSqlConnector
from .sql_surface import DponeDbApiHook


class DponeMsSqlHook(MsSqlConnector, DponeDbApiHook, MsSqlHook):
    """Source and sink for SQL Server (and Azure SQL). Accepts ``mssql`` and ``dpone_mssql``
    connections; ``Connection.get_hook()`` builds it for a ``dpone_mssql`` one."""

    conn_type = "dpone_mssql"
    hook_name = "dpone SQL Server"
    _placeholder = "?"  # mssql-python takes qmark parameters as a tuple

    def __init__(
        self, mssql_conn_id: str | None = None, *, conn_id: str | None = None, **kwargs: Any
    ) -> None:
        """``mssql_conn_id`` (what Airflow passes) or its alias ``conn_id``; other keyword
        arguments go to MsSqlHook."""
        super().__init__(mssql_conn_id=conn_id_of(self, mssql_conn_id, conn_id), **kwargs)

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:  # type: ignore[override]
        conn.autocommit = autocommit  # a property in mssql-python (a method in pymssql)

    def get_autocommit(self, conn: Any) -> bool:
        return bool(conn.autocommit)
