"""``dpone doctor`` on a ClickHouse connection: reachable and authenticated (timed), the server
version, the tables the loads read, and the privileges each load needs, asked with ClickHouse's
``CHECK GRANT`` (nothing is created)."""

from __future__ import annotations

import time
from typing import Any

from ..contracts.doctor import ConnectionUse, Finding, LoadUse
from ..contracts.errors import BadInputError, DponeError
from ..contracts.strategies import Strategy
from ..sql.clickhouse import CLICKHOUSE as dialect

# What each strategy's finalize does in the target database, beside creating it when missing.
_CHANGES = {Strategy.FULL_REFRESH: ("CREATE TABLE", "DROP TABLE")}
_DELETES = {
    Strategy.INCREMENTAL_MERGE,
    Strategy.REPLACE,
    Strategy.PARTITION_REPLACE,
    Strategy.SNAPSHOT_DIFF,
    Strategy.CDC_APPLY,
    Strategy.SCD2,
}


def target_grants(strategy: Strategy, deletes: str, exists: bool) -> list[str]:
    """The privileges a load uses on its target database: a missing target is created (its
    database with ``create database if not exists``, which asks for CREATE DATABASE either way)
    by renaming staging in, then its staging label is cleared (a comment)."""
    needed = ["SELECT", "INSERT", *_CHANGES.get(strategy, ())]
    if not exists:
        needed += ["CREATE DATABASE", "CREATE TABLE", "ALTER MODIFY COMMENT"]
    if strategy is Strategy.FULL_REFRESH:
        needed.append("ALTER MODIFY COMMENT")
    if strategy in _DELETES or deletes == "hard":
        needed.append("ALTER DELETE")
    if deletes == "soft" or strategy is Strategy.SCD2:
        needed.append("ALTER UPDATE")
    return list(dict.fromkeys(needed))


class _Checks:
    def __init__(self, hook: Any, user: str) -> None:
        self.hook, self.user = hook, user

    def granted(self, subject: str, privileges: list[str], database: str, table: str = "*") -> Finding:
        on = f"{dialect.quote_ident(database)}.{'*' if table == '*' else dialect.quote_ident(table)}"
        lacking = [p for p in privileges if not self.hook.query(f"CHECK GRANT {p} ON {on}")[0][0]]
        where = f"{database}.{table}"
        if lacking:
            return Finding(
                "fail",
                "privilege",
                subject,
                f"{self.user} lacks {', '.join(lacking)} on {where}",
                fix=f"GRANT {', '.join(lacking)} ON {on} TO {dialect.quote_ident(self.user)}",
            )
        return Finding("ok", "privilege", subject, f"{', '.join(privileges)} on {where}")

    def exists(self, database: str, table: str | None = None) -> bool:
        if table is None:
            return bool(
                self.hook.query(
                    "select count() from system.databases where name = {d:String}", {"d": database}
                )[0][0]
            )
        rows = self.hook.query(
            "select count() from system.tables where database = {d:String} and name = {t:String}",
            {"d": database, "t": table},
        )
        return bool(rows[0][0])

    def source(self, use: LoadUse) -> list[Finding]:
        subject, spec = f"{use.key} source", use.load.source
        table = getattr(spec, "table", None)
        if table is None:
            return [self.granted(subject, ["SELECT"], self.hook._database())]
        ref = dialect.parse_table(table, self.hook._database())
        if not self.exists(ref.schema, ref.name):
            return [
                Finding("fail", "object", subject, f"table {ref} does not exist", fix="check source.table")
            ]
        return [self.granted(subject, ["SELECT"], ref.schema, ref.name)]

    def sink(self, use: LoadUse) -> list[Finding]:
        subject, spec = f"{use.key} sink", use.load.sink
        assert spec.table is not None
        ref = dialect.parse_table(spec.table, self.hook._database())
        staging = spec.staging.schema_name
        found = []
        if not self.exists(staging):  # dpone creates it only when it is missing
            found.append(self.granted(subject, ["CREATE DATABASE"], staging))
        # a failed run's staging is labelled as such (a comment)
        staged = ["CREATE TABLE", "DROP TABLE", "INSERT", "SELECT", "ALTER MODIFY COMMENT"]
        found.append(self.granted(subject, staged, staging))
        exists = self.exists(ref.schema, ref.name)
        found.append(
            self.granted(
                subject, target_grants(spec.strategy, use.load.reconciliation.deletes, exists), ref.schema
            )
        )
        evolve = self.granted(subject, ["ALTER ADD COLUMN"], ref.schema)
        if evolve.status == "fail":  # only new source columns need it
            found.append(
                Finding(
                    "warn",
                    "privilege",
                    subject,
                    f"{evolve.message}: safe schema changes cannot be applied",
                    fix=evolve.fix,
                )
            )
        return found


def check(hook: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one ClickHouse connection and the loads that use it."""
    started = time.monotonic()
    try:
        version, user = hook.query("select version(), currentUser()")[0]
    except BadInputError as exc:  # the server refused the credentials
        return [
            Finding(
                "ok", "reachable", use.conn_id, "the server answered", seconds=time.monotonic() - started
            ),
            Finding(
                "fail",
                "authenticated",
                use.conn_id,
                hook.redactor().redact(str(exc)),
                fix="check the connection's login and password",
            ),
        ]
    except (DponeError, Exception) as exc:
        message = hook.redactor().redact(f"{exc}")
        return [
            Finding(
                "fail",
                "reachable",
                use.conn_id,
                message,
                fix="check the connection's host, port and secure flag",
                seconds=time.monotonic() - started,
            )
        ]
    found = [
        Finding("ok", "reachable", use.conn_id, "the server answered", seconds=time.monotonic() - started),
        Finding("ok", "authenticated", use.conn_id, f"as {user}"),
        Finding("info", "version", use.conn_id, f"ClickHouse {version}"),
    ]
    if tuple(int(p) for p in str(version).split(".")[:2]) < (23, 3):
        found.append(
            Finding(
                "warn",
                "version",
                use.conn_id,
                f"ClickHouse {version} predates lightweight DELETE (23.3)",
                fix="upgrade the server",
            )
        )
    checks = _Checks(hook, str(user))
    for load in use.sources:
        found += checks.source(load)
    for load in use.sinks:
        found += checks.sink(load)
    return found
