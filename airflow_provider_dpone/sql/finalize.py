"""Set-based finalize of every strategy, planned as ordered steps (``sql.steps``).

The sink reads the target's facts (after locking it), calls ``plan_finalize`` and runs the
steps in its one transaction; ``dpone plan`` reads the same facts read-only and renders the
same steps. Guards are steps whose check raises before anything is changed. Pure: the dialect
renders each statement, nothing here connects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..contracts.connectors import CONNECTORS
from ..contracts.errors import (
    BadInputError,
    DuplicateKeyError,
    EmptySourceError,
    MassDeleteError,
    StagingMismatchError,
)
from ..contracts.manifest import LoadSpec
from ..contracts.strategies import SCD2_COLUMNS, Strategy
from ..contracts.table import TableSchema
from ..runtime.guards import null_key_error
from ..schema.planner import SchemaChange
from .dialect import TableRef
from .finalize_dialect import SetBasedDialect
from .steps import Check, Condition, Outcome, Outcomes, Step, count
from .targets import (
    UPDATING,
    active_column,
    managed_columns,
    require_columns,
    target_primary_key,
    target_schema,
)

log = logging.getLogger(__name__)
_MERGE_FILLFACTOR = 90


# Staged rows a strategy removes from the batch before its merge (a change feed's deletes).
LEFT_BATCH = "left_batch"


@dataclass(frozen=True)
class Leaf:
    """A leaf partition of a declaratively partitioned target, as the catalog describes it."""

    table: TableRef
    parent: TableRef
    bound: str  # pg_get_expr of the partition bound
    constraint: str  # its partition constraint, a predicate on the parent's columns


@dataclass(frozen=True)
class TargetFacts:
    """What finalize needs to know about the target, read from the catalog after the lock."""

    exists: bool
    primary_key: tuple[str, ...] = ()  # the existing table's, else the one it is created with
    unique_keys: frozenset[frozenset[str]] = frozenset()
    swappable: bool = True  # a full refresh may swap staging in (absent, or a plain identical table)
    partitioned: bool = False
    leaves: tuple[Leaf, ...] = ()


@dataclass(frozen=True)
class FinalizeJob:
    """One finalize: the load, where its batch is staged, and how its columns land."""

    key: str  # "pipeline.load", for messages
    load: LoadSpec
    target: TableRef
    staging: TableRef
    schema: TableSchema | None  # None in a plan whose extract could not be planned
    key_set: TableRef | None = None  # the source's full key set (reconciliation of incremental loads)
    mapping: dict[str, str] = field(default_factory=dict)
    schema_changes: tuple[SchemaChange, ...] = ()
    staged_rows: int | None = None  # None in a plan
    # cdc_apply: the batch is a change feed's full snapshot (its first read, or after a reset),
    # even an empty one; None in a plan, which shows the snapshot's steps as conditional
    snapshot: bool | None = None
    # cdc_apply: staging carries the change order (CHANGE_SEQ): a key may change more than once
    change_order: bool = False

    @property
    def names(self) -> list[str]:
        return self.schema.names if self.schema is not None else ["<source columns>"]

    @property
    def keys(self) -> list[str]:
        return list(self.load.sink.unique_key or ())


def finalize_lock(strategy: Strategy) -> str:
    """A full refresh truncates or swaps the target (the exclusive lock it needs, taken first);
    the other strategies write rows, as an UPDATE does."""
    return "access exclusive" if strategy is Strategy.FULL_REFRESH else "row exclusive"


def lock_steps(d: SetBasedDialect, job: FinalizeJob, exists: bool) -> list[Step]:
    """Serialise finalizes of one target, then lock the target before its catalog is re-read."""
    steps = [Step(d.advisory_lock(), (f"dpone:{job.target}",), note="finalize: one transaction")]
    if exists:
        steps.append(Step(d.lock_table(job.target, finalize_lock(job.load.sink.strategy))))
    return steps


def plan_finalize(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Every step of this finalize after the locks, in order."""
    steps = [
        Step(statement, note="schema change, in the finalize transaction")
        for change in job.schema_changes
        for statement in d.schema_change_ddl(job.target, change)
    ]
    if job.load.sink.strategy is Strategy.FULL_REFRESH:
        return steps + _full_refresh(d, job, facts)
    steps += _prepare_target(d, job, facts)
    if job.load.sink.strategy is Strategy.CDC_APPLY:
        from .finalize_changes import cdc_apply  # it builds on this module's merge

        return steps + cdc_apply(d, job, facts)
    planner = _STRATEGIES[job.load.sink.strategy]
    return steps + planner(d, job, facts)


def fillfactor(load: LoadSpec) -> int | None:
    """Merge targets dpone creates leave room on each page, so updates stay HOT (in place)."""
    return _MERGE_FILLFACTOR if load.sink.strategy in UPDATING else None


def _prepare_target(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    if not facts.exists:
        if job.schema is None:
            return [Step(f"-- create table {job.target} (<source columns>)")]
        table = target_schema(job.load, job.schema)
        return [
            Step(d.create_schema(job.target.schema), note="the target is created"),
            Step(
                d.create_table(
                    job.target,
                    table,
                    primary_key=target_primary_key(job.load, job.schema),
                    fillfactor=fillfactor(job.load),
                )
            ),
        ]
    return [
        Step(d.add_column_if_missing(job.target, c.name, d.native_type(c)), note="a managed column")
        for c in managed_columns(job.load)
    ]


def _full_refresh(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    if facts.swappable and not job.mapping and not job.schema_changes:
        steps = []
        constraint = None
        pk = job.schema.primary_key if job.schema is not None else ()
        if pk:
            constraint = f"{job.staging.name}_pk"
            steps.append(Step(d.add_primary_key(job.staging, pk, constraint)))
        if not facts.exists:
            steps.append(Step(d.create_schema(job.target.schema)))
        swap = d.swap_in(job.staging, job.target, constraint)
        steps += [Step(s, note="staging becomes the target" if i == 0 else "") for i, s in enumerate(swap)]
        return [*steps, Step(d.analyze(job.target))]
    return [
        Step(d.truncate(job.target), note="the target is not a plain identical table: its rows are replaced"),
        Step(d.insert_select(job.target, job.staging, job.names, job.mapping), name="inserted"),
    ]


def refuse_moved_keys(job: FinalizeJob) -> None:
    """A key column that changed type is routed to a new column (``on_type_change:
    new_column``) where the rows loaded before hold NULL: matched there, they would look new."""
    moved = {k: job.mapping[k] for k in job.keys if k in job.mapping}
    if moved:
        raise BadInputError(
            f"sink.unique_key: key column(s) {sorted(moved)} changed type and would be written to "
            f"{sorted(moved.values())} (schema_evolution.on_type_change: new_column), where the rows "
            "loaded before hold no key; change the target's key column by hand, or reload the target "
            "(a full refresh)"
        )


def _dedupe(d: SetBasedDialect, job: FinalizeJob, *, last_change: bool = False) -> list[Step]:
    """Fail on NULL keys; fail on duplicate keys or keep the last row per key (always for a
    change batch: ``last_change``, its rows in change order)."""
    keys = job.keys
    require_columns("sink.unique_key", keys, job.schema)
    refuse_moved_keys(job)

    def no_nulls(outcome: Outcome, _: Outcomes) -> None:
        nulls, sample = outcome.first
        if nulls:
            raise null_key_error(job.key, keys, nulls, sample or [])

    keep_last = last_change or job.load.sink.on_duplicate_keys == "keep_last"

    sink = CONNECTORS.get(job.load.sink.connector)
    can_keep_last = sink is None or "keep_last" in sink.duplicate_keys
    fix = "fix the source or set sink.on_duplicate_keys: keep_last" if can_keep_last else "fix the source"

    def no_duplicates(outcome: Outcome, _: Outcomes) -> None:
        if outcome.rows and not keep_last:
            sample = ", ".join(f"{dict(zip(keys, r[:-1], strict=True))} x{r[-1]}" for r in outcome.rows)
            raise DuplicateKeyError(
                f"{len(outcome.rows)}+ unique_key values occur more than once in this batch "
                f"(sample: {sample}); {fix}"
            )

    steps = [
        Step(d.null_keys(job.staging, keys), check=Check("on a NULL in a unique_key column", no_nulls)),
        Step(
            d.duplicate_keys(job.staging, keys),
            name="duplicates",
            check=None if keep_last else Check("on a unique_key value staged twice", no_duplicates),
        ),
    ]
    if keep_last:
        steps.append(
            Step(
                d.keep_last_per_key(job.staging, keys),
                name="duplicates_removed",
                when=Condition("the batch has duplicate keys", lambda o: bool(o["duplicates"].rows)),
            )
        )
    return steps


def _active(d: SetBasedDialect, load: LoadSpec) -> str:
    """Target rows (alias ``t``) that count as present: not already soft-deleted or closed."""
    found = active_column(load)
    if found is None:
        return ""
    name, present_when_true = found
    return f"t.{d.quote_ident(name)}" + ("" if present_when_true else " is null")


def _key_set(job: FinalizeJob) -> TableRef:
    """Where the source's full key set is: the batch itself for a full extract."""
    if job.load.source.incremental is None:
        return job.staging
    if job.key_set is None:  # the batch holds only changed rows: reconciling against it would delete the rest
        raise BadInputError("reconciliation of an incremental load needs the staged key set; none was staged")
    return job.key_set


def mass_delete_check(job: FinalizeJob, what: str) -> Check:
    """Judge a ``count_missing_keys`` answer: fail before any change when ``what`` (the deleting
    step, for the message) would delete more than ``reconciliation.max_delete_fraction``."""
    limit = job.load.reconciliation.max_delete_fraction

    def within_limit(outcome: Outcome, _: Outcomes) -> None:
        missing, total = outcome.first
        if total and missing / total > limit:
            raise MassDeleteError(
                f"{what} would delete {missing:,} of {total:,} rows of {job.target} "
                f"({missing / total:.1%}), above reconciliation.max_delete_fraction {limit:g}; nothing "
                "was changed. Check the source; if the deletes are real, raise the limit for one run"
            )
        log.info("%s: %s of %s target rows are gone from the source", what, missing, total)

    return Check(f"above max_delete_fraction {limit:g}, before any change", within_limit)


def _delete_guard(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Count the rows reconciliation would delete; fail before any change above the limit."""
    rec = job.load.reconciliation
    if rec.deletes == "none" or not facts.exists:
        return []
    query = d.count_missing_keys(job.target, _key_set(job), job.keys, job.mapping, _active(d, job.load))
    return [
        Step(query, note=f"reconciliation ({rec.deletes})", check=mass_delete_check(job, "reconciliation"))
    ]


def _deletes(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    rec = job.load.reconciliation
    if rec.deletes == "none" or not facts.exists:
        return []
    keys, active = job.keys, _active(d, job.load)
    if job.load.sink.strategy is Strategy.SCD2:
        n = SCD2_COLUMNS
        closing = {n["valid_to"]: "now()", n["is_current"]: "false"}
        statement = d.close_missing_keys(job.target, _key_set(job), keys, closing, active, job.mapping)
    elif rec.deletes == "soft":
        closing = {rec.soft_delete_column: "now()"}
        statement = d.close_missing_keys(job.target, _key_set(job), keys, closing, active, job.mapping)
    else:
        statement = d.delete_missing_keys(job.target, _key_set(job), keys, job.mapping)
    return [Step(statement, name="deleted")]


def _append(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Insert the batch. With ``sink.unique_key``: the key guards, then only the keys the target
    does not hold yet (a row the extract re-reads, a lookback's or xmin's, is never added
    twice); without it, the target's primary key, if any, skips the rows already there."""
    if not job.keys:
        statement = d.append_rows(job.target, job.staging, job.names, job.mapping, list(facts.primary_key))
        return [Step(statement, name="inserted")]
    steps = _dedupe(d, job)
    if not facts.exists:  # created in this transaction: every key is new
        return [
            *steps,
            Step(d.insert_select(job.target, job.staging, job.names, job.mapping), name="inserted"),
        ]
    return [
        *steps,
        Step(d.analyze(job.staging, job.keys), note="key statistics for the join with the target"),
        Step(
            d.merge_insert(job.target, job.staging, job.names, job.keys, job.mapping),
            name="inserted",
            note="rows whose unique_key the target holds already are skipped",
        ),
    ]


def _merge(
    d: SetBasedDialect,
    job: FinalizeJob,
    facts: TargetFacts,
    *,
    only_changed: bool = False,
    guards: bool = True,
    reconcile: bool = True,
) -> list[Step]:
    """Update matched keys, insert the others; ``guards=False`` when the caller ran the key
    guards (``_dedupe``) itself, before its own changes; ``reconcile=False`` when the caller
    applies deletes itself (a change feed's)."""
    steps = (_dedupe(d, job) if guards else []) + (_delete_guard(d, job, facts) if reconcile else [])
    if not facts.exists:  # created in this transaction: every row is new
        return [
            *steps,
            Step(d.insert_select(job.target, job.staging, job.names, job.mapping), name="inserted"),
        ]
    rec = job.load.reconciliation
    undelete = rec.soft_delete_column if rec.deletes == "soft" else None
    steps.append(Step(d.analyze(job.staging, job.keys), note="row count and key statistics for the joins"))
    update = d.merge_update(
        job.target,
        job.staging,
        job.names,
        job.keys,
        job.mapping,
        only_changed=only_changed,
        undelete=undelete,
    )
    if update:
        steps.append(Step(update, name="updated"))
    insert = Step(d.merge_insert(job.target, job.staging, job.names, job.keys, job.mapping), name="inserted")
    unique_target = frozenset(job.mapping.get(k, k) for k in job.keys) in facts.unique_keys
    if update and not only_changed and unique_target and rec.deletes == "none":
        staged = job.staged_rows

        def something_new(o: Outcomes) -> bool:
            merged = (
                None if staged is None else staged - count(o, "duplicates_removed") - count(o, LEFT_BATCH)
            )
            return merged is None or count(o, "updated") != merged

        insert = Step(
            insert.sql,
            name="inserted",
            when=Condition(
                "some staged key did not match a target row (every one updated: nothing is new)",
                something_new,
            ),
        )
    return [*steps, insert, *(_deletes(d, job, facts) if reconcile else [])]


def _snapshot_diff(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    return _merge(d, job, facts, only_changed=True)


def _scd2(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Close the current version of changed keys and open a new one; unchanged keys stay."""
    steps = _dedupe(d, job) + _delete_guard(d, job, facts)
    n, args = SCD2_COLUMNS, (job.target, job.staging, job.names, job.keys, job.mapping)
    if facts.exists:
        steps += [
            Step(d.analyze(job.staging, job.keys), note="row count and key statistics for the joins"),
            Step(d.scd2_close_changed(*args, n), name="closed"),
        ]
    return [*steps, Step(d.scd2_insert_versions(*args, n), name="inserted"), *_deletes(d, job, facts)]


def replace_predicate(d: SetBasedDialect, job: FinalizeJob) -> tuple[str, tuple[Any, ...]]:
    """The rows ``replace`` rewrites: the window (bounds as parameters) or the author's predicate."""
    spec = job.load.sink.replace
    assert spec is not None  # the manifest requires it for this strategy
    if spec.where:  # SQL from the manifest author, like a source query
        return f"({spec.where})", ()
    window = spec.window
    assert window is not None
    if job.schema is None:
        return "<replaced range>", (window.start, window.end)
    require_columns("sink.replace.window.column", [window.column], job.schema)
    if window.column in job.mapping:  # old rows hold the old column, new ones the new: no one delete
        raise BadInputError(
            f"sink.replace.window.column: '{window.column}' changed type and lands in "
            f"'{job.mapping[window.column]}' (schema_evolution.on_type_change: new_column); the window "
            "cannot be deleted exactly across both columns, and a partial delete would duplicate "
            "rows: migrate the target's column, or replace by 'where'"
        )
    return d.window_predicate(job.schema.column(window.column)), (window.start, window.end)


def _replace(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Delete the window (or predicate) from the target and insert the batch, which must fit it."""
    predicate, params = replace_predicate(d, job)

    def inside(outcome: Outcome, _: Outcomes) -> None:
        if outcome.first[0]:
            raise StagingMismatchError(
                f"{outcome.first[0]:,} staged row(s) fall outside sink.replace; the source must read "
                "only the replaced range (set source.window, or filter the query); the target is untouched"
            )

    def not_emptied(outcome: Outcome, _: Outcomes) -> None:
        if outcome.rowcount and not job.staged_rows and not job.load.sink.allow_empty:
            raise EmptySourceError(
                f"{job.key}: the source returned 0 rows and replace would delete {outcome.rowcount:,} "
                f"rows of {job.target} in the replaced range, leaving it empty; nothing was changed. If "
                "the range is really empty now, set sink.allow_empty: true for this load"
            )

    steps = [
        Step(
            d.count_outside(job.staging, predicate),
            params,
            check=Check("if a staged row is outside the replaced range", inside),
        )
    ]
    if facts.exists:
        empty = (
            None
            if job.load.sink.allow_empty
            else Check("if the batch is empty while the range holds rows (sink.allow_empty)", not_emptied)
        )
        steps.append(Step(d.delete_where(job.target, predicate), params, name="deleted", check=empty))
    return [*steps, Step(d.insert_select(job.target, job.staging, job.names, job.mapping), name="inserted")]


def _has_rows_in(leaf: int) -> Callable[[Outcomes], bool]:
    """Whether the per-leaf count found staged rows in the ``leaf``-th partition."""
    return lambda outcomes: bool(outcomes["per_leaf"].first[leaf + 1])


def _partition_replace(d: SetBasedDialect, job: FinalizeJob, facts: TargetFacts) -> list[Step]:
    """Rewrite every partition the batch touches: swap declarative partitions, else scoped delete."""
    columns = list(job.load.sink.partition_by or ())
    require_columns("sink.partition_by", columns, job.schema)
    if not facts.partitioned:
        steps = []
        if facts.exists:
            steps.append(Step(d.delete_matching_partitions(job.target, job.staging, columns), name="deleted"))
        return [
            *steps,
            Step(d.insert_select(job.target, job.staging, job.names, job.mapping), name="inserted"),
        ]
    if not facts.leaves:
        raise StagingMismatchError(f"{job.target} is partitioned but has no partitions; create them first")

    def all_placed(outcome: Outcome, _: Outcomes) -> None:
        total, *per_leaf = outcome.first
        if sum(per_leaf) != total:
            raise StagingMismatchError(
                f"{total - sum(per_leaf):,} staged row(s) fall in no partition of {job.target}; "
                "create the partition (or a default partition) first; the target is untouched"
            )

    steps = [
        Step(
            d.count_per_constraint(job.staging, [leaf.constraint for leaf in facts.leaves]),
            name="per_leaf",
            check=Check("if a staged row falls in no partition", all_placed),
        )
    ]
    for i, leaf in enumerate(facts.leaves):
        touched = Condition(f"the batch has rows in {leaf.table}", _has_rows_in(i))
        new = leaf.table.sibling(f"{leaf.table.name[:40]}__dpone_new")
        prepare, swap = d.replace_partition(leaf.parent, leaf.table, new, leaf.bound, leaf.constraint)
        steps.append(
            Step(d.drop_table(new), when=touched, note=f"partition {leaf.table} is rebuilt and swapped")
        )
        steps += [Step(s, when=touched) for s in prepare]
        insert = d.insert_select(new, job.staging, job.names, job.mapping, where=leaf.constraint)
        steps.append(Step(insert, name=f"leaf_{i}", when=touched))
        steps += [Step(s, when=touched) for s in swap]
    return steps


_STRATEGIES = {
    Strategy.INCREMENTAL_APPEND: _append,
    Strategy.INCREMENTAL_MERGE: _merge,
    Strategy.SNAPSHOT_DIFF: _snapshot_diff,
    Strategy.SCD2: _scd2,
    Strategy.REPLACE: _replace,
    Strategy.PARTITION_REPLACE: _partition_replace,
}
