"""The SQL Server source's change feeds: Change Tracking and CDC windows, read in one SNAPSHOT
transaction on the extract's connection (``sql.mssql_changes`` renders the statements).

Each window is the rows changed since the stored position (a version, an LSN) up to the
position read now, which becomes the state candidate; without a stored position the table is
read in full as a snapshot. A stored position the server has cleaned up fails the load, naming
the fix: loading from a later position would lose changes silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contracts.errors import BadInputError, StateError
from ..contracts.sources import IncrementalSpec
from ..contracts.state import CdcState, ChangeVersionState, StateRecord
from ..contracts.strategies import IncrementalMode
from ..contracts.table import TableSchema
from ..sql.dialect import TableRef
from ..sql.extract_plan import expect_state
from ..sql.mssql import MSSQL as dialect
from ..sql.mssql_changes import LSN_ZERO, MsSqlChanges
from ..sql.targets import with_op
from .dbapi import fetch, run

CHANGES = MsSqlChanges(dialect)
_RESET = "reset the load's state (`dpone state reset <manifest> --load <load>`) to read the table again as a full snapshot"


@dataclass
class FeedWindow:
    """What one change-feed extract reads: columns (with the operation column), SELECT,
    parameters, the state candidate and the report's details."""

    schema: TableSchema
    select: str
    params: tuple[Any, ...]
    candidate: StateRecord
    details: dict[str, Any]


def _keys(cur: Any, schema: TableSchema, table: TableRef, mode: str) -> list[str]:
    """The table's whole primary key, which every column list of a change feed must hold: a
    change is of one row, joined and applied by its key."""
    keys = [r[0] for r in fetch(cur, dialect.INTROSPECT_PRIMARY_KEY, (table.sql,))]
    if not keys:
        raise BadInputError(f"source.incremental.mode: '{mode}' needs a primary key on {table}; it has none")
    missing = [k for k in keys if not schema.has(k)]
    if missing:
        raise BadInputError(
            f"source.columns: a '{mode}' load needs the whole primary key {keys} of {table}; add {missing}"
        )
    return keys


def change_tracking_window(
    cur: Any, table: TableRef, schema: TableSchema, state: StateRecord | None
) -> FeedWindow:
    """Changes after the stored version, up to the current one (``CHANGETABLE``)."""
    stored = expect_state(state, ChangeVersionState, "change_tracking")
    keys = _keys(cur, schema, table, "change_tracking")
    casts = dialect.read_casts(schema)
    run(cur, CHANGES.begin_snapshot())
    current, min_valid, tracked = fetch(cur, CHANGES.ct_versions(), (table.sql, table.sql))[0]
    if not tracked or current is None:
        raise BadInputError(
            f"source.incremental.mode: Change Tracking is not enabled for {table}; enable it: ALTER "
            "DATABASE <db> SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON); "
            f"ALTER TABLE {table.sql} ENABLE CHANGE_TRACKING"
        )
    details: dict[str, Any] = {"mode": "change_tracking", "to_version": int(current), "primary_key": keys}
    candidate = ChangeVersionState(int(current))
    if stored is None:
        details["snapshot"] = True
        select = CHANGES.snapshot_rows(table, schema.names, casts)
        return FeedWindow(with_op(schema), select, (), candidate, details)
    if min_valid is not None and stored.version < int(min_valid):
        raise StateError(
            f"the stored Change Tracking version {stored.version} of {table} is older than its minimum "
            f"valid version {int(min_valid)}: the server cleaned up changes (CHANGE_RETENTION) before "
            f"this load read them; {_RESET}, and run the load more often than the retention"
        )
    details["from_version"] = stored.version
    select = CHANGES.ct_changes(table, schema.names, keys, casts)
    return FeedWindow(with_op(schema), select, (stored.version, int(current)), candidate, details)


def cdc_window(
    cur: Any, table: TableRef, schema: TableSchema, inc: IncrementalSpec, state: StateRecord | None
) -> FeedWindow:
    """The last change per key after the stored LSN, up to the database's highest."""
    stored = expect_state(state, CdcState, "cdc")
    instance = inc.capture_instance or f"{table.schema}_{table.name}"
    captured = {r[0] for r in fetch(cur, CHANGES.cdc_captured_columns(), (instance,))}
    run(cur, CHANGES.begin_snapshot())
    lowest, highest = fetch(cur, CHANGES.cdc_positions(), (instance,))[0]
    if not captured or lowest is None or lowest.upper() == LSN_ZERO.upper():
        raise BadInputError(
            f"source.incremental.capture_instance: '{instance}' is not a CDC capture instance this login "
            f"can read; enable CDC: EXEC sys.sp_cdc_enable_db; EXEC sys.sp_cdc_enable_table "
            f"@source_schema = N'{table.schema}', @source_name = N'{table.name}', @role_name = NULL"
        )
    if highest is None:
        raise BadInputError("CDC has recorded no LSN in this database yet: is SQL Server Agent running?")
    kept = TableSchema(
        tuple(c for c in schema.columns if c.name in captured),
        schema.primary_key,
        {k: v for k, v in schema.extras.items() if k in captured},
    )
    uncaptured = [k for k in schema.primary_key if k not in captured]
    if uncaptured:
        raise BadInputError(
            f"source.incremental.capture_instance: '{instance}' does not record the key column(s) "
            f"{uncaptured} of {table}; enable a capture instance whose @captured_column_list holds them"
        )
    keys = _keys(cur, kept, table, "cdc")
    casts = dialect.read_casts(kept)
    if stored is not None and stored.stream != instance:
        raise StateError(
            f"the stored CDC position is of capture instance '{stored.stream}', not '{instance}'; {_RESET}"
        )
    details: dict[str, Any] = {
        "mode": "cdc",
        "capture_instance": instance,
        "to_lsn": highest,
        "primary_key": keys,
    }
    candidate = CdcState(instance, highest)
    if stored is None:
        details["snapshot"] = True
        return FeedWindow(
            with_op(kept), CHANGES.snapshot_rows(table, kept.names, casts), (), candidate, details
        )
    if stored.lsn.upper() > highest.upper():
        raise StateError(
            f"the stored CDC position {stored.lsn} of '{instance}' is past the database's highest LSN "
            f"{highest}: the database went back in time (a restore, a failover that lost data); "
            f"changes between them would be skipped. {_RESET}"
        )
    if stored.lsn.upper() == highest.upper():  # nothing new: read nothing, keep the position
        return FeedWindow(with_op(kept), CHANGES.no_changes(table, kept.names, casts), (), stored, details)
    start = fetch(cur, CHANGES.cdc_next_lsn(), (stored.lsn,))[0][0]
    details["from_lsn"] = start
    if start.upper() < lowest.upper():
        raise StateError(
            f"the stored CDC position {stored.lsn} of '{instance}' is older than the capture instance's "
            f"lowest LSN {lowest}: the cleanup job removed changes before this load read them; {_RESET}"
        )
    select = CHANGES.cdc_changes(instance, kept.names, keys, casts)
    return FeedWindow(with_op(kept), select, (start, highest), candidate, details)


def feed_window(
    cur: Any, table: TableRef, schema: TableSchema, inc: IncrementalSpec, state: StateRecord | None
) -> FeedWindow:
    if inc.mode is IncrementalMode.CHANGE_TRACKING:
        return change_tracking_window(cur, table, schema, state)
    return cdc_window(cur, table, schema, inc, state)
