"""The pure side of ``dpone doctor`` on SQL Server: catalog rows in, findings out, and every fix a
T-SQL statement SQL Server reads (sqlglot's tsql parser; the forms it cannot read are listed,
each with an example kept failing so a closed gap is noticed)."""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp

from airflow_provider_dpone.contracts.doctor import Finding
from airflow_provider_dpone.contracts.strategies import Strategy
from airflow_provider_dpone.sql import mssql_doctor as md
from tests.sql.tsql import check_tsql

pytestmark = pytest.mark.unit

# (server row as SERVER answers it)
ROW = ("16.0.4135.4", "Developer Edition (64-bit)", 3, "dwh", "loader_login", "loader", 0, 0, 1, 0,
       "READ_WRITE", 1, 0, None)  # fmt: skip
SERVER = md.Server.of(ROW)
# Statements sqlglot 30 reads only as a raw Command: (pattern a fix must match in full, example)
COMMAND_FORMS = [
    (r"GRANT [A-Z ,]+ ON SCHEMA::\[[^\]]*(?:\]\][^\]]*)*\] TO \[.+\]", "GRANT ALTER ON SCHEMA::[s] TO [u]"),
    (r"GRANT (CREATE TABLE|CREATE SCHEMA) TO \[.+\]", "GRANT CREATE TABLE TO [u]"),
    (r"ALTER AUTHORIZATION ON SCHEMA::\[.+\] TO \[.+\]", "ALTER AUTHORIZATION ON SCHEMA::[s] TO [u]"),
    (r"ALTER DATABASE \[.+\] SET .+", "ALTER DATABASE [d] SET ALLOW_SNAPSHOT_ISOLATION ON"),
    (r"ALTER TABLE \[.+\]\.\[.+\] ENABLE CHANGE_TRACKING", "ALTER TABLE [s].[t] ENABLE CHANGE_TRACKING"),
    (r"ALTER ROLE \[.+\] ADD MEMBER \[.+\]", "ALTER ROLE [r] ADD MEMBER [u]"),
]


def statements(fix: str) -> list[str]:
    return [s.strip() for s in fix.split("; ")]


def assert_tsql(fix: str) -> None:
    """Each statement of ``fix`` parses as T-SQL: a real parse tree, or a raw Command of a
    known form (brackets balanced)."""
    for sql in statements(fix):
        tree = sqlglot.parse_one(sql, dialect="tsql")
        if isinstance(tree, exp.Command):
            assert any(re.fullmatch(p, sql) for p, _ in COMMAND_FORMS), f"not a known form: {sql}"
            bare = re.sub(r"\[(?:[^\]]|\]\])*\]", "", re.sub(r"N?'(?:[^']|'')*'", "", sql))
            assert "[" not in bare and "]" not in bare and "'" not in bare, f"unbalanced: {sql}"


def test_the_forms_sqlglot_cannot_read_are_still_beyond_it() -> None:
    for pattern, example in COMMAND_FORMS:
        assert re.fullmatch(pattern, example)
        assert isinstance(sqlglot.parse_one(example, dialect="tsql"), exp.Command), f"{example} parses now"


def test_the_catalog_queries_read_as_tsql() -> None:
    for sql in (md.SERVER, md.SCHEMA, md.TABLE, md.COLUMN, md.CDC_ROLE):
        assert check_tsql(sql) is None
    assert md.SCHEMA.count("?") == 1 and md.TABLE.count("?") == 1


def test_the_server_row_and_the_version_check() -> None:
    assert (SERVER.major, SERVER.user, SERVER.create_table, SERVER.create_schema) == (
        16,
        "loader",
        True,
        False,
    )
    found = md.server_findings("dwh", SERVER, 0.25)
    assert [(f.status, f.check) for f in found] == [
        ("ok", "reachable"),
        ("ok", "authenticated"),
        ("info", "version"),
    ]
    assert found[0].seconds == 0.25 and "login loader_login, user loader" in found[1].message
    assert "snapshot isolation on, Change Tracking off, CDC off" in found[2].message
    old = md.Server.of(("12.0.6024.0", "Standard Edition", 2, *ROW[3:]))
    assert md.server_findings("dwh", old, 0.1)[-1].status == "fail"
    azure = md.Server.of(("12.0.2000.8", "SQL Azure", 5, *ROW[3:]))  # Azure SQL Database says 12.x
    assert all(f.status != "fail" for f in md.server_findings("dwh", azure, 0.1))
    owner = md.Server.of((*ROW[:7], 1, *ROW[8:]))
    assert owner.role == " (db_owner)"
    secondary = md.Server.of((*ROW[:10], "READ_ONLY", *ROW[11:]))
    assert secondary.read_only and md.read_only("p.a sink", secondary, "the connection").status == "fail"


@pytest.mark.parametrize(
    ("strategy", "deletes", "needed"),
    [
        (Strategy.INCREMENTAL_APPEND, "none", {"SELECT", "INSERT"}),  # the finalize's lock reads the target
        (Strategy.INCREMENTAL_MERGE, "none", {"SELECT", "INSERT", "UPDATE"}),
        (Strategy.INCREMENTAL_MERGE, "hard", {"SELECT", "INSERT", "UPDATE", "DELETE"}),
        (Strategy.REPLACE, "none", {"SELECT", "INSERT", "DELETE"}),
        (Strategy.FULL_REFRESH, "none", {"SELECT", "INSERT"}),
        (Strategy.SCD2, "soft", {"SELECT", "INSERT", "UPDATE"}),
        (Strategy.CDC_APPLY, "none", {"SELECT", "INSERT", "UPDATE", "DELETE"}),
        (Strategy.CDC_APPLY, "soft", {"SELECT", "INSERT", "UPDATE"}),  # deletes set the marker
    ],
)
def test_the_privileges_of_each_strategy_on_an_existing_target(
    strategy: Strategy, deletes: str, needed: set[str]
) -> None:
    assert md.target_dml(strategy, deletes) == needed


def test_a_missing_schema_needs_create_schema_and_create_table() -> None:
    [fail] = md.missing_schema_findings("p.a sink", "dpone_staging", SERVER, "staging tables")
    assert fail.status == "fail" and "lacks CREATE SCHEMA" in fail.message
    assert fail.fix == "GRANT CREATE SCHEMA TO [loader]"
    full = md.Server.of((*ROW[:9], 1, *ROW[10:]))
    [ok] = md.missing_schema_findings("p.a sink", "dpone_staging", full, "staging tables")
    assert ok.status == "ok" and "the first run creates it" in ok.message


def test_a_schema_someone_else_owns_needs_its_grants_for_the_tables_created_in_it() -> None:
    access = md.SchemaAccess.of(("dbo", 1, 0, 0, 0, 0, 0))  # ALTER only: creates, cannot fill
    [fail] = md.schema_findings(
        "p.a sink", "dpone_staging", access, SERVER, creates=True, needs=md.STAGING_DML, what="staging tables"
    )
    assert fail.status == "fail" and "owned by dbo" in fail.message
    assert fail.fix == "GRANT SELECT, INSERT, DELETE ON SCHEMA::[dpone_staging] TO [loader]"
    owned = md.SchemaAccess.of(("loader", 1, 1, 1, 1, 1, 1))
    [ok] = md.schema_findings(
        "p.a sink", "dpone_staging", owned, SERVER, creates=True, needs=md.STAGING_DML, what="x"
    )
    assert ok.status == "ok" and ok.message.startswith("ALTER, SELECT, INSERT, DELETE on schema")


def test_moving_staging_into_the_target_schema_needs_control() -> None:
    access = md.SchemaAccess.of(("dbo", 1, 0, 1, 1, 0, 1))
    [fail] = md.schema_findings("p.a sink", "stg", access, SERVER, creates=True, control=True, what="staging")
    assert (
        fail.fix
        == "ALTER AUTHORIZATION ON SCHEMA::[stg] TO [loader]; GRANT CONTROL ON SCHEMA::[stg] TO [loader]"
    )


def test_creating_tables_needs_create_table_in_the_database() -> None:
    no_create = md.Server.of((*ROW[:8], 0, *ROW[9:]))
    owned = md.SchemaAccess.of(("loader", 1, 1, 1, 1, 1, 1))
    [fail, ok] = md.schema_findings("p.a sink", "raw", owned, no_create, creates=True, what="the target")
    assert (fail.status, fail.fix, ok.status) == ("fail", "GRANT CREATE TABLE TO [loader]", "ok")


def test_a_table_gets_the_grant_it_lacks_with_names_quoted() -> None:
    odd = md.Server.of((*ROW[:5], "o]dd user", *ROW[6:]))
    access = md.TableAccess.of(("U", 1, 0, 1, 0, 0, 0, 0, 0, 0))
    [fail] = md.table_findings("p.a sink", "raw.it's", "[raw].[it's]", access, frozenset({"SELECT", "INSERT", "DELETE"}), odd)  # fmt: skip
    assert fail.message == "no INSERT, DELETE on raw.it's"
    assert fail.fix == "GRANT INSERT, DELETE ON [raw].[it's] TO [o]]dd user]"
    [ok] = md.table_findings("p.a sink", "raw.a", "[raw].[a]", access, frozenset({"SELECT"}), SERVER)
    assert ok.status == "ok"
    assert md.schema_change_finding("p.a sink", "raw.a", "[raw].[a]", access, SERVER).status == "warn"  # type: ignore[union-attr]


def test_change_tracking_needs_the_database_the_table_and_view_change_tracking() -> None:
    no_snapshot = md.Server.of((*ROW[:11], 0, 0, None))
    access = md.TableAccess.of(("U", 1, 0, 0, 0, 0, 0, 0, 0, 0))
    found = md.change_tracking_findings("p.a source", "src.t", "[src].[t]", access, no_snapshot)
    assert [f.fix for f in found if f.status == "fail"] == [
        "ALTER DATABASE [dwh] SET ALLOW_SNAPSHOT_ISOLATION ON",
        "ALTER DATABASE [dwh] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)",
        "ALTER TABLE [src].[t] ENABLE CHANGE_TRACKING",
        "GRANT VIEW CHANGE TRACKING ON [src].[t] TO [loader]",
    ]
    ready = md.Server.of((*ROW[:13], 42))
    tracked = md.TableAccess.of(("U", 1, 0, 0, 0, 0, 0, 1, 1, 0))
    assert all(
        f.status == "ok" for f in md.change_tracking_findings("s", "src.t", "[src].[t]", tracked, ready)
    )


def test_cdc_needs_the_database_a_readable_capture_instance_and_its_gating_role() -> None:
    off = md.cdc_findings("p.a source", "src.t", "src_t", SERVER, [], None, None)
    assert [f.fix for f in off if f.status == "fail"] == ["EXEC sys.sp_cdc_enable_db"]
    on = md.Server.of((*ROW[:12], 1, None))
    unreadable = md.cdc_findings("s", "src.t", "src_t", on, [], ("0x00000000000000000000", "0x1A"), None)
    assert unreadable[-1].status == "fail" and "@capture_instance = N'src_t'" in (unreadable[-1].fix or "")
    gated = md.cdc_findings("s", "src.t", "src_t", on, ["id"], ("0x0A", "0x1A"), ("cdc_readers", 0))
    assert gated[-1].fix == "ALTER ROLE [cdc_readers] ADD MEMBER [loader]"
    ready = md.cdc_findings("s", "src.t", "src_t", on, ["id", "name"], ("0x0A", "0x1A"), ("cdc_readers", 1))
    assert ready[-1].status == "ok" and "records id, name" in ready[-1].message
    no_agent = md.cdc_findings("s", "src.t", "src_t", on, ["id"], ("0x0A", None), (None, None))
    assert "SQL Server Agent" in no_agent[1].message


def test_every_fix_is_tsql() -> None:
    owner = md.SchemaAccess.of(("dbo", 0, 0, 0, 0, 0, 0))
    none = md.TableAccess.of(("U", 0, 0, 0, 0, 0, 0, 0, 0, 0))
    odd = md.Server.of((*ROW[:3], "d]w h", ROW[4], "lo]ader", 0, 0, 0, 0, "READ_ONLY", 0, 1, None))
    found: list[Finding] = [
        *md.missing_schema_findings("s", "st]g", odd, "x"),
        *md.schema_findings(
            "s", "st]g", owner, odd, creates=True, needs=md.STATE_DML, control=True, what="x"
        ),
        *md.table_findings("s", "a", "[r]]x].[a b]", none, frozenset(md.TABLE_PERMISSIONS), odd),
        *md.change_tracking_findings("s", "src.t", "[src].[t]", none, odd),
        *md.cdc_findings("s", "src.it's", "src_it's", odd, [], None, None),
        *md.cdc_findings("s", "src.t", "i", odd, [], ("0x00", "0x01"), None),
        *md.cdc_findings("s", "src.t", "i", odd, ["id"], ("0x01", "0x02"), ("r]ole", 0)),
        md.schema_change_finding("s", "a", "[r].[a]", none, odd) or Finding("ok", "x", "s", "x"),
    ]
    fixes = [f.fix for f in found if f.fix and f.status in ("fail", "warn")]
    assert len(fixes) >= 12
    for fix in fixes:
        assert fix is not None and fix[:4] in ("GRAN", "ALTE", "EXEC"), fix
        assert_tsql(fix)
