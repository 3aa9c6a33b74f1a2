"""Every strategy the BigQuery sink supports, planned and rendered in GoogleSQL: read-only
guards first, then DDL (never inside the transaction), then one transaction script holding the
DML and the state row; partition_replace by partition decorators where the target allows it.
Pure: no server, the steps' answers are made up; every statement parsed by sqlglot."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import (
    DuplicateKeyError,
    EmptySourceError,
    MassDeleteError,
    NullKeyError,
    StagingMismatchError,
    UnsupportedError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.schema.planner import ChangeKind, SchemaChange
from airflow_provider_dpone.sql.bigquery import BIGQUERY as d
from airflow_provider_dpone.sql.bigquery import LOAD_SEQ
from airflow_provider_dpone.sql.bigquery_catalog import Partitioning
from airflow_provider_dpone.sql.bigquery_finalize import (
    BigQueryFacts,
    bigquery_result,
    by_decorator,
    plan_bigquery_finalize,
)
from airflow_provider_dpone.sql.finalize import FinalizeJob
from airflow_provider_dpone.sql.steps import Outcome, Step, render, run_steps

from .bigquery_sql import check_bigquery

pytestmark = pytest.mark.unit

SCHEMA = TableSchema(
    (
        Column("id", T.INT64, nullable=False),
        Column("name", T.STRING),
        Column("day", T.DATE, nullable=False),
    ),
    ("id",),
)
COLUMNS = ("id", "name", "day")
EXISTS = BigQueryFacts(exists=True, columns=COLUMNS)
NEW = BigQueryFacts(exists=False)
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}
STATE = (d.upsert_state(d.table("dpone", "state")), ("p", "items", '{"kind": "cursor"}', "run-1"))


def job(
    sink: dict[str, Any],
    extras: dict[str, Any] | None = None,
    *,
    staged: int | None = 10,
    schema: TableSchema = SCHEMA,
    **kw: Any,
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
        target=d.parse_table("my-proj.raw.items"),
        staging=d.table("my-proj.dpone_staging", "items__abc"),
        schema=schema,
        staged_rows=staged,
        **kw,
    )


def plan(j: FinalizeJob, facts: BigQueryFacts, extra: tuple = (STATE,)) -> list[Step]:
    steps = plan_bigquery_finalize(d, j, facts, list(extra))
    for step in steps:
        if not step.sql.startswith("--"):
            check_bigquery(step.sql)
    return steps


def script(steps: list[Step]) -> list[str]:
    """The statements of the one transaction step, without begin/commit."""
    [tx] = [s for s in steps if s.name == "transaction"]
    lines = tx.sql.split(";\n")
    assert lines[0] == "begin transaction" and lines[-1] == "commit transaction;"
    return lines[1:-1]


def assert_shape(steps: list[Step]) -> None:
    """Guards (reads) first, DDL next, the transaction last; no DDL inside it; state inside."""
    order = [
        "read" if s.sql.startswith("select") else "tx" if s.name == "transaction" else "ddl" for s in steps
    ]
    assert order[-1] == "tx" and order.count("tx") == 1
    first_ddl = order.index("ddl") if "ddl" in order else len(order) - 1
    assert all(o == "read" for o in order[: min(first_ddl, order.index("tx"))] if o != "ddl")
    body = script(steps)
    assert not any(s.lstrip().startswith(("create", "alter", "drop")) for s in body), body
    assert body[-1].startswith("merge into `dpone`.`state`") and "'run-1' as run_id" in body[-1]


class Answers:
    """Made-up answers by step name (or statement prefix); records what ran."""

    def __init__(self, **answers: Outcome) -> None:
        self.answers, self.ran = answers, []

    def __call__(self, step: Step) -> Outcome:
        self.ran.append(step.sql)
        if step.name in self.answers:
            return self.answers[step.name]
        if step.sql.startswith("select (select count(*)"):  # null keys / missing keys
            return self.answers.get("pair", Outcome(1, [(0, 0)]))
        if step.sql.startswith("select count(*)") and "(" not in step.sql[15:16]:
            return self.answers.get("count", Outcome(1, [(0,)]))
        return Outcome(0, [])


# --- full refresh and append ---------------------------------------------------------------------------


def test_full_refresh_truncates_and_inserts_in_the_transaction_keeping_the_table():
    steps = plan(job({"strategy": "full_refresh"}), EXISTS)
    assert_shape(steps)
    assert script(steps)[:2] == [
        "truncate table `my-proj`.`raw`.`items`",
        "insert into `my-proj`.`raw`.`items` (`id`, `name`, `day`) select `id`, `name`, `day` "
        "from `my-proj`.`dpone_staging`.`items__abc`",
    ]
    assert [s.name for s in steps] == ["transaction"]


def test_a_missing_target_is_created_before_the_transaction():
    steps = plan(job(MERGE), NEW)
    assert_shape(steps)
    ddl = [s.sql for s in steps if s.sql.startswith("create")]
    assert ddl == [
        "create schema if not exists `my-proj`.`raw`",
        "create table `my-proj`.`raw`.`items` (`id` INT64 not null, `name` STRING, `day` DATE not null) "
        "cluster by `id`",
    ]
    assert script(steps)[0].startswith("insert into `my-proj`.`raw`.`items`")  # every row is new


def test_append_inserts_or_skips_keys_already_there():
    plain = plan(job({"strategy": "incremental_append"}), EXISTS)
    assert script(plain)[0].startswith("insert into `my-proj`.`raw`.`items` (`id`, `name`, `day`) select")
    keyed = plan(job({"strategy": "incremental_append"}), BigQueryFacts(True, COLUMNS, primary_key=("id",)))
    statement = script(keyed)[0]
    assert "qualify row_number() over (partition by `id`) = 1" in statement
    assert "where not exists (select 1 from `my-proj`.`raw`.`items` as t where t.`id` = s.`id`)" in statement


def test_an_append_with_a_unique_key_guards_it_and_skips_the_keys_the_target_holds():
    keyed = job({"strategy": "incremental_append", "unique_key": ["id"]})  # the target declares no key
    steps = plan(keyed, EXISTS)
    assert [s.name for s in steps] == ["", "duplicates", "new_keys", "transaction"]
    where = "where not exists (select 1 from `my-proj`.`raw`.`items` as t where t.`id` = s.`id`)"
    assert where in script(steps)[0]
    result = bigquery_result(keyed, EXISTS, {"new_keys": Outcome(1, [(3,)])})
    assert (result["rows_inserted"], result["rows_already_loaded"], result["duplicates_removed"]) == (3, 7, 0)


# --- merge ---------------------------------------------------------------------------------------------


def test_merge_is_one_statement_after_the_key_guards():
    steps = plan(job(MERGE), EXISTS)
    assert_shape(steps)
    assert [s.name for s in steps] == ["", "duplicates", "matched", "transaction"]
    [merge, _state] = script(steps)
    assert merge == (
        "merge into `my-proj`.`raw`.`items` as t using `my-proj`.`dpone_staging`.`items__abc` as s "
        "on t.`id` = s.`id` when matched then update set `name` = s.`name`, `day` = s.`day` "
        "when not matched by target then insert (`id`, `name`, `day`) values (s.`id`, s.`name`, s.`day`)"
    )


def test_key_guards_fail_before_anything_changes():
    steps = plan(job(MERGE), EXISTS)
    with pytest.raises(NullKeyError):
        run_steps(steps, Answers(pair=Outcome(1, [(2, ['{"id":null}'])])))
    answers = Answers(duplicates=Outcome(1, [(7, 2)]))
    with pytest.raises(DuplicateKeyError, match="keep_last"):
        run_steps(steps, answers)
    assert not any("begin transaction" in s for s in answers.ran)


def test_keep_last_needs_a_staged_load_order():
    with pytest.raises(UnsupportedError, match=LOAD_SEQ):
        plan(job({**MERGE, "on_duplicate_keys": "keep_last"}), EXISTS)
    seq = TableSchema((*SCHEMA.columns, Column(LOAD_SEQ, T.INT64)), ("id",))
    steps = plan(job({**MERGE, "on_duplicate_keys": "keep_last"}, schema=seq), EXISTS)
    keep = next(s for s in steps if s.name == "duplicates_removed")
    assert keep.sql.startswith("delete from `my-proj`.`dpone_staging`.`items__abc` as s where exists")
    assert keep.when is not None
    assert LOAD_SEQ not in script(steps)[0]  # the order column never reaches the target


def test_full_extract_reconciliation_is_in_the_merge_after_the_mass_delete_guard():
    j = job(MERGE, {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.1}})
    steps = plan(j, EXISTS)
    merge = script(steps)[0]
    assert merge.endswith("when not matched by source then delete")
    with pytest.raises(MassDeleteError):
        run_steps(steps, _missing(50, 100))
    run_steps(steps, _missing(5, 100))  # within the limit


def _missing(missing: int, total: int) -> Any:
    """Answers whose missing-keys count says ``missing`` of ``total``."""

    class WithMissing(Answers):
        def __call__(self, step: Step) -> Outcome:
            if "not exists (select 1 from `my-proj`.`dpone_staging`" in step.sql and step.sql.startswith(
                "select ("
            ):
                return Outcome(1, [(missing, total)])
            return super().__call__(step)

    return WithMissing()


def test_soft_deletes_mark_and_undelete_in_the_merge():
    j = job(MERGE, {"reconciliation": {"deletes": "soft"}})
    steps = plan(j, EXISTS)
    assert any(s.sql.startswith("alter table") and "`_dpone_deleted_at` TIMESTAMP" in s.sql for s in steps)
    merge = script(steps)[0]
    assert "update set `name` = s.`name`, `day` = s.`day`, `_dpone_deleted_at` = null" in merge
    assert merge.endswith(
        "when not matched by source and t.`_dpone_deleted_at` is null "
        "then update set `_dpone_deleted_at` = current_timestamp()"
    )


def test_incremental_reconciliation_deletes_against_the_staged_key_set():
    j = job(
        MERGE,
        {
            "source": {
                "connector": "postgres",
                "conn_id": "src",
                "table": "items",
                "incremental": {"mode": "cursor", "cursor": "day"},
            },
            "reconciliation": {"deletes": "hard"},
        },
        key_set=d.table("my-proj.dpone_staging", "items__abc__keys"),
    )
    merge, delete, _state = script(plan(j, EXISTS))
    assert "not matched by source" not in merge
    assert delete == (
        "delete from `my-proj`.`raw`.`items` as t where not exists (select 1 from "
        "`my-proj`.`dpone_staging`.`items__abc__keys` as s where t.`id` = s.`id`)"
    )


SNAPSHOT = {"strategy": "snapshot_diff", "unique_key": ["id"]}
HARD = {"reconciliation": {"deletes": "hard"}}


def test_snapshot_diff_updates_only_rows_whose_values_differ():
    steps = plan(job(SNAPSHOT, HARD), EXISTS)
    merge = script(steps)[0]
    assert (
        "when matched and ((to_json_string(struct(t.`name` as c0, t.`day` as c1)) != "
        "to_json_string(struct(s.`name` as c0, s.`day` as c1)))) then update" in merge
    )
    outcomes = {"matched": Outcome(1, [(6, 2)])}
    result = bigquery_result(job(SNAPSHOT, HARD), EXISTS, outcomes)
    assert result == {
        "target": "my-proj.raw.items",
        "method": "merge",
        "duplicates_removed": 0,
        "rows_inserted": 4,
        "rows_updated": 2,
        "rows_unchanged": 4,
    }


def test_schema_changes_run_before_the_transaction():
    added = Column("note", T.STRING)
    j = job(MERGE, schema_changes=(SchemaChange(ChangeKind.ADD_COLUMN, "note", added, result=added),))
    steps = plan(j, EXISTS)
    ddl = [s.sql for s in steps if s.sql.startswith("alter")]
    assert ddl == ["alter table `my-proj`.`raw`.`items` add column if not exists `note` STRING"]
    assert steps.index(next(s for s in steps if s.sql in ddl)) < len(steps) - 1


def test_columns_staged_as_text_are_cast_into_the_target():
    schema = TableSchema((Column("id", T.INT64, nullable=False), Column("at", T.TIME), Column("doc", T.JSON)))
    merge = script(plan(job(MERGE, schema=schema), EXISTS))[0]
    assert "using (select `id`, cast(`at` as TIME) as `at`, parse_json(`doc`) as `doc` from" in merge


# --- replace and partition_replace -------------------------------------------------------------------

WINDOW = {
    "strategy": "replace",
    "replace": {"window": {"column": "day", "start": "2026-01-01", "end": "2026-02-01"}},
}


def test_replace_deletes_the_window_inline_and_inserts():
    steps = plan(job(WINDOW), EXISTS)
    assert_shape(steps)
    predicate = "`day` >= cast('2026-01-01' as DATE) and `day` < cast('2026-02-01' as DATE)"
    assert steps[0].sql.endswith(f"where ({predicate}) is not true")
    assert steps[1].name == "in_range" and steps[1].sql.endswith(f"where {predicate}")
    delete, insert, _ = script(steps)
    assert delete == f"delete from `my-proj`.`raw`.`items` where {predicate}"
    assert insert.startswith("insert into `my-proj`.`raw`.`items`")


def test_replace_guards():
    steps = plan(job(WINDOW), EXISTS)
    with pytest.raises(StagingMismatchError):
        run_steps(steps, Answers(count=Outcome(1, [(3,)])))
    empty = plan(job(WINDOW, staged=0), EXISTS)
    with pytest.raises(EmptySourceError, match="allow_empty"):
        run_steps(empty, Answers(in_range=Outcome(1, [(40,)])))
    allowed = plan(job({**WINDOW, "allow_empty": True}, staged=0), EXISTS)
    assert "in_range" not in [s.name for s in allowed]


def test_replace_by_where_uses_the_authors_predicate():
    steps = plan(job({"strategy": "replace", "replace": {"where": "day >= '2026-01-01'"}}), EXISTS)
    assert script(steps)[0] == "delete from `my-proj`.`raw`.`items` where (day >= '2026-01-01')"


PARTITIONED = BigQueryFacts(True, COLUMNS, Partitioning("DAY", "day"), partitions=("20260101", "20260102"))
BY_DAY = {"strategy": "partition_replace", "partition_by": ["day"]}


def test_partition_replace_writes_each_touched_partition_by_decorator_then_state():
    steps = plan(job(BY_DAY), PARTITIONED)
    assert [s.name for s in steps] == ["partition:20260101", "partition:20260102", ""]
    first = steps[0]
    assert first.sql == (
        "select `id`, `name`, `day` from `my-proj`.`dpone_staging`.`items__abc` "
        "where coalesce(format_date('%Y%m%d', `day`), '__NULL__') = '20260101'"
    )
    assert "my-proj.raw.items$20260101, WRITE_TRUNCATE" in first.note
    assert steps[-1].sql.startswith("begin transaction;\nmerge into `dpone`.`state`")
    result = bigquery_result(
        job(BY_DAY), PARTITIONED, {"partition:20260101": Outcome(0), "partition:20260102": Outcome(0)}
    )
    assert result["method"] == "partition_decorator" and result["partitions_replaced"] == [
        "20260101",
        "20260102",
    ]


def test_a_plan_shows_one_templated_partition_job():
    facts = BigQueryFacts(True, COLUMNS, Partitioning("DAY", "day"))
    lines = render(plan(job(BY_DAY), facts))
    assert any("<partition id>" in line and "one job per partition" in line for line in lines)


@pytest.mark.parametrize(
    "facts",
    [
        BigQueryFacts(True, COLUMNS),  # not partitioned
        BigQueryFacts(True, COLUMNS, Partitioning("DAY", None)),  # ingestion-time partitioned
        BigQueryFacts(True, COLUMNS, Partitioning("DAY", "other")),  # by another column
        BigQueryFacts(True, (*COLUMNS, "extra"), Partitioning("DAY", "day")),  # a target-only column
    ],
)
def test_partition_replace_otherwise_deletes_touched_values_in_the_transaction(facts):
    j = job(BY_DAY)
    assert not by_decorator(j, facts)
    steps = plan(j, facts)
    assert_shape(steps)
    delete, insert, _ = script(steps)
    assert delete == (
        "delete from `my-proj`.`raw`.`items` as t where exists (select 1 from "
        "`my-proj`.`dpone_staging`.`items__abc` as s where t.`day` is not distinct from s.`day`)"
    )
    assert insert.startswith("insert into")


def test_a_created_partition_replace_target_is_partitioned_by_day():
    ddl = [s.sql for s in plan(job(BY_DAY), NEW) if s.sql.startswith("create table")]
    assert ddl == [
        "create table `my-proj`.`raw`.`items` (`id` INT64 not null, `name` STRING, `day` DATE not null) "
        "partition by `day`"
    ]


# --- what is not supported, and plans without a schema ------------------------------------------------


def test_strategies_not_yet_supported_are_refused():
    with pytest.raises(UnsupportedError, match="scd2"):
        plan_bigquery_finalize(d, job({"strategy": "scd2", "unique_key": ["id"]}), EXISTS)


def test_state_elsewhere_commits_only_the_data():
    steps = plan_bigquery_finalize(d, job({"strategy": "full_refresh"}), EXISTS)
    assert steps[-1].sql.count(";\n") == 3 and "commits whole" in steps[-1].note
    assert plan_bigquery_finalize(d, job(BY_DAY), PARTITIONED)[-1].name == "partition:20260102"


def test_a_plan_without_a_schema_still_renders():
    lines = render(plan_bigquery_finalize(d, job({"strategy": "full_refresh"}, schema=None), NEW))  # type: ignore[arg-type]
    assert lines[1] == "-- create table my-proj.raw.items (<source columns>)"
