"""ClickHouse finalize, planned as ordered steps (``sql.steps``): key guards on staging, then
an atomic table swap, partition attach, lightweight delete + attach, or REPLACE PARTITION.

ClickHouse has no multi-statement transactions: each partition lands whole or not at all, and
a retry of the run converges (the same staging partitions are attached or replaced again).
The sink runs these steps; ``dpone plan`` renders the same ones. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contracts.errors import BadInputError, DuplicateKeyError, UnsupportedError
from ..contracts.strategies import CHANGE_SEQ, Strategy
from ..runtime.guards import null_key_error
from .clickhouse import ClickHouseDialect
from .clickhouse_changes import ClickHouseChanges
from .finalize import FinalizeJob, mass_delete_check
from .steps import Check, Condition, Outcome, Outcomes, Step
from .targets import data_schema

PLANNED = "<partition id>"  # a plan's placeholder: the staged partitions are known after staging


@dataclass(frozen=True)
class ClickHouseFacts:
    """The target and the staged batch, as finalize finds them."""

    exists: bool
    engine: str = ""
    partition_key: str = ""
    comment: str = ""  # the target's own comment, kept across an exchange
    partitions: tuple[str, ...] | None = None  # staged partition ids; None in a plan


def _key_guards(d: ClickHouseDialect, job: FinalizeJob, *, ordered: bool = False) -> list[Step]:
    """NULL keys fail; so does a key staged twice, unless the batch carries its order
    (``ordered``: a change batch whose last change per key is applied)."""
    keys = job.keys
    if not keys:
        return []
    if job.load.sink.on_duplicate_keys != "fail":
        raise UnsupportedError(
            "sink.on_duplicate_keys: only 'fail' is supported by clickhouse (no row order to keep the last by)"
        )

    def no_nulls(outcome: Outcome, _: Outcomes) -> None:
        nulls, sample = outcome.first
        if nulls:
            raise null_key_error(job.key, keys, int(nulls), list(sample))

    def no_duplicates(outcome: Outcome, _: Outcomes) -> None:
        found, sample = outcome.first
        if found:
            shown = ", ".join(str(tuple(s) if isinstance(s, tuple | list) else s) for s in sample)
            raise DuplicateKeyError(
                f"{found} key(s) of unique_key {keys} occur more than once in the batch "
                f"(e.g. {shown}); target untouched. ClickHouse has no row order to keep the last by: "
                "deduplicate in the source query"
            )

    nulls = Step(d.null_keys(job.staging, keys), check=Check("on a NULL in a unique_key column", no_nulls))
    if ordered:
        return [nulls]
    return [
        nulls,
        Step(
            d.duplicate_keys(job.staging, keys),
            check=Check("on a unique_key value staged twice", no_duplicates),
        ),
    ]


def _each_partition(facts: ClickHouseFacts, render: Any) -> list[Step]:
    """One step per staged partition (in a plan, one templated step)."""
    ids = facts.partitions if facts.partitions is not None else (PLANNED,)
    note = "for each partition of the staging table" if facts.partitions is None else ""
    return [Step(render(pid), name=f"partition:{pid}", note=note) for pid in ids]


def _cdc_apply(d: ClickHouseDialect, job: FinalizeJob, facts: ClickHouseFacts) -> list[Step]:
    """``cdc_apply`` (``sql.clickhouse_changes``): guards, counts, deletes, then inserts."""
    changes, keys = ClickHouseChanges(d), job.keys
    ordered = job.change_order or (job.schema is not None and job.schema.has(CHANGE_SEQ))
    steps = _key_guards(d, job, ordered=ordered)
    target, staging = job.target, job.staging
    counted = Check("counted before any change", lambda _o, _all: None)
    data = data_schema(job.schema) if job.schema is not None else None
    names = data.names if data is not None else ["<source columns>"]
    insert = Step(
        changes.insert_last(target, staging, names, keys, ordered, job.mapping),
        name="inserted",
        note="the last change of each key, but deletes",
    )
    if not facts.exists:
        if data is None:
            raise BadInputError("cdc_apply cannot plan the creation of a target without the source's columns")
        partition_by = job.load.sink.partition_by or ()
        create = d.create_table(target, d.as_stored(data), order_by=keys, partition_by=partition_by)
        return [
            *steps,
            Step(changes.measure(None, staging, keys, ordered), name="changes", check=counted),
            Step(d.create_database(target.schema), note="the target is created from the batch's columns"),
            Step(create),
            insert,
        ]
    snapshot = Condition("the batch is a full snapshot, which holds every key", lambda _: bool(job.snapshot))
    return [
        *steps,
        Step(changes.measure(target, staging, keys, ordered, job.mapping), name="changes", check=counted),
        Step(
            changes.count_missing_keys(target, staging, keys, job.mapping),
            name="snapshot_missing",
            when=snapshot,
            check=mass_delete_check(job, "the full snapshot"),
        ),
        Step(
            changes.delete_missing_keys(target, staging, keys, job.mapping),
            name="deleted_by_snapshot",
            when=snapshot,
        ),
        Step(
            changes.delete_changed_keys(target, staging, keys, job.mapping),
            note="every key the batch changes",
        ),
        insert,
    ]


def plan_clickhouse_finalize(d: ClickHouseDialect, job: FinalizeJob, facts: ClickHouseFacts) -> list[Step]:
    """Every step of this finalize, in order."""
    target, staging = job.target, job.staging
    if job.load.sink.strategy is Strategy.CDC_APPLY:
        return _cdc_apply(d, job, facts)
    steps = _key_guards(d, job)
    if not facts.exists:
        return [
            *steps,
            Step(d.create_database(target.schema), note="the target is created from staging"),
            Step(d.rename_table(staging, target)),
            Step(d.modify_comment(target, ""), note="the staging label is dropped"),
        ]
    strategy = job.load.sink.strategy
    if strategy is Strategy.FULL_REFRESH:
        return [
            *steps,
            Step(d.exchange_tables(staging, target), note="atomic swap"),
            Step(d.modify_comment(target, facts.comment), note="the target keeps its own comment"),
        ]
    if strategy is Strategy.INCREMENTAL_APPEND:
        if job.keys:  # the batch's rows whose key the target holds leave staging before the attach
            steps += [
                Step(
                    d.count_matching_keys(staging, target, job.keys),
                    name="already_loaded",
                    note="staged keys the target holds already (skipped)",
                    check=Check("counted before they leave staging", lambda _o, _all: None),
                ),
                Step(d.delete_matching_keys(staging, target, job.keys), note="rows of keys already loaded"),
            ]
        return steps + _each_partition(facts, lambda pid: d.attach_partition_from(target, pid, staging))
    if strategy is Strategy.INCREMENTAL_MERGE:
        if not facts.engine.startswith("Replacing"):
            steps.append(Step(d.delete_matching_keys(target, staging, job.keys), note="rows of staged keys"))
        return steps + _each_partition(facts, lambda pid: d.attach_partition_from(target, pid, staging))
    if strategy is Strategy.PARTITION_REPLACE:
        wanted = ", ".join(job.load.sink.partition_by or ())
        if not facts.partition_key or facts.partition_key.replace("`", "").strip("()") != wanted:
            raise BadInputError(
                f"sink.partition_by: target {target} is partitioned by ({facts.partition_key or 'nothing'}), "
                f"not ({wanted}); REPLACE PARTITION needs the same partition key"
            )
        return steps + _each_partition(facts, lambda pid: d.replace_partition_from(target, pid, staging))
    raise UnsupportedError(f"sink.strategy: '{strategy.value}' is not supported by the clickhouse sink")


def clickhouse_result(job: FinalizeJob, facts: ClickHouseFacts, outcomes: Outcomes) -> dict[str, Any]:
    """Method and partitions of the finalize that produced ``outcomes``."""
    result: dict[str, Any] = {"target": str(job.target), "rows_inserted": job.staged_rows}
    if job.load.sink.strategy is Strategy.CDC_APPLY:
        deletes, held, new = (
            (int(n) for n in outcomes["changes"].first) if "changes" in outcomes else (0, 0, 0)
        )
        gone = outcomes["snapshot_missing"].first[0] if "snapshot_missing" in outcomes else 0
        return {
            **result,
            "method": "cdc_apply" if facts.exists else "cdc_apply_created",
            "rows_inserted": new,
            "rows_updated": held,
            "rows_deleted": deletes + int(gone),
        }
    partitions = [name.split(":", 1)[1] for name in outcomes if name.startswith("partition:")]
    if not facts.exists:
        return {**result, "method": "rename", "created": True}
    strategy = job.load.sink.strategy
    if strategy is Strategy.FULL_REFRESH:
        return {**result, "method": "exchange"}
    if strategy is Strategy.INCREMENTAL_APPEND:
        if "already_loaded" not in outcomes:
            return {**result, "method": "attach_partitions", "partitions": partitions}
        skipped = int(outcomes["already_loaded"].first[0])
        return {
            **result,
            "method": "attach_new_keys",
            "partitions": partitions,
            "rows_inserted": (job.staged_rows or 0) - skipped,
            "rows_already_loaded": skipped,
        }
    if strategy is Strategy.PARTITION_REPLACE:
        return {**result, "method": "replace_partition", "partitions_replaced": partitions}
    method = "replacing_merge_tree" if facts.engine.startswith("Replacing") else "delete_insert"
    return {**result, "method": method, "partitions": partitions}
