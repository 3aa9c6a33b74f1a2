"""Wait for data in SQL Server: rows past a dpone load's stored watermark, or a query answering true."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator

from ..contracts.errors import BadInputError, DponeError
from .watermark import check_sensor_arguments, stored_cursor


class DponeMsSqlSensor(BaseSensorOperator):
    """Succeed once SQL Server has what a task waits for. Two modes, by their arguments:

    - **New rows past a load's watermark**: ``table`` and ``column`` (the load's source table
      and cursor column), with ``load``, ``pipeline`` (default: the DAG id) and ``state`` (the
      manifest's ``state`` mapping): true once ``table`` has a row with ``column`` greater than
      the cursor value the load stored (any row while none is stored). The state is read at
      every poke.
    - **A query answering true**: ``sql`` with ``parameters`` (``?`` markers): true once the first
      cell of the first row is truthy (NULL, 0 and '' are not); no row is false.

    :param conn_id: an ``mssql`` or ``dpone_mssql`` connection.

    Every check runs in a transaction that is rolled back, so what a query writes is undone; a
    query that ends that transaction itself (a commit in it) fails the task.
    Identifiers are quoted and values bound as parameters. An error (a missing table or column,
    bad SQL, a stored state that is not a cursor on ``column``) fails the task without a retry,
    naming it; a lost connection is retried. Use ``mode="reschedule"`` for long waits.
    """

    template_fields: Sequence[str] = ("sql", "parameters", "table", "column", "pipeline", "load", "state")
    template_fields_renderers = {"sql": "sql", "parameters": "json", "state": "json"}
    ui_color = "#e8d6f5"

    def __init__(
        self,
        *,
        conn_id: str = "mssql_default",
        sql: str | None = None,
        parameters: Sequence[Any] | None = None,
        table: str | None = None,
        column: str | None = None,
        load: str | None = None,
        pipeline: str | None = None,
        state: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        watermark = {"table": table, "column": column, "load": load, "pipeline": pipeline, "state": state}
        check_sensor_arguments("DponeMsSqlSensor", sql, parameters, watermark)
        self.conn_id = conn_id
        self.sql, self.parameters = sql, parameters
        self.table, self.column, self.load, self.pipeline = table, column, load, pipeline
        self.state = dict(state) if state is not None else {}

    def condition(self) -> tuple[str, tuple[Any, ...], str]:
        """The query to ask (one cell), its parameters, and what it waits for (for the log)."""
        if self.sql is not None:
            return self.sql, tuple(self.parameters or ()), "the query answers true"
        from ..sql.mssql import MSSQL as dialect
        from ..sql.mssql_types import value_of

        watermark = stored_cursor(self.state, self.pipeline or self.dag_id, str(self.load), self.column)
        table, column = dialect.parse_table(str(self.table)), str(self.column)
        col = dialect.quote_ident(column)
        if watermark is None:
            return f"select top (1) 1 from {table.sql}", (), f"{table} has a row (no watermark stored)"
        native = self._native_type(table, column)
        query = f"select top (1) 1 from {table.sql} where {col} > {value_of('?', native)}"
        return query, (watermark,), f"{table} has a row with {column} > {watermark}"

    def _native_type(self, table: Any, column: str) -> str:
        from ..sql.mssql import MSSQL as dialect

        rows = self._hook()._read(dialect.INTROSPECT_COLUMNS, (table.sql,))
        found = [r for r in rows if r[0].lower() == column.lower()]  # names are case-insensitive
        if not found:
            raise BadInputError(f"{table} has no column '{column}'" if rows else f"{table} does not exist")
        return dialect.native_type(dialect.column_from_catalog(found[0]))

    def _hook(self) -> Any:
        from ..hooks.mssql import DponeMsSqlHook

        return DponeMsSqlHook(mssql_conn_id=self.conn_id)

    def poke(self, context: Any) -> bool:
        from airflow.sdk.exceptions import AirflowFailException

        from ..hooks.dbapi import fetch, run

        try:
            query, params, what = self.condition()
            with self._hook().session("sensor check") as conn:
                cur = conn.cursor()
                run(cur, "begin transaction")
                try:
                    rows = fetch(cur, query, params)
                    if not fetch(cur, "select @@trancount")[0][0]:
                        raise BadInputError(
                            "the sensor's query ended its transaction (a commit or rollback in it); "
                            "a sensor's query may only read"
                        )
                finally:
                    run(cur, "if @@trancount > 0 rollback transaction")
        except DponeError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:  # the server refused the check (bad SQL, no permission): no retry fixes it
            if type(exc).__module__.split(".")[0] != "mssql_python":
                raise
            message = self._hook().redactor().redact(f"{type(exc).__name__}: {exc}")
            raise AirflowFailException(f"the sensor's check failed: {message}") from None
        met = bool(rows and rows[0] and rows[0][0])
        self.log.info("%s: %s", what, "yes" if met else "not yet")
        return met
