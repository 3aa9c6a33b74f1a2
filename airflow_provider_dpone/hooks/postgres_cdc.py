"""The PostgreSQL source's change feed (``incremental.mode: cdc``): logical decoding with the
built-in ``pgoutput`` plugin, through a replication slot and a publication of the load's own.

- **First run** (no state): the slot is created on a replication connection, which exports the
  snapshot of the slot's start; the table is read in full in that very snapshot (as a snapshot
  batch, which ``cdc_apply`` applies with its deletes). Nothing between the snapshot and the
  first change is lost or read twice. The state candidate is the slot's start.
- **Later runs**: the changes committed since the stored LSN and before the WAL position read
  at run start are peeked (``pg_logical_slot_peek_binary_changes``: the slot does not move),
  decoded and streamed to the sink as text COPY (``sql.pgoutput_rows``), memory bounded by a
  chunk. The candidate is the end of what was read; with no change of the table it stays the
  stored one, unless the slot holds more than ``IDLE_ADVANCE`` bytes of WAL for it.
- **After the commit**: ``acknowledge`` advances the slot to the committed state. A crash
  before that leaves the slot behind the state; the next run advances it first (the batch was
  applied). A slot ahead of the state, lost or invalidated fails the load, naming the re-snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import psycopg

from ..contracts.artifacts import TSV, ExtractResult, FileExport, StreamingBatches
from ..contracts.errors import BadInputError, StateError, TransientError
from ..contracts.sources import SourceSpec, TableSource
from ..contracts.state import CdcState, StateRecord
from ..contracts.table import TableSchema
from ..sql import postgres_cdc as cdc
from ..sql.dialect import TableRef
from ..sql.extract_plan import expect_state, plan_entry
from ..sql.pgoutput import decode, lsn_int, lsn_text
from ..sql.pgoutput_rows import RESNAPSHOT, BatchColumns, ChangeRow, ChangeRows
from ..sql.postgres import POSTGRES as dialect
from ..sql.targets import with_op
from .postgres_cdc_rows import copy_chunks, typed_batches
from .postgres_session import one_row
from .postgres_source import NOT_TSV, TEXT, OwnedStream, PostgresSource

log = logging.getLogger(__name__)

IDLE_ADVANCE = 64 << 20  # WAL bytes an idle table's slot may hold before a run moves it anyway
_FETCH = 2_000  # messages fetched per round trip of the peek cursor


@dataclass(frozen=True)
class SlotInfo:
    plugin: str
    database: str
    confirmed: str | None
    active: bool
    wal_status: str
    current: str
    retained: int | None


@dataclass(frozen=True)
class Feed:
    """What a load's change feed reads: the table, the slot, the publication, the batch."""

    table: TableRef
    slot: str
    publication: str
    schema: TableSchema  # the table's columns now (the batch's, with the operation column added)
    batch: BatchColumns
    version: int  # server_version_num
    load_oids: tuple[int, ...]  # the type each column's text is loaded as (a user type's cast)
    partitioned: bool = False


def slot_health(source: PostgresSource, slot: str, publication: str, limit: int | None) -> dict[str, Any]:
    """The health of replication slot ``slot`` on ``source`` (``sql.postgres_cdc.slot_health``)."""
    conn = source.connect()
    try:
        row = conn.execute(cdc.SLOT, (slot,)).fetchone()
        return cdc.slot_health(slot, publication, row, limit)
    finally:
        conn.rollback()
        conn.close()


class CdcReader:
    """One load's change feed on the PostgreSQL hook ``source``; ``key`` is ``pipeline.load``."""

    def __init__(self, source: PostgresSource, spec: SourceSpec, key: str | None) -> None:
        if not isinstance(spec, TableSource) or spec.incremental is None:
            raise BadInputError("source.incremental.mode: 'cdc' reads a table ('table'), not a query")
        inc = spec.incremental
        if inc.slot is None and key is None:
            raise BadInputError("source.incremental.slot: name the load's replication slot")
        self.source, self.spec = source, spec
        self.slot = cdc.check_name("source.incremental.slot", inc.slot or cdc.default_name(key or ""))
        self.publication = cdc.check_name(
            "source.incremental.publication", inc.publication or cdc.default_name(key or self.slot)
        )

    # --- what the feed reads ---------------------------------------------------------------

    def _server(self, cur: psycopg.Cursor) -> tuple[int, str, str]:
        level, version, database, replication, max_slots, used = one_row(cur.execute(cdc.SERVER))
        if level != "logical":
            raise BadInputError(
                f"source.incremental.mode: 'cdc' needs wal_level = logical on the source server, which "
                f"has '{level}': ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL (docs/cdc.md)"
            )
        if not replication:
            raise BadInputError(
                f"source.incremental.mode: 'cdc' needs a role with REPLICATION (or superuser) on "
                f"'{self.source.dpone_conn_id}': ALTER ROLE <user> REPLICATION (docs/cdc.md)"
            )
        return int(version), database, f"{used}/{max_slots}"

    def _feed(self, cur: psycopg.Cursor) -> Feed:
        version, _database, _slots = self._server(cur)
        table = dialect.parse_table(self.spec.table)
        found = cur.execute(cdc.TABLE, (table.sql,)).fetchone()
        if found is None:
            raise BadInputError(f"source table {table} does not exist")
        identity, kind, inherited, deferrable = found
        if inherited and kind != "p":
            raise BadInputError(
                f"source table {table} has inheritance children: their changes are published under "
                "their own names while a snapshot of the parent reads their rows; read each table"
            )
        if deferrable:
            raise BadInputError(
                f"source table {table} has a deferrable primary or unique key: one statement may swap "
                "keys, whose changes cannot be applied key by key; make the constraint NOT DEFERRABLE"
            )
        schema, _binary_ok, _relation = self.source.describe_source(cur, self.spec)
        if not schema.primary_key:
            raise BadInputError(f"source.incremental.mode: 'cdc' needs a primary key on {table}; it has none")
        if identity == "n" or (identity == "i"):
            raise BadInputError(
                f"source table {table} has REPLICA IDENTITY {'NOTHING' if identity == 'n' else 'USING INDEX'}: "
                "its updates and deletes would not carry the primary key; set REPLICA IDENTITY DEFAULT or FULL"
            )
        missing = [k for k in schema.primary_key if not schema.has(k)]
        if missing:
            raise BadInputError(f"source.columns: a 'cdc' load needs the whole primary key; add {missing}")
        catalog = {r[0]: r for r in cur.execute(cdc.COLUMNS, (table.sql,))}
        generated = [c for c in schema.names if catalog[c][3]]
        if generated:
            raise BadInputError(
                f"source.columns: generated column(s) {generated} of {table} are not published by "
                "logical decoding; list source.columns without them"
            )
        batch = BatchColumns(
            table.schema,
            table.name,
            tuple(schema.names),
            {c: int(catalog[c][1]) for c in schema.names},
            tuple(schema.primary_key),
            frozenset(c for c in schema.names if catalog[c][2]),
        )
        casts = {
            c: one_row(cur.execute("select %s::regtype::oid::int", (t,)))[0] for c, t in schema.extras.items()
        }
        load_oids = tuple(casts.get(c, batch.type_oids[c]) for c in schema.names)
        return Feed(table, self.slot, self.publication, schema, batch, version, load_oids, kind == "p")

    def check_table(self, cur: psycopg.Cursor) -> None:
        """Raise, naming the fix, when the server, the role or the table cannot feed changes
        (``dpone doctor``); reads the catalogs only."""
        self._feed(cur)

    def _slot(self, cur: psycopg.Cursor) -> SlotInfo | None:
        row = cur.execute(cdc.SLOT, (self.slot,)).fetchone()
        if row is None:
            return None
        plugin, kind, database, confirmed, active, wal_status, current, retained = row
        if kind != "logical" or plugin != cdc.PLUGIN:
            raise BadInputError(
                f"source.incremental.slot: '{self.slot}' is a {kind} slot of plugin {plugin!r}, not a "
                f"logical slot of {cdc.PLUGIN}; name another slot"
            )
        return SlotInfo(plugin, database, confirmed, bool(active), wal_status, current, retained)

    def _publication(self, cur: psycopg.Cursor, feed: Feed, *, create: bool) -> str:
        """Check (or create) the publication of the table; what the plan says of it."""
        statement = cdc.publication(feed.version)
        rows = cur.execute(statement, (feed.table.schema, feed.table.name, self.publication)).fetchall()
        if rows:
            self._check_publication(feed, rows[0])
            return "exists"
        if not create:
            return "to be created"
        try:
            cur.execute(cdc.create_publication(self.publication, feed.table))
        except psycopg.errors.InsufficientPrivilege:
            raise BadInputError(
                f"source.incremental.publication: creating publication '{self.publication}' for "
                f"{feed.table} needs the table's owner (or a superuser); create it as its owner "
                f"(`dpone cdc setup`, docs/cdc.md) or name an existing one"
            ) from None
        log.info("created publication %s for %s", self.publication, feed.table)
        return "created"

    def _check_publication(self, feed: Feed, row: tuple) -> None:
        """A publication that would drop changes silently is refused, naming what it lacks."""
        dml, truncate, via_root, has_table, columns, row_filter = row
        lacks = []
        if not has_table:
            lacks.append(f"the table {feed.table}")
        if not dml:
            lacks.append("inserts, updates and deletes")
        if not truncate:
            lacks.append("truncates (a truncate would go unseen)")
        if feed.partitioned and not via_root:
            lacks.append("publish_via_partition_root (partitions' changes carry their own names)")
        if columns is not None and set(feed.schema.names) - set(columns):
            lacks.append(f"the columns {sorted(set(feed.schema.names) - set(columns))} (a column list)")
        if row_filter is not None:
            lacks.append(f"every row (it filters: WHERE {row_filter})")
        if lacks:
            raise BadInputError(
                f"source.incremental.publication: '{self.publication}' does not publish "
                f"{'; nor '.join(lacks)}; name a publication that does, or let dpone create its own"
            )

    # --- the extract -------------------------------------------------------------------------

    def extract(self, state: StateRecord | None, accepted_formats: tuple[str, ...]) -> ExtractResult:
        stored = expect_state(state, CdcState, "cdc")
        if stored is not None and stored.stream != self.slot:
            raise StateError(
                f"the stored CDC position is of slot '{stored.stream}', not '{self.slot}'; {RESNAPSHOT}"
            )
        conn = self.source.connect()
        conn.autocommit = True
        try:
            cur = conn.cursor()
            feed = self._feed(cur)
            self._publication(cur, feed, create=True)
            slot = self._slot(cur)
            if stored is None:
                if slot is not None:
                    if slot.active:
                        raise TransientError(f"replication slot '{self.slot}' is in use by another session")
                    cur.execute(cdc.DROP_SLOT, (self.slot,))  # no state: its position was never applied
                    log.info(
                        "dropped replication slot %s (no stored state): taking a new snapshot", self.slot
                    )
                return self._snapshot(feed, accepted_formats)
            start = self._rolled_forward(cur, slot, stored)
        finally:
            conn.close()
        return self._changes(feed, stored, start, accepted_formats)

    def _rolled_forward(self, cur: psycopg.Cursor, slot: SlotInfo | None, stored: CdcState) -> str:
        """The WAL position read up to now; a slot behind the state is advanced to it."""
        if slot is None or slot.wal_status == "lost" or slot.confirmed is None:
            raise StateError(
                f"replication slot '{self.slot}' is {'gone' if slot is None else 'invalidated'} (dropped, or "
                "removed by max_slot_wal_keep_size): the changes after the stored position "
                f"{stored.lsn} cannot be read. Nothing was applied; {RESNAPSHOT}"
            )
        if slot.database != one_row(cur.execute("select current_database()"))[0]:
            raise BadInputError(f"replication slot '{self.slot}' belongs to database {slot.database!r}")
        confirmed, position = lsn_int(slot.confirmed), lsn_int(stored.lsn)
        if confirmed > position:
            raise StateError(
                f"replication slot '{self.slot}' is at {slot.confirmed}, past the stored position "
                f"{stored.lsn}: another reader consumed changes this load never applied (or the state "
                f"was restored from an older copy). Nothing was applied; {RESNAPSHOT}"
            )
        if confirmed < position:  # the last run committed but crashed before advancing the slot
            cur.execute(cdc.ADVANCE, (self.slot, stored.lsn))
            log.info(
                "advanced slot %s from %s to the stored position %s", self.slot, slot.confirmed, stored.lsn
            )
        health = self.health(cur)
        if health["verdict"] in ("warn", "over"):  # this run's commit is what releases it
            log.warning("%s; this run reads it and moves the slot once committed", health["message"])
        return one_row(cur.execute(cdc.CURRENT_LSN))[0]

    def _snapshot(self, feed: Feed, accepted_formats: tuple[str, ...]) -> ExtractResult:
        """Create the slot, and read the table in full in the snapshot it exports."""
        params = self.source.connect_params()
        try:
            replication = psycopg.connect(**params, replication="database", autocommit=True)
        except psycopg.OperationalError as exc:
            message = self.source.redactor().redact(str(exc).strip())
            raise TransientError(
                f"cannot open a replication connection to '{self.source.dpone_conn_id}': {message}"
            ) from None
        try:
            log.info(
                "creating replication slot %s: it waits for the write transactions open now to end", self.slot
            )
            result = replication.pgconn.exec_(cdc.create_slot(self.slot))
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise BadInputError(f"cannot create replication slot '{self.slot}': {message}")
            consistent = result.get_value(0, 1).decode()  # type: ignore[union-attr]
            snapshot = result.get_value(0, 2).decode()  # type: ignore[union-attr]
            log.info(
                "created replication slot %s at %s; reading %s in its snapshot",
                self.slot,
                consistent,
                feed.table,
            )
            full = self.spec.model_copy(update={"incremental": None})
            extract = self.source.extract(
                full, None, accepted_formats=accepted_formats, feed_snapshot=snapshot
            )
        finally:
            replication.close()  # the extract's transaction holds the snapshot now
        extract.state_candidate = CdcState(self.slot, consistent, self.publication)
        extract.details.update(self._details(feed) | {"snapshot": True, "to_lsn": consistent})
        return extract

    def _details(self, feed: Feed) -> dict[str, Any]:
        return {
            "mode": "cdc",
            "slot": self.slot,
            "publication": self.publication,
            "primary_key": list(feed.batch.keys),
        }

    def _changes(
        self, feed: Feed, stored: CdcState, upto: str, accepted_formats: tuple[str, ...]
    ) -> ExtractResult:
        """The changes after ``stored`` up to ``upto``: text COPY where the sink reads it (no
        row decoded in Python), else typed row batches (psycopg's own text loaders)."""
        text_ok = all(c.type not in NOT_TSV for c in feed.schema.columns)
        fmt = TEXT if TEXT in accepted_formats else TSV if TSV in accepted_formats and text_ok else None
        details = self._details(feed) | {"from_lsn": stored.lsn, "upto_lsn": upto}
        result = ExtractResult(StreamingBatches(()), with_op(feed.schema, ordered=True), stored, details)
        conn = self.source.connect()
        try:
            conn.execute(cdc.DECODE_SESSION)  # before any loader is built: they read DateStyle
        except BaseException:
            conn.close()
            raise
        changes = self._read(conn, feed, stored, upto, result)
        if fmt is not None:
            result.artifact = FileExport(fmt, OwnedStream(conn, copy_chunks(changes)))
        else:
            typed = typed_batches(conn, changes, feed.load_oids, self.spec.batch_size)
            result.artifact = StreamingBatches(OwnedStream(conn, typed))
        return result

    def _read(
        self, conn: psycopg.Connection, feed: Feed, stored: CdcState, upto: str, result: ExtractResult
    ) -> Generator[list[ChangeRow], None, None]:
        """The batch's change rows, a fetch at a time; sets the candidate once the peek is drained."""
        rows = ChangeRows(feed.batch)
        sent = 0
        try:
            with conn.cursor(name="dpone_cdc") as cur:
                cur.itersize = _FETCH
                cur.execute(cdc.PEEK, (self.slot, upto, self.publication))
                while fetched := cur.fetchmany(_FETCH):
                    out = [row for (data,) in fetched for row in rows.feed(decode(data))]
                    sent += len(out)
                    yield out
            conn.rollback()
        finally:
            conn.close()
        result.stats.source_rows = sent
        changed = sum(rows.counts[op] for op in ("I", "U", "D"))
        end = max(lsn_int(upto), rows.end_lsn or 0)
        result.details.update(
            {
                "changes": {k: v for k, v in rows.counts.items() if v},
                "transactions": rows.commits,
            }
        )
        if changed or end - lsn_int(stored.lsn) >= IDLE_ADVANCE:
            result.state_candidate = CdcState(self.slot, lsn_text(end), self.publication)
        else:
            result.details["note"] = "no change of the table since the stored position: state kept"
        log.info("read %d change row(s) of %s from slot %s up to %s", sent, feed.table, self.slot, upto)

    # --- operations: health, setup, drop --------------------------------------------------------

    def health(self, cur: psycopg.Cursor | None = None) -> dict[str, Any]:
        """The slot's lag and the WAL it holds back, with the verdict of ``max_retained_wal``."""
        assert self.spec.incremental is not None
        limit = self.spec.incremental.max_retained_wal
        if cur is not None:
            row = cur.execute(cdc.SLOT, (self.slot,)).fetchone()
            return cdc.slot_health(self.slot, self.publication, row, limit)
        return slot_health(self.source, self.slot, self.publication, limit)

    def setup(self) -> dict[str, Any]:
        """Check the server, the role and the table, and create the publication (the slot is made
        by the first run, whose snapshot it exports)."""
        conn = self.source.connect()
        conn.autocommit = True
        try:
            cur = conn.cursor()
            feed = self._feed(cur)
            publication = self._publication(cur, feed, create=True)
            _version, _database, slots = self._server(cur)
            return {
                "table": str(feed.table),
                "publication": self.publication,
                "publication_status": publication,
                "slot": self.slot,
                "slot_status": "exists" if self._slot(cur) else "created by the first run",
                "replication_slots_used": slots,
                "primary_key": list(feed.batch.keys),
            }
        finally:
            conn.close()

    def drop(self) -> dict[str, Any]:
        """Drop the slot (it holds WAL back) and the publication dpone created for it; a
        publication the manifest names is the user's and stays."""
        assert self.spec.incremental is not None
        conn = self.source.connect()
        conn.autocommit = True
        try:
            cur = conn.cursor()
            slot = self._slot(cur)
            if slot is not None and slot.active:
                raise TransientError(f"replication slot '{self.slot}' is in use by another session")
            if slot is not None:
                cur.execute(cdc.DROP_SLOT, (self.slot,))
            ours = self.spec.incremental.publication is None
            if ours:
                cur.execute(cdc.drop_publication(self.publication))
            return {
                "slot": self.slot,
                "slot_dropped": slot is not None,
                "publication": self.publication,
                "publication_dropped": ours,
            }
        finally:
            conn.close()

    # --- plan, acknowledge ---------------------------------------------------------------------

    def plan(self, state: StateRecord | None) -> tuple[dict[str, Any], TableSchema]:
        """What a run would read, touching nothing: the snapshot, or the peek and its window."""
        stored = expect_state(state, CdcState, "cdc")
        conn = self.source.connect()
        try:
            cur = conn.cursor()
            feed = self._feed(cur)
            publication = self._publication(cur, feed, create=False)
            slot = self._slot(cur)
            details = self._details(feed) | {"publication_status": publication}
            if stored is None:
                details |= {"snapshot": True, "slot_status": "recreated" if slot else "to be created"}
                statement = dialect.select_rows(feed.table.sql, feed.schema.names, casts=feed.schema.extras)
                return plan_entry(statement, [], details, None, with_op(feed.schema, ordered=True)), with_op(
                    feed.schema, ordered=True
                )
            upto = one_row(cur.execute(cdc.CURRENT_LSN))[0]
            details |= {
                "from_lsn": stored.lsn,
                "upto_lsn": upto,
                "slot_status": "missing" if slot is None else "exists",
            }
            if slot is not None and slot.retained is not None:
                details["retained_wal_bytes"] = int(slot.retained)
            params = [self.slot, upto, self.publication]
            return plan_entry(cdc.PEEK, params, details, None, with_op(feed.schema, ordered=True)), with_op(
                feed.schema, ordered=True
            )
        finally:
            conn.rollback()
            conn.close()

    def acknowledge(self, state: StateRecord) -> None:
        """After the sink and the state committed: advance the slot to the committed position."""
        if not isinstance(state, CdcState) or state.stream != self.slot:
            return
        conn = self.source.connect()
        conn.autocommit = True
        try:
            cur = conn.cursor()
            slot = self._slot(cur)
            if slot is None or slot.confirmed is None or lsn_int(slot.confirmed) >= lsn_int(state.lsn):
                return
            cur.execute(cdc.ADVANCE, (self.slot, state.lsn))
            log.info("advanced replication slot %s to %s", self.slot, state.lsn)
        finally:
            conn.close()
