"""``dpone doctor`` on a SQL Server connection: reachable (a login refused told apart from a host
that does not answer), the version and the database's settings, the permissions each load
needs, read with HAS_PERMS_BY_NAME (``sql.mssql_doctor``); then a probe that creates, fills,
labels, moves, renames and drops a table where the loads will, in a transaction that is rolled
back (SQL Server's DDL is transactional). Nothing stays.
"""

from __future__ import annotations

import re
import time
import uuid
from contextlib import suppress
from typing import Any

import mssql_python

from ..contracts.doctor import ConnectionUse, Finding, LoadUse, load_findings
from ..contracts.errors import BadInputError, DponeError, TransientError
from ..contracts.manifest import STATE_SCHEMA
from ..contracts.sources import QuerySource, TableSource
from ..contracts.strategies import IncrementalMode, Strategy
from ..sql import mssql_doctor as md
from ..sql.dialect import TableRef
from ..sql.journal import JOURNAL_TABLE
from ..sql.mssql import MSSQL as dialect
from ..sql.mssql_changes import MsSqlChanges
from ..sql.targets import managed_columns
from .mssql_session import close_quietly, connection_string, fetch, run

CHANGES = MsSqlChanges(dialect)
# seconds a login may take here, unless the connection's extra login_timeout says otherwise
LOGIN_TIMEOUT = 10
SESSION = "set lock_timeout 30000; set xact_abort on"  # a probe waits 30 s for a lock at most
RESET = "if @@trancount > 0 rollback transaction; set lock_timeout -1; set xact_abort off"
# The server answered and refused who we are: login failed (18456), the database refused the
# login (4060), an untrusted domain (18452).
_AUTH = re.compile(r"login failed|cannot open database|untrusted domain|\b(18456|4060|18452)\b", re.I)
_FIREWALL = re.compile(r"client with ip address|is not allowed to access the server|\b40615\b", re.I)
_TLS = re.compile(r"ssl provider|certificate|encryption not supported", re.I)
_DRIVER_PREFIX = re.compile(r"(\[Microsoft\]|\[ODBC Driver [^\]]*\]|\[SQL Server\])+")


def _clean(exc: BaseException) -> str:
    """The server's (or the driver's) message of a driver error, without the driver's prefixes."""
    text = str(exc).strip() or repr(exc)
    text = text.split("DDBC Error:", 1)[-1]
    return _DRIVER_PREFIX.sub("", text.strip().splitlines()[0]).strip()


def connect_findings(label: str, message: str, seconds: float, *, bad_input: bool = False) -> list[Finding]:
    """A connection that failed: its settings, an unreachable host, or a server that refused us
    (the message is redacted)."""
    answered = Finding("ok", "reachable", label, "the server answered", seconds=seconds)
    if bad_input:
        return [Finding("fail", "reachable", label, message, fix="correct the connection's host and extras")]
    if _AUTH.search(message):
        fix = "check the connection's login, password and database (schema field), and that the login has a user in it"
        return [answered, Finding("fail", "authenticated", label, message, fix=fix)]
    if _FIREWALL.search(message):
        fix = "allow this machine's address in the server's firewall rules"
        return [answered, Finding("fail", "authenticated", label, message, fix=fix)]
    if _TLS.search(message):
        fix = "trust the server's certificate (extras server_certificate, or trust_server_certificate: true)"
        return [answered, Finding("fail", "authenticated", label, message, fix=fix)]
    return [
        Finding(
            "fail",
            "reachable",
            label,
            message,
            fix="check the connection's host and port (a named instance: host\\instance), and that the "
            "server accepts TCP connections from here",
            seconds=seconds,
        )
    ]


def _connect(engine: Any) -> Any:
    """A connection as the loads open it (autocommit), with a short login timeout."""
    record = engine.get_connection(engine.dpone_conn_id)
    timeout = int(record.extra_dejson.get("login_timeout") or LOGIN_TIMEOUT)
    try:
        return mssql_python.connect(connection_string(record), autocommit=True, timeout=timeout)
    except mssql_python.Error as exc:  # the message may echo the login or the server: redacted
        raise TransientError(str(engine.redactor().redact(_clean(exc)))) from None


class _Probe:
    """The checks of one connection, on one session."""

    def __init__(self, engine: Any, use: ConnectionUse, cur: Any) -> None:
        self.engine, self.use, self.cur = engine, use, cur
        self.server = md.Server.of(fetch(cur, md.SERVER)[0])

    def error(self, exc: BaseException) -> str:
        return str(self.engine.redactor().redact(_clean(exc)))

    def attempt(self, steps: list[tuple[str, str, tuple[Any, ...]]]) -> str | None:
        """Run ``steps`` (what, statement, parameters) in a transaction rolled back whatever
        happens; the failing step and the server's error (redacted) when one fails."""
        what = ""
        try:
            run(self.cur, "begin transaction")
            for step in steps:
                what = step[0]
                run(self.cur, step[1], step[2])
        except (mssql_python.Error, DponeError) as exc:
            return f"{what}: {self.error(exc)}" if what else self.error(exc)
        finally:
            run(self.cur, "if @@trancount > 0 rollback transaction")
        return None

    def read(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], str | None]:
        try:
            return fetch(self.cur, statement, params), None
        except mssql_python.Error as exc:
            return [], self.error(exc)

    def schema(self, name: str) -> md.SchemaAccess | None:
        rows = fetch(self.cur, md.SCHEMA, (name,))
        return md.SchemaAccess.of(rows[0]) if rows else None

    def table(self, ref: TableRef) -> md.TableAccess | None:
        rows = fetch(self.cur, md.TABLE, (ref.sql,))
        return md.TableAccess.of(rows[0]) if rows else None

    def missing(self, subject: str, ref: TableRef, what: str) -> Finding:
        return Finding(
            "fail",
            "object",
            subject,
            f"{ref} does not exist, or {self.server.user} has no permission on it (SQL Server hides "
            f"what a login may not use): check {what}",
            fix=md.grant_object(["SELECT"], ref.sql, self.server.user),
        )

    def has_key(self, ref: TableRef) -> bool:
        return bool(fetch(self.cur, dialect.INTROSPECT_PRIMARY_KEY, (ref.sql,)))

    # --- the loads ---------------------------------------------------------------------------

    def source(self, use: LoadUse) -> list[Finding]:
        subject, spec, server = f"{use.key} source", use.load.source, self.server
        if isinstance(spec, QuerySource):
            try:  # the FROM item the extract reads; top (0) checks its permissions, reads nothing
                relation = dialect.source_relation(None, spec.query)
            except DponeError as exc:
                return [Finding("fail", "object", subject, str(exc), fix="rewrite source.query")]
            # described, never run: sp_describe_first_result_set compiles the batch (permissions
            # included) without executing it, so a query holding "; delete ..." writes nothing
            probe = f"select top (0) * from {relation}"
            error = self.attempt([("the query", "exec sp_describe_first_result_set @tsql = ?", (probe,))])
            if error:
                fix = "check source.query and the SELECT permissions it needs"
                return [
                    Finding("fail", "privilege", subject, f"the query does not compile: {error}", fix=fix)
                ]
            return [Finding("ok", "privilege", subject, "the query compiles (sp_describe_first_result_set)")]
        assert isinstance(spec, TableSource)
        ref = dialect.parse_table(spec.table)
        access = self.table(ref)
        if access is None:
            return [self.missing(subject, ref, "source.table")]
        found = md.table_findings(subject, str(ref), ref.sql, access, frozenset({"SELECT"}), server)
        inc = spec.incremental
        if inc is not None and inc.cursor and fetch(self.cur, md.COLUMN, (ref.sql, inc.cursor))[0][0] is None:
            found.append(
                Finding("fail", "object", subject, f"{ref} has no column {inc.cursor}", fix="check source.incremental.cursor")
            )  # fmt: skip
        if inc is not None and inc.mode in (IncrementalMode.CHANGE_TRACKING, IncrementalMode.CDC):
            if not self.has_key(ref):
                found.append(
                    Finding(
                        "fail",
                        "object",
                        subject,
                        f"a {inc.mode.value} load needs a primary key on {ref}; it has none",
                        fix=f"ALTER TABLE {ref.sql} ADD CONSTRAINT {dialect.quote_ident(ref.name[:100] + '_pkey')} "
                        "PRIMARY KEY (<key columns>)",
                    )
                )
            if inc.mode is IncrementalMode.CHANGE_TRACKING:
                found += md.change_tracking_findings(subject, str(ref), ref.sql, access, server)
            else:
                found += self.cdc(subject, ref, inc.capture_instance or f"{ref.schema}_{ref.name}")
        return found

    def cdc(self, subject: str, ref: TableRef, instance: str) -> list[Finding]:
        """What the CDC extract reads, read as it reads it; then its change function, top (0)."""
        server = self.server
        if not server.cdc_enabled:
            return md.cdc_findings(subject, str(ref), instance, server, [], None, None)
        captured, _ = self.read(CHANGES.cdc_captured_columns(), (instance,))
        positions, _ = self.read(CHANGES.cdc_positions(), (instance,))
        role, _ = self.read(md.CDC_ROLE, (instance,))
        found = md.cdc_findings(
            subject,
            str(ref),
            instance,
            server,
            [str(r[0]) for r in captured],
            (positions[0][0], positions[0][1]) if positions else None,
            (role[0][0], role[0][1]) if role else None,
        )
        if any(f.status == "fail" for f in found):
            return found
        function = f"cdc.{dialect.quote_ident('fn_cdc_get_all_changes_' + instance)}"
        lsn = "convert(binary(10), ?, 1)"
        error = self.attempt(
            [("its changes", f"select top (0) * from {function}({lsn}, {lsn}, N'all')", positions[0])]
        )
        if error:
            found.append(
                Finding(
                    "fail",
                    "privilege",
                    subject,
                    f"reading the changes of '{instance}' failed: {error}",
                    fix=md.grant_object(["SELECT"], ref.sql, server.user),  # every captured column
                )
            )
        return found

    def sink(self, use: LoadUse) -> list[Finding]:
        subject, load, server = f"{use.key} sink", use.load, self.server
        if server.read_only:
            return [md.read_only(subject, server, "the connection")]
        spec = load.sink
        assert spec.table is not None
        staging, target = spec.staging.schema_name, dialect.parse_table(spec.table)
        strategy, deletes = spec.strategy, load.reconciliation.deletes
        access = self.table(target)
        if access is not None and access.kind != "U":
            return [Finding("fail", "object", subject, f"{target} is not a table (type {access.kind})", fix="check sink.table")]  # fmt: skip
        full = strategy is Strategy.FULL_REFRESH
        swap = full and (access is None or not any(fetch(self.cur, dialect.SWAP_BLOCKERS, (target.sql,))[0]))
        moves = swap and staging != target.schema  # ALTER SCHEMA ... TRANSFER: CONTROL on staging
        colocated = any(p == use.pipeline for p, _ in self.use.states)
        journaled = load.source.incremental is not None and not colocated
        needs = md.STAGING_DML | ({"UPDATE"} if journaled else set())
        found = md.schema_findings(
            subject, staging, self.schema(staging), server, creates=True, needs=needs, control=moves,
            what="staging tables" + (" and the finalize journal" if journaled else ""),
        )  # fmt: skip
        if journaled:
            journal = dialect.table(staging, JOURNAL_TABLE)
            kept = self.table(journal)
            if kept is not None:
                found += md.table_findings(subject, str(journal), journal.sql, kept, md.JOURNAL_DML, server)
        probe = [staging]
        dml = md.target_dml(strategy, deletes)
        if access is None:  # created by the load (a full refresh moves staging in): the schema's owner's
            found += md.schema_findings(
                subject, target.schema, self.schema(target.schema), server, creates=True, needs=dml,
                what="the target is created there",
            )  # fmt: skip
            probe.append(target.schema)
        else:
            found += md.table_findings(subject, str(target), target.sql, access, dml, server)
            found += self.alter_findings(subject, load, target, access, swap)
            if (
                strategy is Strategy.PARTITION_REPLACE
                and fetch(self.cur, dialect.IS_PARTITIONED, (target.sql,))[0][0]
            ):
                found += self.partitions(subject, target, access)
                probe.append(target.schema)
        if not any(f.status == "fail" for f in found):
            found.append(self.ddl_probe(subject, probe, target.schema if moves else None))
        return found

    def alter_findings(
        self, subject: str, load: Any, target: TableRef, access: md.TableAccess, swap: bool
    ) -> list[Finding]:
        """ALTER where the finalize changes the existing target itself: a full refresh (truncate,
        or drop and swap in: ALTER on its schema), managed columns it adds; else a warning for
        schema changes."""
        server, name = self.server, str(target)
        if load.sink.strategy is Strategy.FULL_REFRESH:
            if swap:
                return md.schema_findings(
                    subject, target.schema, self.schema(target.schema), server, creates=False,
                    needs=frozenset({"ALTER"}), what="a full refresh drops the target and swaps staging in",
                )  # fmt: skip
            why = "a full refresh truncates it"
            return md.table_findings(subject, name, target.sql, access, frozenset({"ALTER"}), server, why)
        missing = [c.name for c in managed_columns(load) if fetch(self.cur, md.COLUMN, (target.sql, c.name))[0][0] is None]  # fmt: skip
        if missing:
            why = f"the load adds its managed column(s) {', '.join(missing)}"
            return md.table_findings(subject, name, target.sql, access, frozenset({"ALTER"}), server, why)
        warning = md.schema_change_finding(subject, name, target.sql, access, server)
        return [warning] if warning else []

    def partitions(self, subject: str, target: TableRef, access: md.TableAccess) -> list[Finding]:
        """partition_replace of a partitioned target: a table built in its schema (select into
        ... on the partition's filegroup, SQL Server 2017), truncated partitions, a switch."""
        server = self.server
        found = md.schema_findings(
            subject, target.schema, self.schema(target.schema), server, creates=True, needs=frozenset({"INSERT"}),
            what="each rewritten partition is built beside the target",
        )  # fmt: skip
        found += md.table_findings(
            subject, str(target), target.sql, access, frozenset({"ALTER"}), server,
            "partitions are truncated and switched in",
        )  # fmt: skip
        if server.engine_edition not in md.AZURE_EDITIONS and server.major < 14:
            found.append(
                Finding(
                    "fail",
                    "version",
                    subject,
                    "rebuilding a partition needs SQL Server 2017 (select into ... on a filegroup)",
                    fix="upgrade to SQL Server 2017 or later",
                )
            )
        return found

    def state(self, pipeline: str, table: str) -> list[Finding]:
        subject, server = f"{pipeline} state", self.server
        if server.read_only:
            return [md.read_only(subject, server, "state.conn_id")]
        ref = dialect.parse_table(table, default_schema=STATE_SCHEMA)  # as the state backend reads it
        access = self.table(ref)
        if access is not None:
            return md.table_findings(subject, str(ref), ref.sql, access, md.STATE_DML, server)
        found = md.schema_findings(
            subject, ref.schema, self.schema(ref.schema), server, creates=True, needs=md.STATE_DML,
            what="the state table is created there",
        )  # fmt: skip
        if not any(f.status == "fail" for f in found):
            found.append(self.ddl_probe(subject, [ref.schema], None))
        return found

    def ddl_probe(self, subject: str, schemas: list[str], moved_to: str | None) -> Finding:
        """In each schema (created when missing, as the loads do): create a table, insert, read
        and delete a row, label it, move it (``moved_to``, from the first schema), rename and
        drop it; all rolled back."""
        name = f"dpone_doctor_{uuid.uuid4().hex[:12]}"
        lit = dialect.quote_literal
        steps: list[tuple[str, str, tuple[Any, ...]]] = []
        for i, schema in enumerate(dict.fromkeys(schemas)):
            table = dialect.table(schema, name)
            steps += [
                (f"create schema {schema}", dialect.create_schema(schema), ()),
                (f"create a table in {schema}", f"create table {table.sql} (id int not null)", ()),
                ("insert into it", f"insert into {table.sql} (id) values (1)", ()),
                ("read it", f"select count_big(*) from {table.sql}", ()),
                ("delete from it", f"delete from {table.sql}", ()),
                ("label it", dialect.set_comment(table, "dpone doctor probe"), ()),
            ]
            if i == 0 and moved_to and moved_to != schema:
                steps.append((f"move it to {moved_to}", f"alter schema {dialect.quote_ident(moved_to)} transfer {table.sql}", ()))  # fmt: skip
                table = dialect.table(moved_to, name)
            renamed = table.sibling(f"{name}_r")
            steps += [
                ("rename it", f"exec sp_rename {lit(table.sql)}, {lit(renamed.name)}, N'OBJECT'", ()),
                ("drop it", f"drop table {renamed.sql}", ()),
            ]
        where = ", ".join(dict.fromkeys(schemas)) + (f" (moved to {moved_to})" if moved_to else "")
        error = self.attempt(steps)
        if error:
            return Finding(
                "fail", "privilege", subject, f"the probe in {where} failed at {error}", fix="grant what the message names"
            )  # fmt: skip
        return Finding(
            "ok", "privilege", subject, f"created, filled, labelled, renamed and dropped a table in {where} (rolled back)"
        )  # fmt: skip


def check(engine: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one SQL Server connection and the loads that use it."""
    started = time.monotonic()
    try:
        conn = _connect(engine)
    except BadInputError as exc:
        return connect_findings(use.conn_id, str(exc), time.monotonic() - started, bad_input=True)
    except DponeError as exc:
        return connect_findings(use.conn_id, str(exc), time.monotonic() - started)
    seconds = time.monotonic() - started
    try:
        cur = conn.cursor()
        run(cur, SESSION)
        probe = _Probe(engine, use, cur)
        return md.server_findings(use.conn_id, probe.server, seconds) + load_findings(probe, use)
    finally:
        with suppress(Exception):  # a broken connection holds nothing on the server any more
            run(conn.cursor(), RESET)
        close_quietly(conn)
