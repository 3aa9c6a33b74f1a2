"""``dpone doctor`` on a PostgreSQL connection: reachable, authenticated, the server settings
and the privileges each load needs, read from the catalogs; then a probe that creates, renames
and drops a table where the loads will, in a transaction that is rolled back. Nothing stays.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from ..contracts.doctor import ConnectionUse, Finding, LoadUse, load_findings
from ..contracts.errors import DponeError
from ..contracts.manifest import STATE_SCHEMA
from ..contracts.sources import QuerySource, TableSource
from ..contracts.strategies import IncrementalMode, Strategy
from ..sql import postgres_doctor as pd
from ..sql.journal import JOURNAL_TABLE
from ..sql.postgres import POSTGRES as dialect
from ..sql.targets import managed_columns
from .postgres_session import one_row

# libpq's words for a server that answered but refused who we are
_AUTH = re.compile(
    r"password authentication failed|authentication failed|no pg_hba\.conf entry|role \S+ does not exist|"
    r"database \S+ does not exist|no password supplied|permission denied for database",
    re.I,
)


def connect_findings(label: str, message: str, seconds: float) -> list[Finding]:
    """A connection that failed: unreachable, or reached and refused (the message is redacted)."""
    if _AUTH.search(message):
        return [
            Finding("ok", "reachable", label, "the server answered", seconds=seconds),
            Finding(
                "fail",
                "authenticated",
                label,
                message,
                fix="check the connection's login, password and database (schema field)",
            ),
        ]
    return [
        Finding(
            "fail",
            "reachable",
            label,
            message,
            fix="check the connection's host and port, and that the server accepts connections from here",
            seconds=seconds,
        )
    ]


def _standby(subject: str, what: str) -> Finding:
    return Finding(
        "fail", "setting", subject, "the server is a read-only standby", fix=f"point {what} at the primary"
    )


class _Probe:
    """The checks of one connection, on one connection in one transaction rolled back at the end."""

    def __init__(self, engine: Any, use: ConnectionUse, conn: psycopg.Connection) -> None:
        self.engine, self.use, self.conn = engine, use, conn
        self.cur = conn.cursor()
        self.server = pd.Server.of(one_row(self.cur.execute(pd.SERVER)))

    def attempt(self, action: Callable[[], object]) -> str | None:
        """Run ``action`` in a savepoint rolled back whatever happens (so a probe's objects never
        reach the next check); the server's error (redacted) when it fails."""
        try:
            with self.conn.transaction() as savepoint:
                action()
                raise psycopg.Rollback(savepoint)
        except psycopg.Error as exc:
            return str(self.engine.redactor().redact(str(exc).strip().splitlines()[0]))
        return None

    def schema(self, name: str) -> tuple | None:
        return self.cur.execute(pd.SCHEMA, (name,)).fetchone()

    def table(self, name: str) -> pd.TableAccess | None:
        ref = dialect.parse_table(name)
        row = self.cur.execute(pd.TABLE, (ref.schema, ref.name)).fetchone()
        return pd.TableAccess.of(row) if row else None

    # --- the loads ---------------------------------------------------------------------------

    def source(self, use: LoadUse) -> list[Finding]:
        subject, spec = f"{use.key} source", use.load.source
        if isinstance(spec, QuerySource):
            # prepared: the extended protocol takes one statement, so a query holding a
            # "; commit; ..." cannot run the rest
            error = self.attempt(lambda: self.cur.execute(f"explain {spec.query}", prepare=True))
            if error:
                return [
                    Finding(
                        "fail",
                        "privilege",
                        subject,
                        f"the query does not plan: {error}",
                        fix="check source.query and the grants it needs",
                    )
                ]
            return [Finding("ok", "privilege", subject, "the query plans (EXPLAIN)")]
        assert isinstance(spec, TableSource)
        ref = dialect.parse_table(spec.table)
        found = pd.schema_findings(
            subject, ref.schema, self.schema(ref.schema), self.server, create_in=False, what="read"
        )
        access = self.table(spec.table)
        if access is None:
            return [
                *found,
                Finding("fail", "object", subject, f"table {ref} does not exist", fix="check source.table"),
            ]
        found += pd.table_findings(subject, str(ref), access, frozenset({"SELECT"}), self.server)
        inc = spec.incremental
        if (
            inc is not None
            and inc.cursor
            and not self.cur.execute(pd.COLUMN, (ref.schema, ref.name, inc.cursor)).fetchone()
        ):
            found.append(
                Finding(
                    "fail",
                    "object",
                    subject,
                    f"{ref} has no column {inc.cursor}",
                    fix="check source.incremental.cursor",
                )
            )
        if inc is not None and inc.mode is IncrementalMode.CDC:
            found += self.cdc(use, access)
        return found

    def cdc(self, use: LoadUse, access: pd.TableAccess) -> list[Finding]:
        subject = f"{use.key} source"
        feed = self.engine.cdc_feed(use.load.source, use.key)
        slot = self.cur.execute(
            "select 1 from pg_replication_slots where slot_name = %s", (feed.slot,)
        ).fetchone()
        found = pd.cdc_server_findings(subject, self.server, slot is not None)
        if any(f.status == "fail" for f in found):
            return found
        has_publication = self.cur.execute(pd.PUBLICATION, (feed.publication,)).fetchone()
        if not has_publication and not access.owner:
            found.append(
                Finding(
                    "fail",
                    "privilege",
                    subject,
                    f"publication {feed.publication} does not exist and only the owner of the table "
                    f"({access.owner_name}) may create it",
                    fix=f"run `dpone cdc setup` as {access.owner_name}, or name an existing publication",
                )
            )
        try:
            error = self.attempt(lambda: feed.check_table(self.cur))  # key, replica identity, ...
        except DponeError as exc:
            error = str(self.engine.redactor().redact(str(exc)))
        if error:
            found.append(Finding("fail", "object", subject, error, fix="docs/cdc.md"))
        else:
            found.append(Finding("ok", "object", subject, "the table can be read as a change feed"))
        if slot is None:  # the first run creates the slot on a replication connection
            try:
                params = self.engine.connect_params()
                with psycopg.connect(**params, replication="database", autocommit=True) as replication:
                    replication.pgconn.exec_(b"IDENTIFY_SYSTEM")
                found.append(
                    Finding("ok", "reachable", subject, "a replication connection opens (IDENTIFY_SYSTEM)")
                )
            except psycopg.Error as exc:
                message = self.engine.redactor().redact(str(exc).strip())
                found.append(
                    Finding(
                        "fail",
                        "reachable",
                        subject,
                        f"a replication connection is refused: {message}",
                        fix="allow it in pg_hba.conf (docs/cdc.md)",
                    )
                )
        return found

    def sink(self, use: LoadUse) -> list[Finding]:
        subject, spec = f"{use.key} sink", use.load.sink
        if self.server.standby:
            return [_standby(subject, "the connection")]
        staging = spec.staging.schema_name
        found = pd.schema_findings(
            subject, staging, self.schema(staging), self.server, create_in=True, what="staging tables"
        )
        assert spec.table is not None
        ref = dialect.parse_table(spec.table)
        access = self.table(spec.table)
        owner, must_own = "", False
        if access is not None:
            missing = [
                c.name
                for c in managed_columns(use.load)
                if not self.cur.execute(pd.COLUMN, (ref.schema, ref.name, c.name)).fetchone()
            ]
            owner, must_own = pd.ownership(spec.strategy, access, missing)
        creates = (
            access is None or spec.strategy is Strategy.FULL_REFRESH or (access.partitioned and must_own)
        )
        found += pd.schema_findings(
            subject, ref.schema, self.schema(ref.schema), self.server, create_in=creates, what="the target"
        )
        found += pd.table_findings(
            subject,
            str(ref),
            access,
            pd.target_dml(spec.strategy, use.load.reconciliation.deletes),
            self.server,
            owner=owner,
            must_own=must_own,
        )
        if not any(f.status == "fail" for f in found):
            found.append(self.ddl_probe(subject, [staging, *([ref.schema] if creates else [])]))
        if not any(pipeline == use.pipeline for pipeline, _ in self.use.states):
            # state kept elsewhere: the finalize journals its state in staging (sql/journal.py)
            journal = f"{staging}.{JOURNAL_TABLE}"
            found += pd.table_findings(subject, journal, self.table(journal), pd.JOURNAL_DML, self.server)
        return found

    def state(self, pipeline: str, table: str) -> list[Finding]:
        subject = f"{pipeline} state"
        if self.server.standby:
            return [_standby(subject, "state.conn_id")]
        ref = dialect.parse_table(table, default_schema=STATE_SCHEMA)  # as the state backend reads it
        access = self.table(str(ref))
        found = pd.schema_findings(
            subject,
            ref.schema,
            self.schema(ref.schema),
            self.server,
            create_in=access is None,
            what="the state table",
        )
        found += pd.table_findings(subject, str(ref), access, pd.STATE_DML, self.server)
        if access is None and not any(f.status == "fail" for f in found):
            found.append(self.ddl_probe(subject, [ref.schema]))
        return found

    def ddl_probe(self, subject: str, schemas: list[str]) -> Finding:
        """Create, rename and drop a table in each schema (creating a missing schema), rolled back."""
        name = f"dpone_doctor_{uuid.uuid4().hex[:12]}"

        def probe() -> None:
            for schema in dict.fromkeys(schemas):
                table = dialect.table(schema, name)
                self.cur.execute(dialect.create_schema(schema))  # as the loads do
                self.cur.execute(f"create table {table.sql} (id int)")
                self.cur.execute(f"alter table {table.sql} rename to {dialect.quote_ident(name + '_r')}")
                self.cur.execute(f"drop table {table.sibling(name + '_r').sql}")

        where = ", ".join(dict.fromkeys(schemas))
        error = self.attempt(probe)
        if error:
            return Finding(
                "fail",
                "privilege",
                subject,
                f"creating a table in {where} failed: {error}",
                fix="grant what the message names",
            )
        return Finding(
            "ok", "privilege", subject, f"created, renamed and dropped a table in {where} (rolled back)"
        )


def check(engine: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one PostgreSQL connection and the loads that use it."""
    started = time.monotonic()
    try:
        conn = engine.connect()
    except DponeError as exc:
        return connect_findings(use.conn_id, str(exc), time.monotonic() - started)
    seconds = time.monotonic() - started
    try:
        conn.execute("set local statement_timeout = '30s'")
        probe = _Probe(engine, use, conn)
        server = probe.server
        found = [
            Finding("ok", "reachable", use.conn_id, f"connected to {server.database}", seconds=seconds),
            Finding(
                "ok",
                "authenticated",
                use.conn_id,
                f"as {server.user}{' (superuser)' if server.superuser else ''}",
            ),
            Finding(
                "info",
                "version",
                use.conn_id,
                f"PostgreSQL {server.version}; wal_level = {server.wal_level}, max_replication_slots = "
                f"{server.max_slots} ({server.used_slots} used)",
            ),
        ]
        return found + load_findings(probe, use)
    finally:
        conn.rollback()
        conn.close()
