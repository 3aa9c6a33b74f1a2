"""Wait for data in BigQuery: rows past a dpone load's stored watermark, or a query answering true."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..contracts.errors import BadInputError
from .deferrable import CheckSensor
from .watermark import check_sensor_arguments, condition_arguments


class DponeBigQuerySensor(CheckSensor):
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
    ``column``) fails the task without a retry, naming it; a transient one is retried. For
    long waits, ``deferrable=True`` checks once, then waits in the triggerer (the same query
    every ``poke_interval`` seconds, from a worker thread; the watermark as stored when it
    deferred), or use ``mode="reschedule"``.
    """

    template_fields: Sequence[str] = ("sql", "parameters", "table", "column", "pipeline", "load", "state")
    template_fields_renderers = {"sql": "sql", "parameters": "json", "state": "json"}
    ui_color = "#d6e4f5"
    what = "BigQuery sensor"

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
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        watermark = {"table": table, "column": column, "load": load, "pipeline": pipeline, "state": state}
        check_sensor_arguments("DponeBigQuerySensor", sql, parameters, watermark)
        self.conn_id, self.location = conn_id, location
        self.sql, self.parameters = sql, parameters
        self.table, self.column, self.load, self.pipeline = table, column, load, pipeline
        self.state = dict(state) if state is not None else {}

    def check_call(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}:bigquery_check", {
            "conn_id": self.conn_id,
            "location": self.location,
            **condition_arguments(self),
        }


def _condition(
    hook: Any,
    sql: str | None,
    parameters: Sequence[Any],
    table: str | None,
    column: str | None,
    watermark: str | None,
) -> tuple[str, tuple[Any, ...], str]:
    """The query to ask (one cell), its parameters, and what it waits for (for the log)."""
    if sql is not None:
        inner = sql.strip().rstrip(";")
        return f"select * from ({inner}) limit 1", tuple(parameters), "the query answers true"
    from ..sql.bigquery_catalog import schema_from_api
    from ..sql.bigquery_types import native_type

    d = hook.sql_dialect
    ref, name = d.parse_table(str(table)), str(column)
    if watermark is None:
        return f"select 1 from {ref.sql} limit 1", (), f"{ref} has a row (no watermark stored)"
    resource = hook.jobs.table(hook._table_id(ref))
    if resource is None:
        raise BadInputError(f"{ref} does not exist")
    current = schema_from_api(resource["schema"]["fields"])
    if not current.has(name):
        raise BadInputError(f"{ref} has no column '{name}'")
    native = native_type(current.column(name))
    query = f"select 1 from {ref.sql} where {d.quote_ident(name)} > cast(? as {native}) limit 1"
    return query, (watermark,), f"{ref} has a row with {name} > {watermark}"


def bigquery_check(
    *,
    conn_id: str,
    location: str | None,
    sql: str | None,
    parameters: Sequence[Any],
    table: str | None,
    column: str | None,
    watermark: str | None,
) -> tuple[bool, str]:
    """(whether the condition holds, what was seen): one query job. A sensor's poke and its
    trigger (in a worker thread) ask this."""
    from ..hooks.bigquery import DponeBigQueryHook

    hook = DponeBigQueryHook(gcp_conn_id=conn_id, location=location)
    try:
        query, params, what = _condition(hook, sql, parameters, table, column, watermark)
        rows = hook.jobs.query(query, params)[2]
    finally:
        hook.release()
    met = bool(rows and rows[0] and rows[0][0])
    return met, f"{what}: {'yes' if met else 'not yet'}"
