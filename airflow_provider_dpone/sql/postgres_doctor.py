"""What ``dpone doctor`` asks a PostgreSQL server, and what the answers mean for each load: the
catalog queries (read-only) and the findings built from their rows, each naming the fix.
Pure: no I/O, no drivers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.doctor import Finding
from ..contracts.strategies import Strategy
from .postgres import POSTGRES as dialect

SERVER = (
    "select current_user, current_setting('server_version'), current_setting('server_version_num')::int, "
    "pg_is_in_recovery(), current_setting('wal_level'), current_setting('max_replication_slots')::int, "
    "(select count(*) from pg_replication_slots)::int, current_setting('max_wal_senders')::int, "
    "r.rolsuper, r.rolreplication, has_database_privilege(current_database(), 'CREATE'), current_database() "
    "from pg_roles as r where r.rolname = current_user"
)

# By name, from the catalogs every role can read: to_regclass() would fail on a schema without
# USAGE instead of saying so.
SCHEMA = (
    "select has_schema_privilege(n.oid, 'USAGE'), has_schema_privilege(n.oid, 'CREATE') "
    "from pg_namespace as n where n.nspname = %s"
)
TABLE = (
    "select pg_has_role(c.relowner, 'USAGE'), pg_get_userbyid(c.relowner), c.relkind = 'p', "
    "has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'), "
    "has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE') "
    "from pg_class as c join pg_namespace as n on n.oid = c.relnamespace "
    "where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')"
)
COLUMN = (
    "select 1 from pg_attribute as a join pg_class as c on c.oid = a.attrelid "
    "join pg_namespace as n on n.oid = c.relnamespace "
    "where n.nspname = %s and c.relname = %s and a.attname = %s and a.attnum > 0 and not a.attisdropped"
)
PUBLICATION = "select 1 from pg_publication where pubname = %s"

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
# What each strategy's finalize does to an existing target, beside the staging table it creates.
DML: dict[Strategy, frozenset[str]] = {
    Strategy.FULL_REFRESH: frozenset({"SELECT", "INSERT"}),  # a swap: the owner's rename (below)
    Strategy.INCREMENTAL_APPEND: frozenset({"INSERT"}),
    Strategy.INCREMENTAL_MERGE: frozenset({"SELECT", "INSERT", "UPDATE"}),
    Strategy.REPLACE: frozenset({"SELECT", "INSERT", "DELETE"}),
    Strategy.PARTITION_REPLACE: frozenset({"SELECT", "INSERT", "DELETE"}),
    Strategy.SNAPSHOT_DIFF: frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
    Strategy.SCD2: frozenset({"SELECT", "INSERT", "UPDATE"}),
    Strategy.CDC_APPLY: frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
}
STATE_DML = frozenset(PRIVILEGES)
# the finalize journal (state kept elsewhere): upserted, read, acknowledged
JOURNAL_DML = frozenset({"SELECT", "INSERT", "UPDATE"})


@dataclass(frozen=True)
class Server:
    user: str
    version: str
    version_num: int
    standby: bool
    wal_level: str
    max_slots: int
    used_slots: int
    max_wal_senders: int
    superuser: bool
    replication: bool
    create_schema: bool
    database: str

    @classmethod
    def of(cls, row: tuple) -> Server:
        return cls(*row)


@dataclass(frozen=True)
class TableAccess:
    owner: bool
    owner_name: str
    privileges: frozenset[str]
    partitioned: bool = False

    @classmethod
    def of(cls, row: tuple) -> TableAccess:
        owner, owner_name, partitioned, *flags = row
        granted = frozenset(p for p, f in zip(PRIVILEGES, flags, strict=True) if f)
        return cls(bool(owner), str(owner_name), granted, bool(partitioned))


def ownership(strategy: Strategy, access: TableAccess, missing_managed: list[str]) -> tuple[str, bool]:
    """Why a load would own its existing target, and whether it must: a full refresh swaps it
    in, a partition_replace of a partitioned table detaches and attaches leaves, managed
    columns (SCD2 validity, a soft-delete marker) that are missing are added; otherwise only
    safe schema changes would need it."""
    if strategy is Strategy.FULL_REFRESH:
        return "a full refresh swaps it in (rename and drop need the owner)", True
    if strategy is Strategy.PARTITION_REPLACE and access.partitioned:
        return "partition_replace detaches and attaches its partitions (the owner's right)", True
    if missing_managed:
        return f"the load adds its managed column(s) {', '.join(missing_managed)} (ALTER TABLE)", True
    return "safe schema changes (ALTER TABLE ... ADD COLUMN) need the owner", False


def grant(privileges: list[str], table: str, user: str) -> str:
    return f"GRANT {', '.join(privileges)} ON {table} TO {dialect.quote_ident(user)}"


def target_dml(strategy: Strategy, deletes: str) -> frozenset[str]:
    """The privileges a load's finalize uses on its existing target."""
    needed = DML.get(strategy, frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}))
    if deletes == "hard":
        needed |= {"DELETE"}
    elif deletes == "soft":
        needed |= {"UPDATE"}
    return needed


def schema_findings(
    subject: str, schema: str, row: tuple | None, server: Server, *, create_in: bool, what: str
) -> list[Finding]:
    """A schema the load uses: USAGE, and CREATE when the load creates tables in it; a missing
    schema is created, which needs CREATE on the database."""
    quoted = dialect.quote_ident(schema)
    user = dialect.quote_ident(server.user)
    if row is None:
        if server.create_schema:
            return [
                Finding(
                    "ok",
                    "privilege",
                    subject,
                    f"schema {schema} does not exist; the first run creates it ({what})",
                )
            ]
        return [
            Finding(
                "fail",
                "privilege",
                subject,
                f"schema {schema} does not exist and {server.user} may not create schemas in {server.database}",
                fix=f"CREATE SCHEMA {quoted} AUTHORIZATION {user} (or GRANT CREATE ON DATABASE "
                f"{dialect.quote_ident(server.database)} TO {user})",
            )
        ]
    usage, create = bool(row[0]), bool(row[1])
    lacking = [p for p, has in (("USAGE", usage), ("CREATE", create or not create_in)) if not has]
    if lacking:
        return [
            Finding(
                "fail",
                "privilege",
                subject,
                f"no {' and '.join(lacking)} on schema {schema} ({what})",
                fix=f"GRANT {', '.join(lacking)} ON SCHEMA {quoted} TO {user}",
            )
        ]
    return [
        Finding(
            "ok", "privilege", subject, f"{'USAGE and CREATE' if create_in else 'USAGE'} on schema {schema}"
        )
    ]


def table_findings(
    subject: str,
    table: str,
    access: TableAccess | None,
    needed: frozenset[str],
    server: Server,
    *,
    owner: str | None = None,
    must_own: bool = False,
) -> list[Finding]:
    """An existing table the load reads or writes: the privileges it uses; ``owner`` says why
    the load would own it (a swap, schema changes): a failure when ``must_own``, else a warning."""
    if access is None:
        return []
    lacking = sorted(needed - access.privileges, key=PRIVILEGES.index)
    found: list[Finding] = []
    if lacking and not access.owner:
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"no {', '.join(lacking)} on {table}",
                fix=grant(lacking, str(dialect.parse_table(table).sql), server.user),
            )
        )
    elif needed:
        found.append(
            Finding(
                "ok", "privilege", subject, f"{', '.join(sorted(needed, key=PRIVILEGES.index))} on {table}"
            )
        )
    if owner and not access.owner:
        found.append(
            Finding(
                "fail" if must_own else "warn",
                "privilege",
                subject,
                f"{table} is owned by {access.owner_name}, not {server.user}: {owner}",
                fix=f"ALTER TABLE {dialect.parse_table(table).sql} OWNER TO {dialect.quote_ident(server.user)} "
                f"(or GRANT {dialect.quote_ident(access.owner_name)} TO {dialect.quote_ident(server.user)})",
            )
        )
    return found


def cdc_server_findings(subject: str, server: Server, slot_exists: bool) -> list[Finding]:
    """What a PostgreSQL change feed needs of the server and the role."""
    found: list[Finding] = []
    if server.wal_level != "logical":
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"wal_level is '{server.wal_level}'; a cdc load needs 'logical'",
                fix="ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (docs/cdc.md)",
            )
        )
    else:
        found.append(Finding("ok", "setting", subject, "wal_level = logical"))
    if not (server.replication or server.superuser):
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"role {server.user} lacks REPLICATION (creating and reading a replication slot needs it)",
                fix=f"ALTER ROLE {dialect.quote_ident(server.user)} REPLICATION",
            )
        )
    else:
        found.append(Finding("ok", "privilege", subject, f"role {server.user} has REPLICATION"))
    free = server.max_slots - server.used_slots
    if slot_exists:
        found.append(Finding("ok", "setting", subject, "its replication slot exists"))
    elif free <= 0:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"no free replication slot ({server.used_slots} of max_replication_slots = {server.max_slots} used)",
                fix="drop an unused slot, or raise max_replication_slots (a restart)",
            )
        )
    else:
        found.append(
            Finding(
                "ok", "setting", subject, f"{free} of {server.max_slots} replication slots free for its slot"
            )
        )
    if server.max_wal_senders < 1:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                "max_wal_senders = 0: the first run's replication connection is refused",
                fix="ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL",
            )
        )
    return found
