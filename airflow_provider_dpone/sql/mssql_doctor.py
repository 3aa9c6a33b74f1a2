"""What ``dpone doctor`` asks a SQL Server, and what the answers mean for each load: the catalog
queries (read-only) and the findings built from their rows, each fix a T-SQL statement.
Pure: no I/O, no drivers.

Effective permissions come from ``HAS_PERMS_BY_NAME`` (grants to the user and its roles, and
what a higher grant, ownership or a fixed role implies). Facts of SQL Server the checks follow:

- a table created in a schema belongs to the schema's owner, not to its creator: a loader that
  creates its staging (or target, or state) table in someone else's schema also needs SELECT,
  INSERT, ... on the schema to use it. CREATE TABLE needs the database permission and ALTER on
  the schema; CREATE SCHEMA the database permission (the creator then owns the schema);
- bulk copy (the TDS bulk-load protocol, as ``bcp in``) needs SELECT and INSERT on the table,
  plus ALTER when it imports identity values or skips the table's constraints or triggers:
  dpone's staging tables have none of those, and ADMINISTER BULK OPERATIONS is only for
  BULK INSERT / OPENROWSET(BULK) reading server-side files;
- TRUNCATE TABLE, sp_rename, UPDATE STATISTICS, ALTER TABLE ... SWITCH and adding a column need
  ALTER on the table; DROP TABLE ALTER on its schema (or CONTROL on the table); ALTER SCHEMA ...
  TRANSFER CONTROL on the moved table and ALTER on the schema it moves to;
- the finalize locks an existing target by reading it (``select top (1) ... with (tablockx)``):
  every strategy needs SELECT on it;
- objects a login has no permission on are invisible (metadata visibility): a table the login
  cannot see reads as missing; ``sys.schemas`` is visible to everyone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..contracts.doctor import Finding
from ..contracts.strategies import Strategy
from .mssql import MSSQL as dialect

q = dialect.quote_ident

SERVER = """
select cast(serverproperty('ProductVersion') as nvarchar(128)),
       cast(serverproperty('Edition') as nvarchar(128)),
       cast(serverproperty('EngineEdition') as int),
       db_name(), suser_sname(), user_name(),
       is_srvrolemember(N'sysadmin'), is_rolemember(N'db_owner'),
       has_perms_by_name(db_name(), N'DATABASE', N'CREATE TABLE'),
       has_perms_by_name(db_name(), N'DATABASE', N'CREATE SCHEMA'),
       cast(databasepropertyex(db_name(), 'Updateability') as nvarchar(20)),
       d.snapshot_isolation_state, d.is_cdc_enabled, change_tracking_current_version()
from sys.databases as d
where d.database_id = db_id()
"""

SCHEMA_PERMISSIONS = ("ALTER", "CONTROL", "SELECT", "INSERT", "UPDATE", "DELETE")
# One row per schema named ``?``: its owner, then each of SCHEMA_PERMISSIONS (sys.schemas is
# visible to every user; a schema's securable name is its plain name).
SCHEMA = (
    "select user_name(s.principal_id), "
    + ", ".join(f"has_perms_by_name(s.name, N'SCHEMA', N'{p}')" for p in SCHEMA_PERMISSIONS)
    + " from sys.schemas as s where s.name = ?"
)

TABLE_PERMISSIONS = ("SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "CONTROL", "VIEW CHANGE TRACKING")
# One row for the table (or view) named ``?`` (quoted, as ``TableRef.sql``) when the login can
# see it: its type, each of TABLE_PERMISSIONS, whether Change Tracking and CDC track it.
TABLE = (
    "select o.type, "
    + ", ".join(f"has_perms_by_name(n.name, N'OBJECT', N'{p}')" for p in TABLE_PERMISSIONS)
    + ", case when exists (select 1 from sys.change_tracking_tables as ct where ct.object_id = o.object_id) "
    "then 1 else 0 end, coalesce(t.is_tracked_by_cdc, 0) "
    "from (select cast(? as nvarchar(776)) as name) as n "
    "join sys.objects as o on o.object_id = object_id(n.name) "
    "left join sys.tables as t on t.object_id = o.object_id"
)
COLUMN = "select col_length(?, ?)"  # NULL: no such column (or not visible)
# The capture instance's gating role and whether the user is in it.
CDC_ROLE = (
    "select ch.role_name, is_rolemember(ch.role_name) from cdc.change_tables as ch "
    "where ch.capture_instance = ?"
)

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
# What each strategy's finalize does to an existing target (the lock reads it: SELECT always).
DML: dict[Strategy, frozenset[str]] = {
    Strategy.FULL_REFRESH: frozenset({"SELECT", "INSERT"}),  # truncate + insert; a swap: ALTER (below)
    Strategy.INCREMENTAL_APPEND: frozenset({"SELECT", "INSERT"}),
    Strategy.INCREMENTAL_MERGE: frozenset({"SELECT", "INSERT", "UPDATE"}),
    Strategy.REPLACE: frozenset({"SELECT", "INSERT", "DELETE"}),
    Strategy.PARTITION_REPLACE: frozenset({"SELECT", "INSERT", "DELETE"}),
    Strategy.SNAPSHOT_DIFF: frozenset({"SELECT", "INSERT", "UPDATE"}),
    Strategy.SCD2: frozenset({"SELECT", "INSERT", "UPDATE"}),
    Strategy.CDC_APPLY: frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
}
STATE_DML = frozenset(PRIVILEGES)  # read, upsert, and `dpone state reset` deletes
# staging: bulk copy (SELECT, INSERT), keep_last and a change batch's deletes (DELETE)
STAGING_DML = frozenset({"SELECT", "INSERT", "DELETE"})
JOURNAL_DML = frozenset({"SELECT", "INSERT", "UPDATE"})
AZURE_EDITIONS = frozenset({5, 8})  # Azure SQL Database (its ProductVersion is 12.x), Managed Instance
SNAPSHOT_ON = 1


@dataclass(frozen=True)
class Server:
    version: str
    edition: str
    engine_edition: int
    database: str
    login: str
    user: str
    sysadmin: bool
    db_owner: bool
    create_table: bool
    create_schema: bool
    updateability: str
    snapshot_isolation: int
    cdc_enabled: bool
    ct_version: int | None

    @classmethod
    def of(cls, row: tuple) -> Server:
        version, edition, engine, database, login, user, sa, owner, table, schema, upd, snap, cdc, ct = row
        return cls(
            str(version), str(edition), int(engine or 0), str(database), str(login), str(user),
            bool(sa), bool(owner), bool(table), bool(schema), str(upd or ""), int(snap or 0),
            bool(cdc), None if ct is None else int(ct),
        )  # fmt: skip

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0] or 0)

    @property
    def read_only(self) -> bool:
        return self.updateability.upper() == "READ_ONLY"

    @property
    def role(self) -> str:
        return " (sysadmin)" if self.sysadmin else " (db_owner)" if self.db_owner else ""


@dataclass(frozen=True)
class SchemaAccess:
    owner: str
    granted: frozenset[str]

    @classmethod
    def of(cls, row: tuple) -> SchemaAccess:
        owner, *flags = row
        return cls(str(owner), frozenset(p for p, f in zip(SCHEMA_PERMISSIONS, flags, strict=True) if f))


@dataclass(frozen=True)
class TableAccess:
    kind: str  # sys.objects.type: U a table, V a view
    granted: frozenset[str]
    change_tracked: bool = False
    cdc_tracked: bool = False

    @classmethod
    def of(cls, row: tuple) -> TableAccess:
        kind, *rest = row
        flags, ct, cdc = rest[: len(TABLE_PERMISSIONS)], rest[-2], rest[-1]
        granted = frozenset(p for p, f in zip(TABLE_PERMISSIONS, flags, strict=True) if f)
        return cls(str(kind).strip(), granted, bool(ct), bool(cdc))


def _ordered(names: Iterable[str], order: tuple[str, ...]) -> list[str]:
    return sorted(set(names), key=lambda p: order.index(p) if p in order else len(order))


def grant_object(privileges: Iterable[str], table: str, user: str) -> str:
    """GRANT on a table; ``table`` is quoted (``TableRef.sql``)."""
    return f"GRANT {', '.join(_ordered(privileges, TABLE_PERMISSIONS))} ON {table} TO {q(user)}"


def grant_schema(privileges: Iterable[str], schema: str, user: str) -> str:
    return f"GRANT {', '.join(_ordered(privileges, SCHEMA_PERMISSIONS))} ON SCHEMA::{q(schema)} TO {q(user)}"


def target_dml(strategy: Strategy, deletes: str) -> frozenset[str]:
    """The privileges a load's finalize uses on its existing target."""
    needed = DML.get(strategy, frozenset(PRIVILEGES))
    if strategy is Strategy.CDC_APPLY and deletes == "soft":  # a feed's deletes set the marker
        needed -= {"DELETE"}
    if deletes == "hard":
        needed |= {"DELETE"}
    elif deletes == "soft":
        needed |= {"UPDATE"}
    return needed


def server_findings(subject: str, server: Server, seconds: float) -> list[Finding]:
    """Reachable (timed), who we are, the version and the database's settings."""
    found = [
        Finding("ok", "reachable", subject, f"connected to database {server.database}", seconds=seconds),
        Finding("ok", "authenticated", subject, f"as login {server.login}, user {server.user}{server.role}"),
        Finding(
            "info",
            "version",
            subject,
            f"SQL Server {server.version} ({server.edition}); snapshot isolation "
            f"{'on' if server.snapshot_isolation == SNAPSHOT_ON else 'off'}, Change Tracking "
            f"{'on' if server.ct_version is not None else 'off'}, CDC {'on' if server.cdc_enabled else 'off'}",
        ),
    ]
    if server.engine_edition not in AZURE_EDITIONS and server.major < 13:
        found.append(
            Finding(
                "fail",
                "version",
                subject,
                f"SQL Server {server.version} is older than 2016 (13.x), which dpone's statements need",
                fix="upgrade to SQL Server 2016 or later",
            )
        )
    return found


def read_only(subject: str, server: Server, what: str) -> Finding:
    return Finding(
        "fail",
        "setting",
        subject,
        f"database {server.database} is read-only (a readable secondary, or set READ_ONLY)",
        fix=f"point {what} at the primary replica (no ApplicationIntent=ReadOnly), or "
        f"ALTER DATABASE {q(server.database)} SET READ_WRITE",
    )


def missing_schema_findings(subject: str, schema: str, server: Server, what: str) -> list[Finding]:
    """A schema the load creates (``create schema``, owned by its creator), then tables in it."""
    lacking = [p for p, has in (("CREATE SCHEMA", server.create_schema), ("CREATE TABLE", server.create_table)) if not has]  # fmt: skip
    if not lacking:
        return [
            Finding("ok", "privilege", subject, f"schema {schema} does not exist; the first run creates it ({what})")
        ]  # fmt: skip
    fixes = [f"GRANT {p} TO {q(server.user)}" for p in lacking]
    return [
        Finding(
            "fail",
            "privilege",
            subject,
            f"schema {schema} does not exist and {server.user} lacks {' and '.join(lacking)} in "
            f"database {server.database} ({what})",
            fix="; ".join(fixes),
        )
    ]


def schema_findings(
    subject: str,
    schema: str,
    access: SchemaAccess | None,
    server: Server,
    *,
    creates: bool,
    needs: frozenset[str] = frozenset(),
    control: bool = False,
    what: str,
) -> list[Finding]:
    """A schema the load uses: ``creates`` tables in it (CREATE TABLE and ALTER on it), uses the
    tables it creates there (``needs`` on the schema: they belong to the schema's owner), moves a
    table out of it (``control``: CONTROL on the table, from the schema)."""
    if access is None:
        return missing_schema_findings(subject, schema, server, what)
    needed = set(needs) | ({"ALTER"} if creates else set()) | ({"CONTROL"} if control else set())
    lacking = _ordered(needed - access.granted, SCHEMA_PERMISSIONS)
    found: list[Finding] = []
    if creates and not server.create_table:
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"{server.user} lacks CREATE TABLE in database {server.database} ({what} in {schema})",
                fix=f"GRANT CREATE TABLE TO {q(server.user)}",
            )
        )
    if lacking:
        fix = grant_schema(lacking, schema, server.user)
        if "CONTROL" in lacking:  # moving a table needs CONTROL: dpone's own schema may be the loader's
            fix = f"ALTER AUTHORIZATION ON SCHEMA::{q(schema)} TO {q(server.user)}; {fix}"
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"no {', '.join(lacking)} on schema {schema} (owned by {access.owner}; {what})",
                fix=fix,
            )
        )
    elif needed:
        granted = ", ".join(_ordered(needed, SCHEMA_PERMISSIONS))
        found.append(Finding("ok", "privilege", subject, f"{granted} on schema {schema} ({what})"))
    return found


def table_findings(
    subject: str,
    table: str,
    quoted: str,
    access: TableAccess,
    needed: frozenset[str],
    server: Server,
    why: str = "",
) -> list[Finding]:
    """An existing table the load reads or writes: the permissions it uses."""
    if not needed:
        return []
    lacking = _ordered(needed - access.granted, TABLE_PERMISSIONS)
    listed = ", ".join(_ordered(needed, TABLE_PERMISSIONS))
    if lacking:
        because = f": {why}" if why else ""
        return [
            Finding(
                "fail",
                "privilege",
                subject,
                f"no {', '.join(lacking)} on {table}{because}",
                fix=grant_object(lacking, quoted, server.user),
            )
        ]
    return [Finding("ok", "privilege", subject, f"{listed} on {table}")]


def schema_change_finding(
    subject: str, table: str, quoted: str, access: TableAccess, server: Server
) -> Finding | None:
    """Safe schema changes (ALTER TABLE ... ADD / ALTER COLUMN) need ALTER: a warning without it,
    as a run only needs it when the source's schema changes."""
    if "ALTER" in access.granted:
        return None
    return Finding(
        "warn",
        "privilege",
        subject,
        f"no ALTER on {table}: a safe schema change (a new or wider column) would fail",
        fix=grant_object(["ALTER"], quoted, server.user),
    )


def snapshot_finding(subject: str, server: Server, mode: str) -> Finding:
    if server.snapshot_isolation == SNAPSHOT_ON:
        return Finding("ok", "setting", subject, "snapshot isolation is allowed (the change feed's read)")
    return Finding(
        "fail",
        "setting",
        subject,
        f"a {mode} load reads its window in a SNAPSHOT transaction; database {server.database} does "
        "not allow snapshot isolation",
        fix=f"ALTER DATABASE {q(server.database)} SET ALLOW_SNAPSHOT_ISOLATION ON",
    )


def change_tracking_findings(
    subject: str, table: str, quoted: str, access: TableAccess, server: Server
) -> list[Finding]:
    """Change Tracking: on for the database and the table, VIEW CHANGE TRACKING on the table
    (CHANGETABLE also needs SELECT on its key columns: the table's SELECT, checked apart)."""
    found = [snapshot_finding(subject, server, "change_tracking")]
    if server.ct_version is None:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"Change Tracking is not enabled for database {server.database}",
                fix=f"ALTER DATABASE {q(server.database)} SET CHANGE_TRACKING = ON "
                "(CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)",
            )
        )
    if not access.change_tracked:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"Change Tracking is not enabled for {table}",
                fix=f"ALTER TABLE {quoted} ENABLE CHANGE_TRACKING",
            )
        )
    found += table_findings(subject, table, quoted, access, frozenset({"VIEW CHANGE TRACKING"}), server)
    return found


def cdc_findings(
    subject: str,
    table: str,
    instance: str,
    server: Server,
    captured: list[str],
    positions: tuple[str | None, str | None] | None,
    role: tuple[str | None, int | None] | None,
) -> list[Finding]:
    """CDC: on for the database, the capture instance readable (its captured columns, its
    lowest LSN, the database's highest), the user in its gating role. ``positions`` and ``role``
    are None when they could not be read."""
    found = [snapshot_finding(subject, server, "cdc")]
    if not server.cdc_enabled:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                f"CDC is not enabled for database {server.database}",
                fix="EXEC sys.sp_cdc_enable_db",
            )
        )
        return found
    gate, member = role or (None, None)
    if gate and not member and not (server.db_owner or server.sysadmin):  # its reads answer nothing
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"{server.user} is not in {gate}, the gating role of capture instance '{instance}'",
                fix=f"ALTER ROLE {q(gate)} ADD MEMBER {q(server.user)}",
            )
        )
        return found
    lowest, highest = positions or (None, None)
    if not captured or lowest is None or int(lowest, 16) == 0:
        ref = dialect.parse_table(table)
        found.append(
            Finding(
                "fail",
                "object",
                subject,
                f"'{instance}' is not a CDC capture instance of {table} this login can read (missing, "
                "or the login lacks SELECT on its captured columns)",
                fix=f"EXEC sys.sp_cdc_enable_table @source_schema = {dialect.quote_literal(ref.schema)}, "
                f"@source_name = {dialect.quote_literal(ref.name)}, "
                f"@capture_instance = {dialect.quote_literal(instance)}, @role_name = NULL",
            )
        )
        return found
    if highest is None:
        found.append(
            Finding(
                "fail",
                "setting",
                subject,
                "CDC has recorded no LSN in this database yet (the capture job runs in SQL Server Agent)",
                fix="start SQL Server Agent (its capture job reads the log)",
            )
        )
    found.append(
        Finding("ok", "object", subject, f"capture instance '{instance}' records {', '.join(captured)}")
    )
    return found
