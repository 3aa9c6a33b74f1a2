"""Wait for data in SQL Server: rows past a dpone load's stored watermark, or a query answering true."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..contracts.errors import BadInputError, DponeError
from .deferrable import CheckSensor
from .watermark import check_sensor_arguments, condition_arguments


class DponeMsSqlSensor(CheckSensor):
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
    naming it; a lost connection is retried. For long waits, ``deferrable=True`` checks once,
    then waits in the triggerer (the same check every ``poke_interval`` seconds, from a worker
    thread; the watermark as stored when it deferred), or use ``mode="reschedule"``.
    """

    template_fields: Sequence[str] = ("sql", "parameters", "table", "column", "pipeline", "load", "state")
    template_fields_renderers = {"sql": "sql", "parameters": "json", "state": "json"}
    ui_color = "#e8d6f5"
    what = "SQL Server sensor"

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
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        watermark = {"table": table, "column": column, "load": load, "pipeline": pipeline, "state": state}
        check_sensor_arguments("DponeMsSqlSensor", sql, parameters, watermark)
        self.conn_id = conn_id
        self.sql, self.parameters = sql, parameters
        self.table, self.column, self.load, self.pipeline = table, column, load, pipeline
        self.state = dict(state) if state is not None else {}

    def check_call(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}:mssql_check", {"conn_id": self.conn_id, **condition_arguments(self)}


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
        return sql, tuple(parameters), "the query answers true"
    from ..sql.mssql import MSSQL as dialect
    from ..sql.mssql_types import value_of

    ref, name = dialect.parse_table(str(table)), str(column)
    if watermark is None:
        return f"select top (1) 1 from {ref.sql}", (), f"{ref} has a row (no watermark stored)"
    rows = hook._read(dialect.INTROSPECT_COLUMNS, (ref.sql,))
    found = [r for r in rows if r[0].lower() == name.lower()]  # names are case-insensitive
    if not found:
        raise BadInputError(f"{ref} has no column '{name}'" if rows else f"{ref} does not exist")
    native = dialect.native_type(dialect.column_from_catalog(found[0]))
    query = f"select top (1) 1 from {ref.sql} where {dialect.quote_ident(name)} > {value_of('?', native)}"
    return query, (watermark,), f"{ref} has a row with {name} > {watermark}"


def mssql_check(
    *,
    conn_id: str,
    sql: str | None,
    parameters: Sequence[Any],
    table: str | None,
    column: str | None,
    watermark: str | None,
) -> tuple[bool, str]:
    """(whether the condition holds, what was seen), in a transaction rolled back. A sensor's
    poke and its trigger (in a worker thread) ask this."""
    from ..hooks.dbapi import fetch, run
    from ..hooks.mssql import DponeMsSqlHook

    hook = DponeMsSqlHook(mssql_conn_id=conn_id)
    try:
        query, params, what = _condition(hook, sql, parameters, table, column, watermark)
        with hook.session("sensor check") as conn:
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
    except DponeError:
        raise
    except Exception as exc:  # the server refused the check (bad SQL, no permission): no retry fixes it
        if type(exc).__module__.split(".")[0] != "mssql_python":
            raise
        message = hook.redactor().redact(f"{type(exc).__name__}: {exc}")
        raise BadInputError(f"the sensor's check failed: {message}") from None
    met = bool(rows and rows[0] and rows[0][0])
    return met, f"{what}: {'yes' if met else 'not yet'}"
