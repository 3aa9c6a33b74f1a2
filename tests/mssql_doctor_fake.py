"""A SQL Server catalog for ``dpone doctor``'s tests, as the ``answer`` of ``tests/mssql_fake``'s
driver fake: no SQL Server can run here. It answers the doctor's catalog queries and runs its
probes by SQL Server's documented rules, not by dpone's reading of them:

- effective permissions (HAS_PERMS_BY_NAME): granted on the object or its schema, or implied by
  CONTROL, by owning the schema (objects belong to their schema's owner), by db_owner/sysadmin;
- metadata visibility: a table the user has no permission on is not found (OBJECT_ID is NULL);
  sys.schemas is visible to everyone;
- CREATE TABLE needs the database permission and ALTER on the schema; CREATE SCHEMA the database
  permission (the creator owns the new schema); INSERT/SELECT/DELETE on a new table come from
  its schema; sp_rename and extended properties need ALTER; DROP TABLE ALTER on the schema;
  ALTER SCHEMA ... TRANSFER CONTROL on the moved table and ALTER on the schema it moves to;
- DDL is transactional: what a probe creates lives in its transaction, gone at the rollback;
- errors carry SQL Server's messages (229, 262, 2760, 15151), as mssql-python raises them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import mssql_python

from airflow_provider_dpone.sql import mssql_catalog as catalog
from airflow_provider_dpone.sql import mssql_doctor as md
from airflow_provider_dpone.sql.mssql_changes import LSN_ZERO, MsSqlChanges
from airflow_provider_dpone.sql.mssql_doctor import dialect

CHANGES = MsSqlChanges(dialect)
MAX_LSN = "0x0000002A000001F00003"
_NAME = r"\[((?:[^\]]|\]\])+)\]"


def _unquote(text: str) -> str:
    return text.replace("]]", "]")


def denied(message: str) -> mssql_python.ProgrammingError:
    """A permission error as mssql-python raises it (its DDBC part holds the server's message)."""
    return mssql_python.ProgrammingError(
        "Syntax error or access violation", f"[Microsoft][ODBC Driver 18 for SQL Server][SQL Server]{message}"
    )


@dataclass
class Schema:
    owner: str = "dbo"
    grants: set[str] = field(default_factory=set)


@dataclass
class Table:
    grants: set[str] = field(default_factory=set)
    columns: tuple[str, ...] = ("id", "updated_at")
    key: tuple[str, ...] = ("id",)
    kind: str = "U"
    change_tracked: bool = False
    cdc_tracked: bool = False
    blockers: tuple[int, ...] = (0,) * 8  # SWAP_BLOCKERS
    partitioned: bool = False


@dataclass
class Capture:
    table: str  # schema.name
    columns: tuple[str, ...] = ("id", "updated_at")
    role: str | None = None
    lowest: str = "0x0000002A000000100001"


@dataclass
class SqlServer:
    """One database as one user sees it."""

    user: str = "loader"
    login: str = "loader"
    database: str = "dwh"
    version: str = "16.0.4135.4"
    edition: str = "Developer Edition (64-bit)"
    engine_edition: int = 3
    sysadmin: bool = False
    db_owner: bool = False
    db_grants: set[str] = field(default_factory=lambda: {"CREATE TABLE", "CREATE SCHEMA"})
    updateability: str = "READ_WRITE"
    snapshot: int = 1
    cdc: bool = False
    ct_version: int | None = None
    roles: set[str] = field(default_factory=set)
    schemas: dict[str, Schema] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)  # "schema.name"
    captures: dict[str, Capture] = field(default_factory=dict)
    in_transaction: bool = False
    created: dict[str, Table] = field(default_factory=dict)  # this transaction's tables
    created_schemas: dict[str, Schema] = field(default_factory=dict)

    # --- permissions -------------------------------------------------------------------------

    def _schema(self, name: str) -> Schema | None:
        return self.schemas.get(name) or self.created_schemas.get(name)

    def on_schema(self, schema: str, permission: str) -> bool:
        s = self._schema(schema)
        if s is None:
            return False
        if self.db_owner or self.sysadmin or s.owner == self.user or "CONTROL" in s.grants:
            return True
        return permission in s.grants

    def on_table(self, name: str, permission: str) -> bool:
        schema = name.partition(".")[0]
        t = self.tables.get(name) or self.created.get(name)
        own = t.grants if t else set()
        return self.on_schema(schema, permission) or permission in own or "CONTROL" in own

    def visible(self, name: str) -> bool:
        return any(self.on_table(name, p) for p in md.TABLE_PERMISSIONS)

    def _table(self, quoted: str) -> tuple[str, Table | None]:
        ref = re.fullmatch(rf"{_NAME}\.{_NAME}", quoted)
        assert ref, quoted
        name = f"{_unquote(ref[1])}.{_unquote(ref[2])}"
        found = self.tables.get(name) or self.created.get(name)
        return name, found if found is not None and self.visible(name) else None

    # --- the driver's answers ----------------------------------------------------------------

    def __call__(self, sql: str, params: tuple[Any, ...]) -> Any:
        if sql == md.SERVER:
            row = (self.version, self.edition, self.engine_edition, self.database, self.login, self.user,
                   int(self.sysadmin), int(self.db_owner),
                   int(self.db_owner or "CREATE TABLE" in self.db_grants),
                   int(self.db_owner or "CREATE SCHEMA" in self.db_grants),
                   self.updateability, self.snapshot, int(self.cdc), self.ct_version)  # fmt: skip
            return [row], ["v"] * len(row)
        if sql == md.SCHEMA:
            s = self._schema(params[0])
            if s is None:
                return [], ["owner"]
            return [(s.owner, *(int(self.on_schema(params[0], p)) for p in md.SCHEMA_PERMISSIONS))], ["o"] * 7
        if sql == md.TABLE:
            name, t = self._table(params[0])
            if t is None:
                return [], ["type"]
            flags = [int(self.on_table(name, p)) for p in md.TABLE_PERMISSIONS]
            return [(t.kind, *flags, int(t.change_tracked), int(t.cdc_tracked))], ["t"] * 10
        if sql == md.COLUMN:
            _, t = self._table(params[0])
            return [(4 if t and params[1] in t.columns else None,)], ["len"]
        if sql == catalog.INTROSPECT_PRIMARY_KEY:
            _, t = self._table(params[0])
            return [(k,) for k in (t.key if t else ())], ["name"]
        if sql == catalog.SWAP_BLOCKERS:
            _, t = self._table(params[0])
            return [t.blockers if t else (0,) * 8], ["b"] * 8
        if sql == catalog.IS_PARTITIONED:
            _, t = self._table(params[0])
            return [(int(bool(t and t.partitioned)),)], ["p"]
        if sql == CHANGES.cdc_captured_columns():
            c = self.captures.get(params[0])
            return [(n,) for n in (c.columns if c and self._reads_capture(c) else ())], ["column_name"]
        if sql == CHANGES.cdc_positions():
            c = self.captures.get(params[0])
            lowest = c.lowest if c and self._reads_capture(c) else LSN_ZERO
            return [(lowest, MAX_LSN)], ["lo", "hi"]
        if sql == md.CDC_ROLE:
            c = self.captures.get(params[0])
            return ([(c.role, int(c.role in self.roles))] if c else []), ["role_name", "member"]
        return self._statement(sql, params)

    def _reads_capture(self, c: Capture) -> bool:
        """fn_cdc_get_min_lsn answers 0x0... to a caller who may not read the instance."""
        member = c.role is None or c.role in self.roles or self.db_owner or self.sysadmin
        return member and self.on_table(c.table, "SELECT")

    def _need(self, ok: bool, message: str) -> None:
        if not ok:
            raise denied(message)

    def _statement(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The probes: a transaction, DDL and DML in it, read-only queries."""
        text = sql.strip()
        if text == "begin transaction":
            self.in_transaction = True
            return None
        if text.startswith("if @@trancount > 0 rollback transaction"):
            self.in_transaction = False
            self.created.clear()
            self.created_schemas.clear()
            return None
        if text.startswith("set "):
            return None
        if m := re.match(r"if schema_id\(N'((?:[^']|'')+)'\) is null exec", text):
            name = m[1].replace("''", "'")
            if self._schema(name) is None:
                self._need(self.db_owner or "CREATE SCHEMA" in self.db_grants,
                           f"CREATE SCHEMA permission denied in database '{self.database}'.")  # fmt: skip
                assert self.in_transaction, "a schema created outside the probe's transaction"
                self.created_schemas[name] = Schema(owner=self.user)
            return None
        if m := re.match(rf"create table {_NAME}\.{_NAME}", text):
            schema, name = _unquote(m[1]), _unquote(m[2])
            self._need(self.db_owner or "CREATE TABLE" in self.db_grants,
                       f"CREATE TABLE permission denied in database '{self.database}'.")  # fmt: skip
            self._need(self.on_schema(schema, "ALTER"),
                       f'The specified schema name "{schema}" either does not exist or you do not have permission to use it.')  # fmt: skip
            assert self.in_transaction, "a table created outside the probe's transaction"
            self.created[f"{schema}.{name}"] = Table(columns=("id",))
            return None
        for verb, permission in (("insert into", "INSERT"), ("delete from", "DELETE"), ("select count_big(*) from", "SELECT")):  # fmt: skip
            if m := re.match(rf"{re.escape(verb)} {_NAME}\.{_NAME}", text):
                schema, name = _unquote(m[1]), _unquote(m[2])
                self._need(self.on_table(f"{schema}.{name}", permission),
                           f"The {permission} permission was denied on the object '{name}', database '{self.database}', schema '{schema}'.")  # fmt: skip
                return 1 if permission != "SELECT" else ([(0,)], ["n"])
        if m := re.search(r"@level0name = N'((?:[^']|'')+)', @level1type = N'TABLE', @level1name = N'((?:[^']|'')+)'", text):  # fmt: skip
            schema, name = m[1].replace("''", "'"), m[2].replace("''", "'")
            self._need(self.on_table(f"{schema}.{name}", "ALTER"),
                       f"Cannot find the object '{name}', because it does not exist or you do not have permission.")  # fmt: skip
            return None
        if m := re.match(rf"alter schema {_NAME} transfer {_NAME}\.{_NAME}", text):
            to, schema, name = _unquote(m[1]), _unquote(m[2]), _unquote(m[3])
            self._need(self.on_table(f"{schema}.{name}", "CONTROL") and self.on_schema(to, "ALTER"),
                       f"Cannot find the object '{name}', because it does not exist or you do not have permission.")  # fmt: skip
            self.created[f"{to}.{name}"] = self.created.pop(f"{schema}.{name}")
            return None
        if m := re.match(rf"exec sp_rename N'{_NAME}\.{_NAME}', N'((?:[^']|'')+)'", text):
            schema, name, new = _unquote(m[1]), _unquote(m[2]), m[3].replace("''", "'")
            self._need(self.on_table(f"{schema}.{name}", "ALTER"),
                       "Either the parameter @objname is ambiguous or the claimed @objtype (OBJECT) is wrong.")  # fmt: skip
            self.created[f"{schema}.{new}"] = self.created.pop(f"{schema}.{name}")
            return None
        if m := re.match(rf"drop table {_NAME}\.{_NAME}", text):
            schema, name = _unquote(m[1]), _unquote(m[2])
            self._need(self.on_schema(schema, "ALTER") or self.on_table(f"{schema}.{name}", "CONTROL"),
                       f"Cannot drop the table '{schema}.{name}', because it does not exist or you do not have permission.")  # fmt: skip
            self.created.pop(f"{schema}.{name}")
            return None
        if text.startswith("select top (0) * from cdc."):
            c = next(c for i, c in self.captures.items() if f"fn_cdc_get_all_changes_{i}]" in text)
            self._need(self._reads_capture(c),
                       f"The SELECT permission was denied on the object 'fn_cdc_get_all_changes_', database '{self.database}', schema 'cdc'.")  # fmt: skip
            return [], ["id"]
        if text == "exec sp_describe_first_result_set @tsql = ?":  # compiled, not run: its permissions
            text = params[0]
        if text.startswith("select top (0) * from ("):  # a source query: SELECT on every table it names
            for schema, name in re.findall(r"\bfrom (\w+)\.(\w+)", text):
                self._need(self.on_table(f"{schema}.{name}", "SELECT"),
                           f"The SELECT permission was denied on the object '{name}', database '{self.database}', schema '{schema}'.")  # fmt: skip
            return [], ["id"]
        raise AssertionError(f"the SQL Server fake has no answer for: {sql}")
