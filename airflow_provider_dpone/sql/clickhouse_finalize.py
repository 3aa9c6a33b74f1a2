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
from ..contracts.strategies import Strategy
from ..runtime.guards import null_key_error
from .clickhouse import ClickHouseDialect
from .finalize import FinalizeJob
from .steps import Check, Outcome, Outcomes, Step

PLANNED = "<partition id>"  # a plan's placeholder: the staged partitions are known after staging


@dataclass(frozen=True)
class ClickHouseFacts:
    """The target and the staged batch, as finalize finds them."""

    exists: bool
    engine: str = ""
    partition_key: str = ""
    comment: str = ""  # the target's own comment, kept across an exchange
    partitions: tuple[str, ...] | None = None  # staged partition ids; None in a plan


def _key_guards(d: ClickHouseDialect, job: FinalizeJob) -> list[Step]:
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

    return [
        Step(d.null_keys(job.staging, keys), check=Check("on a NULL in a unique_key column", no_nulls)),
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


def plan_clickhouse_finalize(d: ClickHouseDialect, job: FinalizeJob, facts: ClickHouseFacts) -> list[Step]:
    """Every step of this finalize, in order."""
    target, staging = job.target, job.staging
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
    partitions = [name.split(":", 1)[1] for name in outcomes if name.startswith("partition:")]
    if not facts.exists:
        return {**result, "method": "rename", "created": True}
    strategy = job.load.sink.strategy
    if strategy is Strategy.FULL_REFRESH:
        return {**result, "method": "exchange"}
    if strategy is Strategy.INCREMENTAL_APPEND:
        return {**result, "method": "attach_partitions", "partitions": partitions}
    if strategy is Strategy.PARTITION_REPLACE:
        return {**result, "method": "replace_partition", "partitions_replaced": partitions}
    method = "replacing_merge_tree" if facts.engine.startswith("Replacing") else "delete_insert"
    return {**result, "method": method, "partitions": partitions}
