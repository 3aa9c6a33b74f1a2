"""Every strategy the shared planner plans, rendered in T-SQL by the SQL Server dialect: which
statements run, in what order, inside one transaction with the locks first and the state row
last, and never a MERGE. Pure: no server, the steps' answers are made up."""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import (
    BadInputError,
    DuplicateKeyError,
    MassDeleteError,
    NullKeyError,
    StagingMismatchError,
    UnsupportedError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.finalize import FinalizeJob, Leaf, TargetFacts, lock_steps, plan_finalize
from airflow_provider_dpone.sql.finalize_result import finalize_result
from airflow_provider_dpone.sql.mssql import MSSQL as d
from airflow_provider_dpone.sql.mssql import NOW
from airflow_provider_dpone.sql.mssql_extract import decode_json_columns
from airflow_provider_dpone.sql.mssql_partitions import IndexDef, indexes_from_catalog, partition_leaves
from airflow_provider_dpone.sql.steps import Outcome, Step, render, run_steps

pytestmark = pytest.mark.unit

SCHEMA = TableSchema(
    (
        Column("id", CanonicalType.INT64, nullable=False),
        Column("name", CanonicalType.STRING),
        Column("day", CanonicalType.DATE, nullable=False),
    ),
    ("id",),
)
EXISTING = TargetFacts(exists=True, primary_key=("id",), unique_keys=frozenset({frozenset({"id"})}))
NEW = TargetFacts(exists=False, primary_key=("id",))
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}
STATE = ("upsert state", ("p", "items", '{"kind": "cursor"}', "run-1"))


def job(
    sink: dict[str, Any], extras: dict[str, Any] | None = None, *, staged: int | None = 10
) -> FinalizeJob:
    # The manifest names postgres connectors: the planner reads only the sink spec.
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", **sink},
        **(extras or {}),
    }
    load = parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]
    return FinalizeJob(
        key="p.items",
        load=load,
        target=d.parse_table("raw.items"),
        staging=d.table("dpone_staging", "items__abc"),
        schema=SCHEMA,
        staged_rows=staged,
    )


def finalize(j: FinalizeJob, facts: TargetFacts, extra: tuple = (STATE,)) -> list[Step]:
    """The whole finalize as the sink runs it: transaction, locks, plan, state, commit."""
    return d.transaction(lock_steps(d, j, facts.exists) + plan_finalize(d, j, facts), list(extra))


# statement kinds, first match wins
KINDS = [
    ("begin", r"^set xact_abort on; set lock_timeout \d+; begin transaction;"),
    ("applock", r"sp_getapplock @Resource = \?, @LockMode = N'Exclusive', @LockOwner = N'Transaction'"),
    ("lock", r"^select top \(1\) 1 from .* with \((tablockx, holdlock|repeatableread)\)$"),
    ("commit", r"^commit transaction;"),
    ("state", r"^upsert state$"),
    ("journal", r"^declare @pipeline.*\nif @@rowcount = 0 insert into \[dpone_staging\]\.\[dpone_journal\]"),
    ("null_keys", r"as \[dpone_json_sample\]$"),
    ("duplicates", r"^select top \(5\) .* having count_big\(\*\) > 1"),
    ("missing", r"^select \(select count_big\(\*\) from \[raw\]\.\[items\] as t where"),
    ("outside", r"^select count_big\(\*\) from .* where case when"),
    ("per_leaf", r"^select count_big\(\*\), count_big\(case when"),
    ("stats", r"^(if not exists .* )?(create|update) statistics"),
    ("schema", r"^if schema_id\("),
    ("create", r"^create table"),
    ("add_column", r"^if col_length\("),
    ("add_pk", r"^alter table .* add constraint .* primary key"),
    ("drop", r"^drop table if exists"),
    ("transfer", r"^alter schema \[raw\] transfer"),
    ("rename", r"^exec sp_rename"),
    ("drop_label", r"sp_dropextendedproperty"),
    ("truncate_partition", r"^truncate table .* with \(partitions"),
    ("truncate", r"^truncate table"),
    ("select_into", r"^select top \(0\) \* into"),
    ("index", r"^create (unique )?(clustered|nonclustered) index"),
    ("check", r"^alter table .* with check add constraint"),
    ("switch", r"^alter table .* switch to"),
    ("keep_last", r"^with dpone_d as .* delete from dpone_d"),
    ("update", r"^update t set"),
    ("insert", r"^insert into"),
    ("delete", r"^delete "),
]


def kind(sql: str) -> str:
    for name, pattern in KINDS:
        if re.search(pattern, sql, re.DOTALL):
            return name
    raise AssertionError(f"unclassified statement: {sql}")


def kinds(steps: list[Step]) -> list[str]:
    return [kind(s.sql) for s in steps]


def assert_transaction_shape(steps: list[Step], target_exists: bool = True) -> None:
    """Begin first, the finalize lock next (then the table lock), the state row inside, commit last."""
    names = kinds(steps)
    assert names[0] == "begin" and names[1] == "applock" and names[-1] == "commit"
    assert steps[1].params == ("dpone:raw.items",)
    assert (names[2] == "lock") is target_exists
    assert names[-2] == "state" and steps[-2].params == STATE[1]
    assert names.count("begin") == 1 and names.count("commit") == 1
    for step in steps:
        assert not re.search(r"\bmerge\b", step.sql, re.IGNORECASE), step.sql


class Answers:
    """Answers each step by the first matching statement kind; records what ran."""

    def __init__(self, **answers: Outcome) -> None:
        self.answers: dict[str, Outcome] = answers
        self.ran: list[str] = []

    def __call__(self, step: Step) -> Outcome:
        self.ran.append(step.sql)
        name = kind(step.sql)
        if name in self.answers:
            return self.answers[name]
        if name in ("null_keys", "missing", "outside"):
            return Outcome(1, [(0, 0)])
        if name in ("duplicates", "lock"):
            return Outcome(0, [])
        return Outcome(0, None)


# --- full_refresh --------------------------------------------------------------------------------


def test_full_refresh_swaps_staging_in_with_sp_rename_inside_the_transaction() -> None:
    steps = finalize(job({"strategy": "full_refresh"}), TargetFacts(exists=True, swappable=True))
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == [
        "lock", "add_pk", "drop", "transfer", "rename", "rename", "drop_label", "stats",
    ]  # fmt: skip
    assert "with (tablockx, holdlock)" in steps[2].sql
    sql = [s.sql for s in steps]
    assert "exec sp_rename N'[raw].[items__abc]', N'items', N'OBJECT'" in sql
    assert "exec sp_rename N'[raw].[items__abc_pk]', N'items_pkey', N'OBJECT'" in sql
    first = finalize(job({"strategy": "full_refresh"}), TargetFacts(exists=False))
    assert_transaction_shape(first, target_exists=False)
    assert kinds(first)[2:4] == ["add_pk", "schema"]


def test_full_refresh_of_a_target_that_cannot_be_swapped_truncates_and_inserts() -> None:
    steps = finalize(
        job({"strategy": "full_refresh"}), TargetFacts(exists=True, swappable=False, partitioned=True)
    )
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == ["lock", "truncate", "insert"]
    assert steps[4].sql == (
        "insert into [raw].[items] ([id], [name], [day]) select [id], [name], [day] from [dpone_staging].[items__abc]"
    )


# --- append and merge ----------------------------------------------------------------------------------


def test_append_skips_keys_already_there_and_keys_staged_twice() -> None:
    steps = finalize(job({"strategy": "incremental_append"}), EXISTING)
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == ["lock", "insert"]
    assert "with (repeatableread)" in steps[2].sql
    insert = steps[3].sql
    assert "row_number() over (partition by [id] order by [dpone_load_seq]) as dpone_rn" in insert
    assert (
        "not exists (select 1 from [raw].[items] as t with (updlock, serializable) where t.[id] = s.[id])"
        in insert
    )
    keyless = finalize(job({"strategy": "incremental_append"}), TargetFacts(exists=True))
    assert "not exists" not in keyless[3].sql and keyless[3].name == "inserted"


def test_an_append_with_a_unique_key_guards_it_and_skips_the_keys_the_target_holds() -> None:
    steps = finalize(job({"strategy": "incremental_append", "unique_key": ["id"]}), TargetFacts(exists=True))
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == ["lock", "null_keys", "duplicates", "stats", "insert"]
    insert = steps[-3]
    assert insert.name == "inserted" and (
        "where not exists (select 1 from [raw].[items] as t with (updlock, serializable) where t.[id] = s.[id])"
        in insert.sql
    )


def test_merge_is_update_join_then_insert_not_exists_never_merge() -> None:
    steps = finalize(job(MERGE), EXISTING)
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == ["lock", "null_keys", "duplicates", "stats", "update", "insert"]
    update, insert = steps[6], steps[7]
    assert update.name == "updated" and update.sql == (
        "update t set [name] = s.[name], [day] = s.[day] from [raw].[items] as t with (updlock, serializable) "
        "join [dpone_staging].[items__abc] as s on t.[id] = s.[id]"
    )
    assert insert.name == "inserted" and insert.when is not None  # skipped when every staged key matched
    assert "where not exists (select 1 from [raw].[items] as t with (updlock, serializable)" in insert.sql
    lines = render(steps)
    assert "-- fails on a NULL in a unique_key column" in lines


def test_merge_into_a_new_target_creates_it_and_inserts() -> None:
    steps = finalize(job(MERGE), NEW)
    assert_transaction_shape(steps, target_exists=False)
    assert kinds(steps)[2:-2] == ["schema", "create", "null_keys", "duplicates", "insert"]
    assert "constraint [items_pkey] primary key ([id]) with (fillfactor = 90)" in steps[3].sql
    assert "not exists" not in steps[6].sql


def test_guards_fail_before_any_write_with_the_decoded_sample() -> None:
    steps = finalize(job(MERGE), EXISTING)
    sample = decode_json_columns(["dpone_nulls", "dpone_json_sample"], [(2, '[{"id":null}]')])
    nulls = Answers(null_keys=Outcome(1, sample))
    with pytest.raises(NullKeyError, match=r"2 staged row\(s\).*\{'id': None\}"):
        run_steps(steps, nulls)
    assert [kind(s) for s in nulls.ran] == ["begin", "applock", "lock", "null_keys"]
    dupes = Answers(duplicates=Outcome(1, [(5, 2)]))
    with pytest.raises(DuplicateKeyError, match="keep_last"):
        run_steps(steps, dupes)
    assert not any(kind(s) in ("update", "insert", "delete", "commit") for s in dupes.ran)


def test_keep_last_deletes_by_load_order_only_when_there_are_duplicates() -> None:
    steps = finalize(job({**MERGE, "on_duplicate_keys": "keep_last"}), EXISTING)
    keep = next(s for s in steps if s.name == "duplicates_removed")
    assert keep.sql == (
        "with dpone_d as (select row_number() over (partition by [id] order by [dpone_load_seq] desc) as dpone_rn "
        "from [dpone_staging].[items__abc]) delete from dpone_d where dpone_rn > 1"
    )
    clean = Answers()
    run_steps(steps, clean)
    assert keep.sql not in clean.ran and kind(clean.ran[-1]) == "commit"
    dupes = Answers(duplicates=Outcome(1, [(5, 2)]))
    run_steps(steps, dupes)
    assert keep.sql in dupes.ran


def test_hard_deletes_count_first_then_delete_last() -> None:
    rec = {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.1}}
    steps = finalize(job(MERGE, rec), EXISTING)
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == [
        "lock",
        "null_keys",
        "duplicates",
        "missing",
        "stats",
        "update",
        "insert",
        "delete",
    ]
    assert steps[-3].sql == (
        "delete t from [raw].[items] as t where not exists "
        "(select 1 from [dpone_staging].[items__abc] as s where t.[id] = s.[id])"
    )
    answers = Answers(missing=Outcome(1, [(50, 100)]))
    with pytest.raises(MassDeleteError, match="50 of 100"):
        run_steps(steps, answers)
    assert not any(kind(s) in ("update", "insert", "delete") for s in answers.ran)


def test_soft_deletes_mark_with_the_finalize_time_and_undelete_rows_that_return() -> None:
    rec = {"reconciliation": {"deletes": "soft"}}
    steps = finalize(job(MERGE, rec), EXISTING)
    assert kinds(steps)[2:4] == ["lock", "add_column"]
    assert "add [_dpone_deleted_at] datetimeoffset(7) null" in steps[3].sql
    update = next(s.sql for s in steps if s.name == "updated")
    assert "[_dpone_deleted_at] = null" in update
    close = next(s.sql for s in steps if s.name == "deleted")
    assert close.startswith(
        f"update t set [_dpone_deleted_at] = {NOW} from [raw].[items] as t where t.[_dpone_deleted_at] is null"
    )
    missing = next(s.sql for s in steps if kind(s.sql) == "missing")
    assert "where t.[_dpone_deleted_at] is null and not exists" in missing


def test_snapshot_diff_updates_only_rows_whose_values_changed() -> None:
    steps = finalize(
        job({"strategy": "snapshot_diff", "unique_key": ["id"]}, {"reconciliation": {"deletes": "hard"}}),
        EXISTING,
    )
    assert_transaction_shape(steps)
    update = next(s.sql for s in steps if s.name == "updated")
    assert update.endswith("where exists (select t.[name], t.[day] except select s.[name], s.[day])")
    insert = next(s for s in steps if s.name == "inserted")
    assert insert.when is None  # with deletes, the insert always runs
    assert kinds(steps)[-3] == "delete"


def test_scd2_closes_changed_versions_and_opens_new_ones_at_one_instant() -> None:
    steps = finalize(
        job({"strategy": "scd2", "unique_key": ["id"]}, {"reconciliation": {"deletes": "hard"}}), EXISTING
    )
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == [
        "lock", "add_column", "add_column", "add_column", "add_column",
        "null_keys", "duplicates", "missing", "stats", "update", "insert", "update",
    ]  # fmt: skip
    closed = next(s.sql for s in steps if s.name == "closed")
    assert closed.startswith(f"update t set [valid_to] = {NOW}, [is_current] = 0 from [raw].[items] as t")
    assert "where t.[is_current] = 1 and t.[row_hash] <> convert(char(64), hashbytes('SHA2_256'," in closed
    opened = next(s.sql for s in steps if s.name == "inserted")
    assert f"select s.[id], s.[name], s.[day], {NOW}, null, 1, convert(char(64)" in opened
    assert "for json path, include_null_values, without_array_wrapper" in opened
    gone = next(s.sql for s in steps if s.name == "deleted")
    assert gone.startswith(f"update t set [valid_to] = {NOW}, [is_current] = 0 from [raw].[items] as t")
    assert "where t.[is_current] = 1 and not exists" in gone
    begin = steps[0].sql
    assert "exec sys.sp_set_session_context @key = N'dpone.finalize_at', @value = @dpone_now" in begin


# --- replace and partition_replace -------------------------------------------------------------------


def test_replace_deletes_the_window_and_inserts_the_batch() -> None:
    window = {"replace": {"window": {"column": "day", "start": "2026-01-01", "end": "2026-01-02"}}}
    steps = finalize(job({"strategy": "replace", **window}), EXISTING)
    assert_transaction_shape(steps)
    assert kinds(steps)[2:-2] == ["lock", "outside", "delete", "insert"]
    predicate = "[day] >= cast(? as date) and [day] < cast(? as date)"
    assert steps[3].sql.endswith(f"where case when {predicate} then 0 else 1 end = 1")
    assert steps[4].sql == f"delete from [raw].[items] where {predicate}"
    assert steps[3].params == steps[4].params == ("2026-01-01", "2026-01-02")
    with pytest.raises(StagingMismatchError):
        run_steps(steps, Answers(outside=Outcome(1, [(3,)])))
    where = finalize(job({"strategy": "replace", "replace": {"where": "region = 'eu'"}}), EXISTING)
    assert where[4].sql == "delete from [raw].[items] where (region = 'eu')"


def test_partition_replace_on_a_plain_table_deletes_touched_values() -> None:
    steps = finalize(job({"strategy": "partition_replace", "partition_by": ["day"]}), EXISTING)
    assert kinds(steps)[2:-2] == ["lock", "delete", "insert"]
    assert steps[3].sql == (
        "delete t from [raw].[items] as t where exists (select 1 from [dpone_staging].[items__abc] as s "
        "where (t.[day] = s.[day] or (t.[day] is null and s.[day] is null)))"
    )


def partitioned() -> TargetFacts:
    parent = d.parse_table("raw.items")
    rows = [
        (1, "FG2025", 1, None, "2026-01-01"),
        (2, "FG2026", 1, "2026-01-01", "2027-01-01"),
        (3, "FG2027", 1, "2027-01-01", None),
    ]
    index_rows = [
        (1, "pk_items", 1, True, True, None, "id", 1, False, False),
        (1, "pk_items", 1, True, True, None, "day", 2, False, False),
        (2, "ix_name", 2, False, False, "([name] IS NOT NULL)", "name", 1, True, False),
        (2, "ix_name", 2, False, False, "([name] IS NOT NULL)", "id", 0, False, True),
    ]
    indexes = indexes_from_catalog(index_rows)
    day = Column("day", CanonicalType.DATE, nullable=False, native_type="date", dialect="mssql")
    leaves = partition_leaves(d, parent, day, "date", [(*r, "day") for r in rows], indexes)
    return TargetFacts(exists=True, primary_key=("id", "day"), partitioned=True, leaves=leaves)


def test_partitions_come_from_the_catalog_with_their_ranges() -> None:
    facts = partitioned()
    assert [leaf.constraint for leaf in facts.leaves] == [
        "[day] < cast(N'2026-01-01' as date)",
        "[day] >= cast(N'2026-01-01' as date) and [day] < cast(N'2027-01-01' as date)",
        "[day] >= cast(N'2027-01-01' as date)",
    ]
    assert [str(leaf.table) for leaf in facts.leaves][1] == "raw.items partition 2"
    assert facts.leaves[0].table.indexes[1] == IndexDef(  # type: ignore[attr-defined]
        "ix_name", False, False, False, (("name", True),), ("id",), "([name] IS NOT NULL)"
    )
    nullable = Column("day", CanonicalType.DATE, nullable=True)
    loose = partition_leaves(d, d.parse_table("raw.items"), nullable, "date", [(1, "PRIMARY", 0, None, "1", "d"),
                             (2, "PRIMARY", 0, "1", None, "d")], ())  # fmt: skip
    assert loose[0].constraint == "([day] <= cast(N'1' as date) or [day] is null)"
    assert loose[1].constraint == "[day] > cast(N'1' as date) and [day] is not null"
    with pytest.raises(UnsupportedError, match="not a rowstore B-tree"):
        indexes_from_catalog([(1, "cci", 5, False, False, None, "id", 0, False, False)])


def test_partition_replace_rebuilds_touched_partitions_and_switches_them_in() -> None:
    facts = partitioned()
    j = job({"strategy": "partition_replace", "partition_by": ["day"]})
    steps = finalize(j, facts)
    assert_transaction_shape(steps)
    per_partition = [
        "drop",
        "select_into",
        "add_pk",
        "index",
        "check",
        "insert",
        "truncate_partition",
        "switch",
        "drop",
    ]
    assert kinds(steps)[2:-2] == ["lock", "per_leaf", *per_partition * 3]
    second = steps[4 + len(per_partition) : 4 + 2 * len(per_partition)]
    sql = [s.sql for s in second]
    assert sql[1] == "select top (0) * into [raw].[p2_items__dpone_new] on [FG2026] from [raw].[items]"
    assert sql[2] == (
        "alter table [raw].[p2_items__dpone_new] add constraint [p2_items__dpone_new_pk] "
        "primary key clustered ([id], [day]) on [FG2026]"
    )
    assert sql[3] == (
        "create nonclustered index [dpone_ix1] on [raw].[p2_items__dpone_new] ([name] desc) include ([id]) "
        "where ([name] IS NOT NULL) on [FG2026]"
    )
    assert sql[4].endswith(
        "check ([day] >= cast(N'2026-01-01' as date) and [day] < cast(N'2027-01-01' as date))"
    )
    assert sql[5].endswith(
        "where [day] >= cast(N'2026-01-01' as date) and [day] < cast(N'2027-01-01' as date)"
    )
    assert sql[6:] == [
        "truncate table [raw].[items] with (partitions (2))",
        "alter table [raw].[p2_items__dpone_new] switch to [raw].[items] partition 2",
        "drop table if exists [raw].[p2_items__dpone_new]",
    ]
    answers = Answers(per_leaf=Outcome(1, [(4, 0, 4, 0)]), insert=Outcome(4))
    outcomes = run_steps(steps, answers)
    assert sum(1 for s in answers.ran if kind(s) == "switch") == 1
    assert finalize_result(j, facts, outcomes)["partitions_replaced"] == ["raw.items partition 2"]
    with pytest.raises(StagingMismatchError, match="no partition"):
        run_steps(steps, Answers(per_leaf=Outcome(1, [(5, 0, 4, 0)])))


def test_a_leaf_not_read_from_the_sql_server_catalog_is_refused() -> None:
    parent = d.parse_table("raw.items")
    facts = TargetFacts(
        exists=True, partitioned=True, leaves=(Leaf(d.table("raw", "x"), parent, "1", "1 = 1"),)
    )
    with pytest.raises(UnsupportedError, match="not a partition"):
        plan_finalize(d, job({"strategy": "partition_replace", "partition_by": ["day"]}), facts)


# --- the transaction -----------------------------------------------------------------------------


def test_the_journal_row_commits_with_the_data_and_a_failure_rolls_back() -> None:
    journal = d.table("dpone_staging", "dpone_journal")
    row = (d.upsert_journal(journal), ("p", "items", "run-1", None, '{"kind": "cursor"}'))
    steps = d.transaction(lock_steps(d, job(MERGE), True) + plan_finalize(d, job(MERGE), EXISTING), [row])
    assert steps[-2].sql == row[0] and steps[-2].params == row[1] and steps[-2].note
    assert kinds(steps)[-3:] == ["insert", "journal", "commit"]
    assert d.rollback_finalize().startswith("if @@trancount > 0 rollback transaction;")
    assert "set lock_timeout 600000" in steps[0].sql and "@LockTimeout = 600000" in steps[1].sql
    assert "throw 50001" in steps[1].sql


def test_cdc_apply_with_soft_deletes_marks_the_feeds_and_the_snapshots_deletes() -> None:
    feed = {
        "connector": "mssql",
        "conn_id": "src",
        "table": "items",
        "incremental": {"mode": "change_tracking"},
    }
    soft = job(
        {"strategy": "cdc_apply", "unique_key": ["id"]},
        {"source": feed, "reconciliation": {"deletes": "soft"}},
    )
    facts = TargetFacts(exists=True, primary_key=("id",), unique_keys=frozenset({frozenset({"id"})}))
    steps = {s.name: s.sql for s in plan_finalize(d, soft, facts) if s.name}
    for name in ("deleted", "deleted_by_snapshot"):
        assert steps[name].startswith("update t set [_dpone_deleted_at] = coalesce(cast(session_context(")
        assert "from [raw].[items] as t where t.[_dpone_deleted_at] is null and " in steps[name]
        assert "delete from [raw].[items]" not in steps[name]


def test_a_key_column_moved_by_schema_evolution_is_refused() -> None:
    import dataclasses

    moved = dataclasses.replace(job(MERGE), mapping={"id": "id__string"})
    with pytest.raises(BadInputError, match=r"key column\(s\) \['id'\] changed type"):
        plan_finalize(d, moved, EXISTING)
    keyed_append = dataclasses.replace(
        job({"strategy": "incremental_append", "unique_key": ["id"]}), mapping={"id": "id__string"}
    )
    with pytest.raises(BadInputError, match="on_type_change: new_column"):
        plan_finalize(d, keyed_append, EXISTING)
