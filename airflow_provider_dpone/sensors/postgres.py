"""Wait for data in PostgreSQL: rows past a dpone load's stored watermark, or a query answering
true; and the health gate of a change feed's replication slot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from ..contracts.errors import BadInputError, DponeError
from ..triggers.postgres import PostgresConditionTrigger
from .deferrable import finish
from .watermark import check_sensor_arguments, stored_cursor


class DponePostgresSensor(BaseSensorOperator):
    """Succeed once PostgreSQL has what a task waits for. Two modes, by their arguments:

    - **New rows past a load's watermark**: ``table`` and ``column`` (the load's source table
      and cursor column), with ``load``, ``pipeline`` (default: the DAG id, as for
      ``StagedLoadOperator``) and ``state`` (the manifest's ``state`` mapping, e.g.
      ``TableState("dwh")``): true once ``table`` has a row with ``column`` greater than the
      cursor value the load stored (any row while none is stored). The state is read at every
      poke; a deferred sensor waits past the value stored when it deferred.
    - **A query answering true**: ``sql`` (a file ending in ``.sql`` is read as a template)
      with ``parameters`` (``%s`` / ``%(name)s``): true once the first cell of the first row is
      truthy (NULL, false, 0 and '' are not); no row is false.

    :param conn_id: a ``postgres`` or ``dpone_postgres`` connection (the load's source).
    :param deferrable: check once on the worker, then wait in the triggerer
        (:class:`PostgresConditionTrigger`, async psycopg every ``poke_interval`` seconds) until
        true or ``timeout``.

    Every check runs in a read-only transaction; identifiers are quoted and values bound as
    parameters, never pasted into SQL. An error (a missing table or column, bad SQL, a stored
    state that is not a cursor on ``column``) fails the task without a retry, with a message
    that names it; a lost connection is retried. Messages never carry the connection's
    credentials.
    """

    template_fields: Sequence[str] = ("sql", "parameters", "table", "column", "pipeline", "load", "state")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "parameters": "json", "state": "json"}
    ui_color = "#d6e6f5"

    def __init__(
        self,
        *,
        conn_id: str = "postgres_default",
        sql: str | None = None,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        table: str | None = None,
        column: str | None = None,
        load: str | None = None,
        pipeline: str | None = None,
        state: Mapping[str, Any] | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        watermark_args = {
            "table": table,
            "column": column,
            "load": load,
            "pipeline": pipeline,
            "state": state,
        }
        check_sensor_arguments("DponePostgresSensor", sql, parameters, watermark_args)
        self.conn_id = conn_id
        self.sql, self.parameters = sql, parameters
        self.table, self.column, self.load, self.pipeline = table, column, load, pipeline
        self.state = dict(state) if state is not None else {}
        self.deferrable = deferrable

    # --- what to check --------------------------------------------------------------------

    def stored_watermark(self) -> str | None:
        """The cursor value the load stored (None: nothing stored yet, every row is new)."""
        return stored_cursor(self.state, self.pipeline or self.dag_id, str(self.load), self.column)

    def trigger(self) -> PostgresConditionTrigger:
        """The condition as of now (the watermark read from the load's state)."""
        if self.sql is not None:
            return PostgresConditionTrigger(
                conn_id=self.conn_id,
                sql=self.sql,
                parameters=self.parameters,
                poll_interval=self.poke_interval,
            )
        return PostgresConditionTrigger(
            conn_id=self.conn_id,
            table=self.table,
            column=self.column,
            watermark=self.stored_watermark(),
            poll_interval=self.poke_interval,
        )

    def _check(self) -> tuple[bool, PostgresConditionTrigger]:
        """(condition met, the trigger that asked); a dpone error no retry fixes fails the task."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            trigger = self.trigger()
            met = trigger.check()
        except DponeError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        self.log.info("%s", trigger.describe(met))
        return met, trigger

    # --- Airflow --------------------------------------------------------------------------

    def poke(self, context: Any) -> bool:
        return self._check()[0]

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        met, trigger = self._check()
        if met:
            return {"status": "success", **trigger.payload()}
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        done = finish(event, "PostgreSQL")
        self.log.info("condition met: %s", done)
        return done


class DponePostgresSlotSensor(BaseSensorOperator):
    """Gate a PostgreSQL change feed (``incremental.mode: cdc``) on its replication slot's
    health, and wait until it has WAL to read.

    Each poke logs the slot's lag (``lag_bytes``: WAL written since its committed position, on
    the whole server, not only the table's changes) and the WAL it holds back on the source
    (``retained_wal_bytes``). It succeeds once ``lag_bytes >= min_lag_bytes`` and returns the
    health as XCom; it fails at once, naming the fix, when the slot is missing or invalidated
    (its changes are gone: re-snapshot) or holds more than ``max_retained_wal`` (an abandoned
    slot filling the source's disk: run the load, or ``dpone cdc drop``). A slot that does not
    exist yet passes with a warning: the load's first run creates it (and a slot lost after
    that fails the load itself, naming the re-snapshot).

    :param conn_id: the load's source connection (``postgres`` or ``dpone_postgres``).
    :param slot: the slot; by default the load's (``pipeline``, default the DAG id, and ``load``).
    :param max_retained_wal: bytes, or a size like ``'10GB'`` (the manifest's
        ``incremental.max_retained_wal``); above 80% of it each poke warns.
    """

    template_fields: Sequence[str] = ("slot", "pipeline", "load")
    ui_color = "#d6e6f5"

    def __init__(
        self,
        *,
        conn_id: str = "postgres_default",
        slot: str | None = None,
        pipeline: str | None = None,
        load: str | None = None,
        max_retained_wal: int | str | None = None,
        min_lag_bytes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from ..contracts.durations import parse_size

        if not slot and not load:
            raise BadInputError("DponePostgresSlotSensor: give slot, or load (and pipeline) to name its slot")
        self.conn_id, self.slot, self.pipeline, self.load = conn_id, slot, pipeline, load
        try:
            self.max_retained_wal = None if max_retained_wal is None else parse_size(max_retained_wal)
        except ValueError as exc:
            raise BadInputError(f"DponePostgresSlotSensor: max_retained_wal: {exc}") from None
        self.min_lag_bytes = min_lag_bytes

    def poke(self, context: Any) -> Any:
        from airflow.sdk import PokeReturnValue
        from airflow.sdk.exceptions import AirflowFailException

        from ..hooks.postgres import DponePostgresHook
        from ..hooks.postgres_cdc import slot_health
        from ..sql.postgres_cdc import check_name, default_name

        key = f"{self.pipeline or self.dag_id}.{self.load}"
        slot = check_name("slot", self.slot or default_name(key))
        hook = DponePostgresHook(**{DponePostgresHook.conn_name_attr: self.conn_id})
        try:
            health = slot_health(hook, slot, default_name(key), self.max_retained_wal)
        finally:
            hook.release()
        verdict, message = health["verdict"], health["message"]
        if verdict == "missing":  # the load's first run creates it; a lost one fails the load itself
            self.log.warning("%s: the load's first run creates it", message)
            return PokeReturnValue(is_done=True, xcom_value=health)
        if verdict in ("lost", "over"):
            fix = (
                "run the load (its commit releases the WAL) or drop the abandoned slot: dpone cdc drop"
                if verdict == "over"
                else "re-snapshot the load: dpone state reset <manifest> --load <load>"
            )
            raise AirflowFailException(f"{message}; {fix}")
        (self.log.warning if verdict == "warn" else self.log.info)("%s", message)
        lag = health.get("lag_bytes") or 0
        return PokeReturnValue(is_done=lag >= self.min_lag_bytes, xcom_value=health)
