"""BigQuery finalize, planned as ordered steps (``sql.steps``) the sink runs as query jobs and
``dpone plan`` renders:

1. read-only guards on staging and the target (NULL and duplicate keys, the mass-delete count,
   rows outside a replaced range), each its own query job; a failing check stops the load
   before anything changed;
2. DDL that BigQuery refuses inside a transaction, each atomic on its own: create the target
   (dataset first), add managed columns, the schema plan's safe changes (add a column, relax
   REQUIRED, widen a decimal);
3. one transaction script (one query job) with the strategy's DML and the state or journal
   row: all of it commits, or none.

``partition_replace`` into a target partitioned by the same column instead writes each touched
partition with a query job into ``table$partition`` (WRITE_TRUNCATE: the partition is replaced
atomically, at no DML cost), then commits state in its own script: the partitions and the state
do not commit together, and a retry of the run rewrites the same partitions from the same
staging. Pure: nothing here connects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..contracts.errors import BadInputError, EmptySourceError, StagingMismatchError, UnsupportedError
from ..contracts.strategies import Strategy
from ..contracts.table import CanonicalType, TableSchema
from ..runtime.protocols import Statement
from .bigquery import LOAD_SEQ, BigQueryDialect
from .bigquery_catalog import Partitioning
from .dialect import TableRef
from .finalize import FinalizeJob, TargetFacts, _dedupe, _delete_guard, _key_set
from .steps import Check, Outcome, Outcomes, Step, count
from .targets import active_column, managed_columns, require_columns, target_schema

PLANNED = "<partition id>"  # a plan's placeholder: staged partitions are known after staging
SUPPORTED = frozenset(
    {
        Strategy.FULL_REFRESH,
        Strategy.INCREMENTAL_APPEND,
        Strategy.INCREMENTAL_MERGE,
        Strategy.SNAPSHOT_DIFF,
        Strategy.REPLACE,
        Strategy.PARTITION_REPLACE,
    }
)
_KEYED = (Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF)
_TIME_TYPES = {
    CanonicalType.DATE: "{c}",
    CanonicalType.TIMESTAMPTZ: "date({c})",
    CanonicalType.TIMESTAMP: "date({c})",
}


@dataclass(frozen=True)
class BigQueryFacts:
    """The target as finalize finds it (``tables.get``; nothing is locked in BigQuery)."""

    exists: bool
    columns: tuple[str, ...] = ()  # the target's columns, in order
    partitioning: Partitioning | None = None
    primary_key: tuple[str, ...] = ()  # a declared (unenforced) key: append skips keys already there
    partitions: tuple[str, ...] | None = None  # partitions the batch touches (decorator path); None in a plan
    dataset_exists: bool = False  # a missing target's dataset (created first when it is missing)


def _names(job: FinalizeJob) -> list[str]:
    """The batch's data columns (the staging-only load order column left out)."""
    return [n for n in job.names if n != LOAD_SEQ]


def _data(schema: TableSchema | None) -> TableSchema | None:
    if schema is None or not schema.has(LOAD_SEQ):
        return schema
    return TableSchema(
        tuple(c for c in schema.columns if c.name != LOAD_SEQ), schema.primary_key, schema.extras
    )


def _partition_ddl(d: BigQueryDialect, job: FinalizeJob) -> str | None:
    """A created target's PARTITION BY: daily on a partition_replace load's one date or time column."""
    columns = job.load.sink.partition_by or []
    if job.load.sink.strategy is not Strategy.PARTITION_REPLACE or len(columns) != 1 or job.schema is None:
        return None
    column = job.schema.column(columns[0]) if job.schema.has(columns[0]) else None
    template = _TIME_TYPES.get(column.type) if column is not None else None
    return template.format(c=d.quote_ident(columns[0])) if template else None


def prepare_target(d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts) -> list[Step]:
    """The DDL before the transaction: create the target, or evolve it (each statement atomic)."""
    if not facts.exists:
        data = _data(job.schema)
        if data is None:
            return [Step(f"-- create table {job.target} (<source columns>)", note="the target is created")]
        keys = tuple(job.keys) if job.load.sink.strategy in (*_KEYED, Strategy.CDC_APPLY) else ()
        table = target_schema(job.load, data)
        ddl = d.create_table(job.target, table, partition_by=_partition_ddl(d, job), cluster_by=keys)
        dataset = (
            []
            if facts.dataset_exists
            else [Step(d.create_schema(job.target.schema), note="the dataset first")]
        )
        return [
            *dataset,
            Step(
                ddl,
                note="the target is created" + (", clustered by the key a merge joins on" if keys else ""),
            ),
        ]
    steps = [
        Step(statement, note="schema change: before the transaction, which refuses DDL")
        for change in job.schema_changes
        for statement in d.schema_change_ddl(job.target, change)
    ]
    return steps + [
        Step(d.add_column_if_missing(job.target, c.name, d.native_type(c)), note="a managed column")
        for c in managed_columns(job.load)
    ]


def _guards(d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts) -> list[Step]:
    keyed_append = job.load.sink.strategy is Strategy.INCREMENTAL_APPEND and bool(job.keys)
    if job.load.sink.strategy not in _KEYED and not keyed_append:
        return []
    if job.load.sink.on_duplicate_keys == "keep_last" and (
        job.schema is None or not job.schema.has(LOAD_SEQ)
    ):
        raise UnsupportedError(
            f"sink.on_duplicate_keys: keep_last needs the staged rows' order, which a BigQuery load job "
            f"does not keep; stage a '{LOAD_SEQ}' column, or deduplicate in the source"
        )
    if keyed_append:  # one row per key; the append skips the keys the target holds
        return _dedupe(d, job)
    # the shared guards read only whether the target exists from their facts
    return _dedupe(d, job) + _delete_guard(d, job, TargetFacts(exists=facts.exists))


def _merge(
    d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts, source: TableRef
) -> tuple[list[Step], list[str]]:
    """(measure, statements): one MERGE; reconciliation in it when the batch is the whole key set."""
    names, keys, rec = _names(job), job.keys, job.load.reconciliation
    require_columns("sink.unique_key", keys, job.schema)
    if not facts.exists:
        return [], [d.insert_select(job.target, source, names, job.mapping)]
    only_changed = job.load.sink.strategy is Strategy.SNAPSHOT_DIFF
    values = [n for n in names if n not in keys]
    changed = d._changed(values, job.mapping) if values else "false"
    measure = Step(
        f"select count(*), countif({changed}) from {job.target.sql} as t join {source.sql} as s "
        f"on {d._key_match(keys, job.mapping)}",
        name="matched",
        note="staged keys already in the target, and how many of them differ (the run report)",
    )
    found = active_column(job.load)
    active = "" if found is None else f"t.{d.quote_ident(found[0])} is null"
    undelete = rec.soft_delete_column if rec.deletes == "soft" else None
    closing = None
    if rec.deletes == "hard":
        closing = "delete"
    elif rec.deletes == "soft":
        closing = f"{d.quote_ident(rec.soft_delete_column)} = current_timestamp()"
    whole = job.load.source.incremental is None  # the batch is the source's whole key set
    statement = d.merge(
        job.target,
        source,
        names,
        keys,
        job.mapping,
        only_changed=only_changed,
        undelete=undelete,
        by_source=closing if whole else None,
        active=active,
    )
    statements = [statement]
    if closing and not whole:
        keyset = _key_set(job)
        if closing == "delete":
            statements.append(d.delete_missing_keys(job.target, keyset, keys, job.mapping))
        else:
            assignments = {rec.soft_delete_column: "now()"}
            statements.append(
                d.close_missing_keys(job.target, keyset, keys, assignments, active, job.mapping)
            )
    return [measure], statements


def window_predicate(d: BigQueryDialect, job: FinalizeJob) -> str:
    """The rows ``replace`` rewrites, values inline (a script takes no parameters)."""
    spec = job.load.sink.replace
    assert spec is not None  # the manifest requires it for this strategy
    if spec.where:
        return f"({spec.where})"
    window = spec.window
    assert window is not None
    if job.schema is None:
        return "<replaced range>"
    require_columns("sink.replace.window.column", [window.column], job.schema)
    if window.column in job.mapping:
        raise BadInputError(
            f"sink.replace.window.column: '{window.column}' changed type and lands in "
            f"'{job.mapping[window.column]}'; the window cannot be deleted exactly across both columns"
        )
    return d.window_between(job.schema.column(window.column), window.start, window.end)


def _replace(
    d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts, source: TableRef
) -> tuple[list[Step], list[str]]:
    predicate = window_predicate(d, job)

    def inside(outcome: Outcome, _: Outcomes) -> None:
        if outcome.first[0]:
            raise StagingMismatchError(
                f"{outcome.first[0]:,} staged row(s) fall outside sink.replace; the source must read "
                "only the replaced range (set source.window, or filter the query); the target is untouched"
            )

    def not_emptied(outcome: Outcome, _: Outcomes) -> None:
        held = outcome.first[0]
        if held and not job.staged_rows:
            raise EmptySourceError(
                f"{job.key}: the source returned 0 rows and replace would delete {held:,} rows of "
                f"{job.target} in the replaced range, leaving it empty; nothing was changed. If the "
                "range is really empty now, set sink.allow_empty: true for this load"
            )

    guards = [
        Step(
            d.count_outside(source, predicate),
            check=Check("if a staged row is outside the replaced range", inside),
        )
    ]
    if not facts.exists:
        return guards, [d.insert_select(job.target, source, _names(job), job.mapping)]
    if not job.load.sink.allow_empty:
        guards.append(
            Step(
                f"select count(*) from {job.target.sql} where {predicate}",
                name="in_range",
                check=Check(
                    "if the batch is empty while the range holds rows (sink.allow_empty)", not_emptied
                ),
            )
        )
    return guards, [
        d.delete_where(job.target, predicate),
        d.insert_select(job.target, source, _names(job), job.mapping),
    ]


def by_decorator(job: FinalizeJob, facts: BigQueryFacts) -> bool:
    """Whether ``partition_replace`` can write each partition as ``table$partition``: the target
    is partitioned by the one partition_by column and its columns are the batch's, as they are."""
    columns = job.load.sink.partition_by or []
    spec = facts.partitioning
    return (
        facts.exists
        and spec is not None
        and len(columns) == 1
        and spec.column == columns[0]
        and not job.mapping
        and job.schema is not None
        and list(facts.columns) == _names(job)
    )


def _partition_jobs(
    d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts, source: TableRef
) -> list[Step]:
    assert facts.partitioning is not None and job.schema is not None
    column = job.schema.column(facts.partitioning.column or "")
    ids = facts.partitions if facts.partitions is not None else (PLANNED,)
    cols = d.column_list(_names(job))
    steps = []
    for pid in ids:
        where = f"{d.partition_id(column, facts.partitioning)} = {d.quote_literal(pid)}"
        destination = f"{job.target}${pid}" if pid == PLANNED else d.decorated(job.target, pid)
        steps.append(
            Step(
                f"select {cols} from {source.sql} where {where}",
                name=f"partition:{pid}",
                note=f"query job -> {destination}, WRITE_TRUNCATE: the partition is replaced atomically"
                + (" (one job per partition the batch touches)" if pid == PLANNED else ""),
            )
        )
    return steps


def plan_bigquery_finalize(
    d: BigQueryDialect, job: FinalizeJob, facts: BigQueryFacts, extra: Sequence[Statement] = ()
) -> list[Step]:
    """Every step of this finalize, in order; ``extra`` (the state or journal row) commits in
    the transaction with the data."""
    strategy = job.load.sink.strategy
    if strategy is Strategy.CDC_APPLY:
        from .bigquery_changes import plan_cdc_apply  # it builds on this module's target steps

        return plan_cdc_apply(d, job, facts, extra)
    if strategy not in SUPPORTED:
        raise UnsupportedError(f"sink.strategy: '{strategy.value}' is not supported by the bigquery sink yet")
    source = d.typed_staging(job.staging, _data(job.schema))
    guards = _guards(d, job, facts)
    measure: list[Step] = []
    names = _names(job)
    if strategy is Strategy.FULL_REFRESH:
        statements = [d.insert_select(job.target, source, names, job.mapping)]
        if facts.exists:
            statements.insert(0, d.truncate(job.target))
    elif strategy is Strategy.INCREMENTAL_APPEND:
        # sink.unique_key (as the target names it), else a declared primary key: keys already there are skipped
        keys = [job.mapping.get(k, k) for k in job.keys] or list(facts.primary_key)
        statements = [d.append_rows(job.target, source, names, job.mapping, keys)]
        if keys:  # what the append will add: the batch's keys the target does not hold yet
            measure = [Step(d.count_new_keys(job.target, source, names, job.mapping, keys), name="new_keys",
                            note="the keys the append adds (those already in the target are skipped)")]  # fmt: skip
    elif strategy in _KEYED:
        measure, statements = _merge(d, job, facts, source)
    elif strategy is Strategy.REPLACE:
        more, statements = _replace(d, job, facts, source)
        guards += more
    else:
        columns = list(job.load.sink.partition_by or [])
        require_columns("sink.partition_by", columns, job.schema)
        if by_decorator(job, facts):
            state = [Step(d.script([], extra), note="state, after the partitions")] if extra else []
            return guards + _partition_jobs(d, job, facts, source) + state
        statements = [d.insert_select(job.target, source, names, job.mapping)]
        if facts.exists:
            statements.insert(0, d.delete_matching_partitions(job.target, source, columns))
    transaction = Step(
        d.script(statements, extra),
        name="transaction",
        note="one transaction: the data" + (" and the state commit together" if extra else " commits whole"),
    )
    return guards + prepare_target(d, job, facts) + measure + [transaction]


def bigquery_result(
    job: FinalizeJob, facts: BigQueryFacts, outcomes: Outcomes, dml: dict[str, int] | None = None
) -> dict[str, Any]:
    """Method and row counts of the finalize; ``dml`` (inserted / updated / deleted, from the
    script's child jobs' DML statistics where the backend reports them) overrides the counts
    measured before the transaction."""
    strategy, staged = job.load.sink.strategy, job.staged_rows or 0
    result: dict[str, Any] = {"target": str(job.target)}
    if not facts.exists:
        result["created"] = True
    if strategy is Strategy.CDC_APPLY:
        deletes, held, new = outcomes["changes"].first if "changes" in outcomes else (0, 0, 0)
        gone = outcomes["snapshot_missing"].first[0] if "snapshot_missing" in outcomes else 0
        return {
            **result,
            "method": "cdc_merge",
            "rows_inserted": int(new),
            "rows_updated": int(held),
            "rows_deleted": int(deletes) + int(gone),
        }
    removed = count(outcomes, "duplicates_removed")
    if strategy is Strategy.PARTITION_REPLACE and any(n.startswith("partition:") for n in outcomes):
        parts = [n.split(":", 1)[1] for n in outcomes if n.startswith("partition:")]
        return {
            **result,
            "method": "partition_decorator",
            "partitions_replaced": parts,
            "rows_inserted": staged,
        }
    methods = {
        Strategy.FULL_REFRESH: "truncate_insert",
        Strategy.INCREMENTAL_APPEND: "insert",
        Strategy.REPLACE: "delete_insert",
        Strategy.PARTITION_REPLACE: "scoped_delete_insert",
    }
    if strategy in methods:
        result.update(method=methods[strategy], rows_inserted=staged)
        if "new_keys" in outcomes:  # an append that skips keys the target holds
            result["rows_inserted"] = outcomes["new_keys"].first[0]
            if job.keys:
                result["duplicates_removed"] = removed
                result["rows_already_loaded"] = staged - removed - int(result["rows_inserted"])
        if strategy is Strategy.REPLACE and "in_range" in outcomes:
            result["rows_deleted"] = outcomes["in_range"].first[0]
    else:
        matched, differing = outcomes["matched"].first if "matched" in outcomes else (0, 0)
        updated = differing if strategy is Strategy.SNAPSHOT_DIFF else matched
        result.update(
            method="merge",
            duplicates_removed=removed,
            rows_inserted=staged - removed - matched,
            rows_updated=updated,
        )
        if strategy is Strategy.SNAPSHOT_DIFF:
            result["rows_unchanged"] = matched - differing
    if dml:
        result.update({f"rows_{k}": v for k, v in dml.items()})
    return result
