"""The ClickHouse hook's connection: a clickhouse-connect client (HTTP server, or chDB in
process), a DB-API adapter for DbApiHook, and catalog reads. No Airflow class: the Airflow hook
(``hooks.clickhouse``) puts this on DbApiHook, the standalone engine
(``clickhouse_connector.ClickHouseEngine``) reads its connection itself.

The connection: host, port (8123, or 8443 with ``secure``), login, password, schema (the
database) and extras ``secure``, ``compress``, ``settings``; or extra ``dsn`` such as
``chdb:///var/lib/chdb`` for the in-process engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..contracts.errors import MissingExtraError

try:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "clickhouse-connect", "clickhouse") from None


from ..contracts.artifacts import (
    ARROW,
    TSV,
)
from ..contracts.errors import BadInputError, TransientError
from ..contracts.records import as_bool
from ..contracts.table import TableSchema
from ..sql.clickhouse import CLICKHOUSE as dialect
from ..sql.dialect import TableRef
from .clickhouse_dbapi import ClickHouseConnection

if TYPE_CHECKING:
    from ..contracts.redaction import Redactor

_AUTH_ERRORS = ("AUTHENTICATION_FAILED", "REQUIRED_PASSWORD", "Code: 516", "Code: 194")


def _flag(value: Any, default: bool) -> bool:
    """A boolean extra, also when it came from a connection URI as text."""
    return default if value is None else as_bool(value)


class ClickHouseClient:
    """clickhouse-connect over the connection of the class this is mixed into: that gives
    ``get_connection(conn_id)``, ``dpone_conn_id`` and ``redactor()``."""

    accepted_formats = (TSV, ARROW)

    if TYPE_CHECKING:  # given by the class this is mixed into

        @property
        def dpone_conn_id(self) -> str: ...

        def get_connection(self, conn_id: str) -> Any: ...

        def redactor(self) -> Redactor: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None

    def close_client(self) -> None:
        """Close the client, if one was built (a long-lived caller's, such as a trigger's poll;
        a load keeps it for its steps)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def client(self) -> Any:
        """The clickhouse-connect client, built on first use."""
        if self._client is not None:
            return self._client
        conn = self.get_connection(self.dpone_conn_id)
        extra = conn.extra_dejson
        try:
            if extra.get("dsn"):
                self._client = clickhouse_connect.get_client(dsn=extra["dsn"], tz_mode="schema")
            else:
                secure = _flag(extra.get("secure"), False)
                self._client = clickhouse_connect.get_client(
                    host=conn.host or "localhost",
                    port=conn.port or (8443 if secure else 8123),
                    username=conn.login or "default",
                    password=conn.password or "",
                    database=conn.schema or "default",
                    secure=secure,
                    compress=_flag(extra.get("compress"), True),
                    settings=extra.get("settings") or {},
                    tz_mode="schema",
                )
        except (OperationalError, ClickHouseError) as exc:
            message = self.redactor().redact(str(exc).strip())
            if any(code in message for code in _AUTH_ERRORS):  # retrying cannot fix credentials
                raise BadInputError(
                    f"cannot connect to '{self.dpone_conn_id}': the server refused the credentials: {message}"
                ) from None
            raise TransientError(f"cannot connect to '{self.dpone_conn_id}': {message}") from None
        return self._client

    def get_conn(self) -> ClickHouseConnection:
        """A DB-API connection over the hook's client (for DbApiHook's methods)."""
        return ClickHouseConnection(self.client())

    def _database(self) -> str:
        return self.get_connection(self.dpone_conn_id).schema or "default"

    def _ref(self, table: str) -> TableRef:
        return dialect.parse_table(table, self._database())

    def dataset(self, table: str) -> dict[str, str]:
        conn = self.get_connection(self.dpone_conn_id)
        ref = self._ref(table)
        where = conn.extra_dejson.get("dsn") or f"clickhouse://{conn.host or 'localhost'}:{conn.port or 8123}"
        if where.startswith("chdb://"):
            where = "chdb://local"  # the data directory is a local path, not a locator
        return {"namespace": where, "name": f"{ref.schema}.{ref.name}"}

    def query(self, statement: str, params: dict | None = None) -> list[tuple]:
        return list(self.client().query(statement, parameters=params or {}).result_rows)

    def command(self, statement: str, params: dict | None = None) -> None:
        self.client().command(statement, parameters=params or None)

    # --- introspection -------------------------------------------------------------------

    def describe_table(self, table: TableRef, *, with_partition_key: bool = False) -> TableSchema | None:
        """Columns and sorting key (plus the partition key columns, for schema planning)."""
        rows = self.query(dialect.INTROSPECT_COLUMNS, {"db": table.schema, "table": table.name})
        if not rows:
            return None
        columns = tuple(dialect.to_canonical(name, native) for name, native, _, _ in rows)
        keys = tuple(r[0] for r in rows if r[2] or (with_partition_key and r[3]))
        return TableSchema(columns, keys)

    def _table_info(self, table: TableRef) -> tuple[str, str, str] | None:
        rows = self.query(dialect.TABLE_INFO, {"db": table.schema, "table": table.name})
        return tuple(rows[0]) if rows else None  # type: ignore[return-value]
