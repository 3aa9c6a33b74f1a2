"""The finalize planner is pure: the steps of each strategy, their guards and conditions, and
the result computed from what the steps answered, without a database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import (
    BadInputError,
    DuplicateKeyError,
    EmptySourceError,
    MassDeleteError,
    NullKeyError,
    StagingMismatchError,
)
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.sql.finalize import FinalizeJob, Leaf, TargetFacts, lock_steps, plan_finalize
from airflow_provider_dpone.sql.finalize_result import finalize_result
from airflow_provider_dpone.sql.postgres import POSTGRES as d
from airflow_provider_dpone.sql.steps import Outcome, Step, render, run_steps

pytestmark = pytest.mark.unit

SCHEMA = TableSchema(
    (
        Column("id", CanonicalType.INT64, nullable=False),
        Column("name", CanonicalType.STRING),
        Column("day", CanonicalType.DATE),
    ),
    ("id",),
)


def job(
    sink: dict[str, Any],
    extras: dict[str, Any] | None = None,
    *,
    staged: int | None = 10,
    source: dict | None = None,
) -> FinalizeJob:
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items", **(source or {})},
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


EXISTING = TargetFacts(exists=True, primary_key=("id",), unique_keys=frozenset({frozenset({"id"})}))
MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}


class Answers:
    """Answers each step by the first matching fragment of its SQL; records what ran."""

    def __init__(self, **answers: Outcome) -> None:
        self.answers, self.ran = answers, []

    def __call__(self, step: Step) -> Outcome:
        self.ran.append(step.sql)
        for fragment, outcome in self.answers.items():
            if fragment.replace("_", " ") in step.sql:
                return outcome
        if "having count(*) > 1" in step.sql:  # no duplicate keys
            return Outcome(0, [])
        return Outcome(0, [(0, None)] if step.sql.startswith("select") else None)


def test_a_merge_into_a_new_target_creates_it_and_inserts() -> None:
    steps = plan_finalize(d, job(MERGE), TargetFacts(exists=False, primary_key=("id",)))
    sql = [s.sql for s in steps]
    assert sql[0].startswith(
        "do $dpone$ begin if not exists (select from pg_namespace where nspname = 'raw')"
    )
    assert 'create schema "raw"' in sql[0]
    assert sql[1].startswith('create table "raw"."items"') and "fillfactor" in sql[1]
    assert sql[-1].startswith('insert into "raw"."items"') and "not exists" not in sql[-1]
    assert not any(s.startswith("update") for s in sql)


def test_every_staged_row_updated_skips_the_insert_and_the_result_says_so() -> None:
    j = job(MERGE, staged=10)
    steps = plan_finalize(d, j, EXISTING)
    answers = Answers(update=Outcome(10))
    outcomes = run_steps(steps, answers)
    assert not any(s.startswith("insert") for s in answers.ran)
    assert finalize_result(j, EXISTING, outcomes) == {
        "duplicates_removed": 0,
        "rows_updated": 10,
        "method": "update",
        "rows_inserted": 0,
    }
    answers = Answers(update=Outcome(7), insert=Outcome(3))
    result = finalize_result(j, EXISTING, run_steps(steps, answers))
    assert result["method"] == "update_insert" and result["rows_inserted"] == 3


def test_guards_fail_before_any_write() -> None:
    steps = plan_finalize(d, job(MERGE), EXISTING)
    nulls = Answers(null=Outcome(1, [(2, ["[null]"])]))
    with pytest.raises(NullKeyError):
        run_steps(steps, nulls)
    assert len(nulls.ran) == 1
    dupes = Answers(null=Outcome(1, [(0, None)]), group_by=Outcome(1, [(5, 2)]))
    with pytest.raises(DuplicateKeyError, match="keep_last"):
        run_steps(steps, dupes)
    assert not any(s.startswith(("update", "insert", "delete")) for s in dupes.ran)


def test_keep_last_removes_duplicates_only_when_there_are_some() -> None:
    steps = plan_finalize(d, job({**MERGE, "on_duplicate_keys": "keep_last"}), EXISTING)
    keep = next(s for s in steps if s.name == "duplicates_removed")
    assert keep.when is not None and "duplicate keys" in keep.when.describe
    clean = Answers(null=Outcome(1, [(0, None)]))
    run_steps(steps, clean)
    assert keep.sql not in clean.ran
    dupes = Answers(null=Outcome(1, [(0, None)]), group_by=Outcome(1, [(5, 2)]))
    run_steps(steps, dupes)
    assert keep.sql in dupes.ran


def test_the_mass_delete_guard_counts_before_deleting() -> None:
    rec = {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.1}}
    steps = plan_finalize(d, job(MERGE, rec), EXISTING)
    answers = Answers(null=Outcome(1, [(0, None)]), **{"select (select count(*)": Outcome(1, [(50, 100)])})
    with pytest.raises(MassDeleteError, match="50 of 100"):
        run_steps(steps, answers)
    assert not any(s.startswith(("update", "insert", "delete")) for s in answers.ran)
    rendered = "\n".join(render(steps))
    assert "-- fails above max_delete_fraction 0.1, before any change" in rendered


def test_replace_refuses_rows_outside_the_range_and_an_empty_batch() -> None:
    window = {"replace": {"window": {"column": "day", "start": "2026-01-01", "end": "2026-01-02"}}}
    steps = plan_finalize(d, job({"strategy": "replace", **window}), EXISTING)
    assert steps[0].params == ("2026-01-01", "2026-01-02")
    with pytest.raises(StagingMismatchError):
        run_steps(steps, Answers(is_not_true=Outcome(1, [(3,)])))
    empty = plan_finalize(d, job({"strategy": "replace", **window}, staged=0), EXISTING)
    with pytest.raises(EmptySourceError):
        run_steps(empty, Answers(delete=Outcome(40)))


def test_replace_refuses_a_window_column_that_changed_type() -> None:
    """Old rows hold the window in ``day``, new ones in ``day__timestamp``: deleting by either
    alone would leave rows the insert then duplicates."""
    window = {"replace": {"window": {"column": "day", "start": "2026-01-01", "end": "2026-01-02"}}}
    remapped = replace(job({"strategy": "replace", **window}), mapping={"day": "day__timestamp"})
    with pytest.raises(BadInputError, match="'day' changed type and lands in 'day__timestamp'"):
        plan_finalize(d, remapped, EXISTING)


def test_partition_swap_touches_only_partitions_with_rows() -> None:
    parent = d.parse_table("raw.items")
    leaves = tuple(
        Leaf(d.table("raw", f"items_p{i}"), parent, f"FOR VALUES IN ({i})", f"(day = {i})") for i in (1, 2)
    )
    facts = TargetFacts(exists=True, partitioned=True, leaves=leaves)
    j = job({"strategy": "partition_replace", "partition_by": ["day"]})
    steps = plan_finalize(d, j, facts)
    answers = Answers(filter=Outcome(1, [(4, 0, 4)]))
    outcomes = run_steps(steps, answers)
    assert any('"items_p2"' in s for s in answers.ran) and not any('"items_p1"' in s for s in answers.ran)
    assert finalize_result(j, facts, outcomes)["partitions_replaced"] == ["raw.items_p2"]
    with pytest.raises(StagingMismatchError, match="no partition"):
        run_steps(steps, Answers(filter=Outcome(1, [(5, 0, 4)])))


def test_full_refresh_swaps_a_plain_identical_target_else_truncates() -> None:
    j = job({"strategy": "full_refresh"})
    swap = [s.sql for s in plan_finalize(d, j, TargetFacts(exists=True, swappable=True))]
    assert any("rename to" in s for s in swap) and not any(s.startswith("truncate") for s in swap)
    copy = [s.sql for s in plan_finalize(d, j, TargetFacts(exists=True, swappable=False))]
    assert copy[0].startswith("truncate") and copy[1].startswith("insert")


def test_locks_come_first_and_the_target_lock_matches_the_strategy() -> None:
    full = lock_steps(d, job({"strategy": "full_refresh"}), exists=True)
    merge = lock_steps(d, job(MERGE), exists=True)
    assert full[0].sql.startswith("select pg_advisory_xact_lock") and full[0].params == ("dpone:raw.items",)
    assert "access exclusive" in full[1].sql and "row exclusive" in merge[1].sql
    assert len(lock_steps(d, job(MERGE), exists=False)) == 1


def test_incremental_reconciliation_without_a_staged_key_set_is_refused() -> None:
    rec = {"reconciliation": {"deletes": "hard"}}
    cursor = {"incremental": {"mode": "cursor", "cursor": "day"}}
    with pytest.raises(BadInputError, match="key set"):
        plan_finalize(d, job(MERGE, rec, source=cursor), EXISTING)
    keyed = replace(job(MERGE, rec, source=cursor), key_set=d.table("dpone_staging", "items__abc__keys"))
    delete = [s.sql for s in plan_finalize(d, keyed, EXISTING) if s.sql.startswith("delete")]
    assert delete and '"items__abc__keys"' in delete[0]
