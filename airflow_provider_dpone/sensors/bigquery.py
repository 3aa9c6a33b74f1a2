"""Wait for data in BigQuery: rows past a dpone load's stored watermark, or a query answering true."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator

from ..contracts.errors import BadInputError, DponeError
from .watermark import check_sensor_arguments, stored_cursor


class DponeBigQuerySensor(BaseSensorOperator):
    """Succeed once BigQuery has what a task waits for. Two modes, by their arguments:

    - **New rows past a load's watermark**: ``table`` (``dataset.table``) and ``column`` (the
      cursor column), with ``load``, ``pipeline`` (default: the DAG id) and ``state`` (the
      manifest's ``state`` mapping): true once ``table`` has a row with ``column`` greater than
      the cursor value the load stored (any row while none is stored). The state is read at
      every poke.
    - **A query answering true**: ``sql`` with ``parameters`` (``?`` markers, rendered as typed
      literals): true once the first cell of its first row is truthy (NULL, 0, false and '' are
      not); no row is false. The query is read as a subquery, so a statement that writes
      (DML, DDL, a script) is refused by BigQuery instead of run.

    :param conn_id: a ``google_cloud_platform`` connection.

    Each poke is one query job (billed for the bytes it reads: filter on a partitioning column
    where you can). Identifiers are quoted and values rendered as literals of their type. An
    error (a missing table or column, bad SQL, a stored state that is not a cursor on
    ``column``) fails the task without a retry, naming it; a transient one is retried. Use
    ``mode="reschedule"`` for long waits.
    """

    template_fields: Sequence[str] = ("sql", "parameters", "table", "column", "pipeline", "load", "state")
    template_fields_renderers = {"sql": "sql", "parameters": "json", "state": "json"}
    ui_color = "#d6e4f5"

    def __init__(
        self,
        *,
        conn_id: str = "google_cloud_default",
        sql: str | None = None,
        parameters: Sequence[Any] | None = None,
        table: str | None = None,
        column: str | None = None,
        load: str | None = None,
        pipeline: str | None = None,
        state: dict[str, Any] | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        watermark = {"table": table, "column": column, "load": load, "pipeline": pipeline, "state": state}
        check_sensor_arguments("DponeBigQuerySensor", sql, parameters, watermark)
        self.conn_id, self.location = conn_id, location
        self.sql, self.parameters = sql, parameters
        self.table, self.column, self.load, self.pipeline = table, column, load, pipeline
        self.state = dict(state) if state is not None else {}

    def _hook(self) -> Any:
        from ..hooks.bigquery import DponeBigQueryHook

        return DponeBigQueryHook(gcp_conn_id=self.conn_id, location=self.location)

    def condition(self, hook: Any) -> tuple[str, tuple[Any, ...], str]:
        """The query to ask (one cell), its parameters, and what it waits for (for the log)."""
        if self.sql is not None:
            inner = self.sql.strip().rstrip(";")
            return f"select * from ({inner}) limit 1", tuple(self.parameters or ()), "the query answers true"
        from ..sql.bigquery_catalog import schema_from_api
        from ..sql.bigquery_types import native_type

        d = hook.sql_dialect
        watermark = stored_cursor(self.state, self.pipeline or self.dag_id, str(self.load), self.column)
        table, column = d.parse_table(str(self.table)), str(self.column)
        if watermark is None:
            return f"select 1 from {table.sql} limit 1", (), f"{table} has a row (no watermark stored)"
        resource = hook.jobs.table(hook._table_id(table))
        if resource is None:
            raise BadInputError(f"{table} does not exist")
        current = schema_from_api(resource["schema"]["fields"])
        if not current.has(column):
            raise BadInputError(f"{table} has no column '{column}'")
        native = native_type(current.column(column))
        query = f"select 1 from {table.sql} where {d.quote_ident(column)} > cast(? as {native}) limit 1"
        return query, (watermark,), f"{table} has a row with {column} > {watermark}"

    def poke(self, context: Any) -> bool:
        from airflow.sdk.exceptions import AirflowFailException

        hook = self._hook()
        try:
            query, params, what = self.condition(hook)
            rows = hook.jobs.query(query, params)[2]
        except DponeError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        finally:
            hook.release()
        met = bool(rows and rows[0] and rows[0][0])
        self.log.info("%s: %s", what, "yes" if met else "not yet")
        return met
