"""A deferrable trigger on PostgreSQL: rows past a load's watermark, or a query answering true.

The trigger carries the connection id, never the connection: each poll the triggerer resolves
it (from a worker thread, as a sync hook does) and connects with async psycopg, so a rotated
password or a fresh IAM token is picked up and the event loop never blocks on the database.
The sensor's poke runs the same check through ``DponePostgresHook`` (:meth:`check`).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..contracts.errors import BadInputError, DponeError
from ..sql.postgres import POSTGRES as dialect
from .polling import error_event

if TYPE_CHECKING:
    import psycopg

    from ..contracts.redaction import Redactor

QUERY, WATERMARK = "query", "watermark"
Catalog = Sequence[Sequence[Any]]  # INTROSPECT_COLUMNS rows


def newer_rows_probe(table: str, column: str, catalog: Catalog, watermark: str | None) -> tuple[str, tuple]:
    """(statement, parameters) answering whether ``table`` has a row with ``column`` past
    ``watermark`` (any row when it is None); ``catalog`` is the table's INTROSPECT_COLUMNS rows.

    Identifiers are quoted; the watermark is bound as a parameter cast to the column's own type
    (as ``format_type`` spells it), so it compares as a value of that type, never as text.
    Raises ``BadInputError`` when the table or the column is missing.
    """
    ref = dialect.parse_table(table)
    if not catalog:
        raise BadInputError(f"table {ref} does not exist (or the connection's role cannot see it)")
    by_name = {row[0]: row for row in catalog}
    if column not in by_name:
        raise BadInputError(f"column '{column}' not in {ref}; it has {list(by_name)}")
    if watermark is None:
        return dialect.target_has_rows(ref), ()
    own_type = by_name[column][1]  # format_type(): from the catalog, quoted where it needs it
    return (
        f"select exists (select from {ref.sql} where {dialect.quote_ident(column)} > %s::{own_type})",
        (watermark,),
    )


def first_cell(has_result: bool, row: Sequence[Any] | None) -> bool:
    """Whether a query's answer means go: its first row's first cell is truthy (NULL, false, 0
    and '' are not); no row is false. A statement without a column to read is a mistake."""
    if not has_result:
        raise BadInputError(
            "the sensor's sql returned no column (not a query, or select without columns); "
            "give a query whose first cell says go"
        )
    return row is not None and bool(row[0])


def libpq_params(hook: Any) -> dict[str, Any]:
    """What ``PostgresHook.get_conn()`` passes to psycopg for ``hook``'s connection, without
    connecting: host, port, login, password (an IAM token when the extra ``iam`` is set),
    database, ``options`` and the extras libpq takes (``sslmode``...)."""
    conn = copy.deepcopy(hook.connection)
    extra = conn.extra_dejson
    if extra.get("iam", False):
        conn.login, conn.password, conn.port = hook.get_iam_token(conn)
    params: dict[str, Any] = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": getattr(hook, "database", None) or conn.schema,
    }
    if getattr(hook, "options", None):
        params["options"] = hook.options
    ignored = getattr(hook, "ignored_extra_options", {"cursor", "iam"})
    params.update({k: v for k, v in extra.items() if k not in ignored})
    return params


class PostgresConditionTrigger(BaseTrigger):
    """Fire when ``table`` has a row with ``column`` past ``watermark`` (any row when it is
    None), or when ``sql`` (with ``parameters``) answers a truthy first cell; asked every
    ``poll_interval`` seconds in a read-only transaction.

    An error (a missing table or column, bad SQL, a refused connection) ends the wait with an
    ``error`` event, whose message never carries the connection's credentials.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str | None = None,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        table: str | None = None,
        column: str | None = None,
        watermark: str | None = None,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        if (sql is None) == (table is None) or (table is not None and not column):
            raise BadInputError("PostgresConditionTrigger: give either sql, or table and column")
        self.conn_id, self.sql, self.table, self.column = conn_id, sql, table, column
        self.parameters: list[Any] | dict[str, Any] | None = (
            None
            if parameters is None
            else dict(parameters)
            if isinstance(parameters, Mapping)
            else list(parameters)
        )
        self.watermark = None if watermark is None else str(watermark)
        self.poll_interval = float(poll_interval)

    @property
    def mode(self) -> str:
        return QUERY if self.sql is not None else WATERMARK

    @property
    def what(self) -> str:
        """The check, for messages."""
        if self.mode == QUERY:
            return f"PostgreSQL sensor query on '{self.conn_id}'"
        return f"PostgreSQL sensor on '{self.conn_id}' {self.table}.{self.column}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "sql": self.sql,
                "parameters": self.parameters,
                "table": self.table,
                "column": self.column,
                "watermark": self.watermark,
                "poll_interval": self.poll_interval,
            },
        )

    def describe(self, met: bool) -> str:
        """One log line on a check's outcome (no row values: they may be anyone's data)."""
        if self.mode == QUERY:
            return f"{self.what}: {'true' if met else 'not true yet'}"
        past = "any row" if self.watermark is None else f"a row with {self.column} > {self.watermark!r}"
        return f"{self.table}: {past}: {'found' if met else 'not yet'}"

    def _statement(self, catalog: Catalog | None) -> tuple[str, Any]:
        if self.sql is not None:
            return self.sql, self.parameters or None
        assert self.table is not None and self.column is not None
        return newer_rows_probe(self.table, self.column, catalog or [], self.watermark)

    def _catalog_query(self) -> tuple[str, tuple[str, str]]:
        ref = dialect.parse_table(self.table or "")
        return dialect.INTROSPECT_COLUMNS, (ref.schema, ref.name)

    # --- the check, through the sync hook (a sensor's poke) -----------------------------------

    def check(self) -> bool:
        """Whether the condition holds now, asked through ``DponePostgresHook``; raises a
        ``DponeError`` with a redacted message when the check itself fails."""
        from ..hooks.postgres import DponePostgresHook

        hook = DponePostgresHook(conn_id=self.conn_id)
        import psycopg  # after the hook: without psycopg, its import names the pip extra

        try:
            with hook.session(self.what) as conn:
                conn.read_only = True  # a sensor's SQL never writes
                try:
                    cur = conn.cursor()
                    catalog = None
                    if self.mode == WATERMARK:
                        catalog = cur.execute(*self._catalog_query()).fetchall()
                    cur.execute(*self._statement(catalog))
                    has_result = bool(cur.description)  # no result set, or no column
                    return first_cell(has_result, cur.fetchone() if has_result else None)
                finally:
                    conn.rollback()
        except DponeError as exc:
            raise _redacted(exc, hook.redactor()) from None
        except psycopg.Error as exc:
            raise self._failure(exc, hook.redactor()) from None
        finally:
            hook.release()

    # --- the check, with async psycopg (the triggerer) ----------------------------------------

    def connect_params(self) -> tuple[dict[str, Any], Redactor]:
        """The libpq parameters of ``conn_id`` and a redactor of its credentials (sync: run
        from a worker thread)."""
        from ..contracts.redaction import Redactor
        from ..hooks.postgres import DponePostgresHook

        hook = DponePostgresHook(conn_id=self.conn_id)
        params = libpq_params(hook)  # resolves the connection once; the redactor reuses it
        return params, Redactor.of_connection(lambda: hook.connection)

    async def _connect(self, params: dict[str, Any]) -> psycopg.AsyncConnection:
        """An async connection; a refused one is transient, as in ``DponePostgresHook.connect``
        (the message is redacted by the caller: libpq echoes the user and database)."""
        import psycopg

        from ..contracts.errors import TransientError

        try:
            return await psycopg.AsyncConnection.connect(**params)
        except psycopg.OperationalError as exc:
            raise TransientError(f"cannot connect to '{self.conn_id}': {str(exc).strip()}") from None

    async def acheck(self, conn: psycopg.AsyncConnection) -> bool:
        """Whether the condition holds now, asked on ``conn`` (left without a transaction)."""
        await conn.set_read_only(True)
        try:
            cur = conn.cursor()
            catalog = None
            if self.mode == WATERMARK:
                await cur.execute(*self._catalog_query())
                catalog = await cur.fetchall()
            await cur.execute(*self._statement(catalog))
            has_result = bool(cur.description)  # no result set, or no column
            return first_cell(has_result, await cur.fetchone() if has_result else None)
        finally:
            await conn.rollback()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            redactor: Redactor | None = None
            try:
                params, redactor = await asyncio.to_thread(self.connect_params)
                async with await self._connect(params) as conn:
                    met = await self.acheck(conn)
            except Exception as exc:
                error = self._error(exc, redactor)
                self.log.error("%s", error)
                yield error_event(error, mode=self.mode)
                return
            if met:
                yield TriggerEvent({"status": "success", **self.payload()})
                return
            self.log.info("%s; next check in %gs", self.describe(False), self.poll_interval)
            await asyncio.sleep(self.poll_interval)

    def payload(self) -> dict[str, Any]:
        """What a success reports (the sensor's XCom)."""
        where = {"sql": self.sql} if self.mode == QUERY else {"table": self.table, "column": self.column}
        return {"mode": self.mode, "conn_id": self.conn_id, **where, "watermark": self.watermark}

    # --- errors -------------------------------------------------------------------------------

    def _failure(self, exc: Exception, redactor: Redactor | None) -> DponeError:
        """A driver error as a dpone error: retryable when a retry can help (a lost connection,
        a lock timeout), else bad input (a missing table, bad SQL)."""
        from ..hooks.postgres_errors import classify

        classified = classify(exc, self.what)
        if classified is None:
            hint = " (the sensor's sql)" if self.mode == QUERY else ""
            classified = BadInputError(f"{self.what} failed{hint}: {type(exc).__name__}: {exc}".strip())
        return _redacted(classified, redactor)

    def _error(self, exc: Exception, redactor: Redactor | None) -> DponeError:
        import psycopg

        if isinstance(exc, DponeError):
            return _redacted(exc, redactor)
        if isinstance(exc, psycopg.Error):
            return self._failure(exc, redactor)
        # an unknown conn_id, a broken extra: no retry fixes them
        return _redacted(BadInputError(f"{self.what}: {type(exc).__name__}: {exc}"), redactor)


def _redacted(error: DponeError, redactor: Redactor | None) -> DponeError:
    """``error`` with the connection's credentials masked in its message (same class)."""
    if redactor is None:
        return error
    masked = redactor.redact(error.message)
    if masked == error.message:
        return error
    clean = type(error).__new__(type(error), masked)  # its __init__ may take other arguments
    clean.__dict__.update(error.__dict__)
    clean.message, clean.args = masked, (masked,)
    return clean
