"""The finalize result a run reports, from what each planned step answered. Pure."""

from __future__ import annotations

from typing import Any

from ..contracts.strategies import Strategy
from .finalize import FinalizeJob, TargetFacts
from .steps import Outcomes, count


def finalize_result(job: FinalizeJob, facts: TargetFacts, outcomes: Outcomes) -> dict[str, Any]:
    """Method and row counts of the finalize that produced ``outcomes``."""
    strategy = job.load.sink.strategy
    staged = job.staged_rows or 0
    inserted = count(outcomes, "inserted")
    if strategy is Strategy.FULL_REFRESH:
        if "inserted" in outcomes:
            return {"method": "truncate_insert", "rows_inserted": inserted}
        return {"method": "swap", "rows_inserted": None}
    if strategy is Strategy.INCREMENTAL_APPEND:
        if not job.keys:
            return {"method": "insert", "rows_inserted": inserted}
        removed = count(outcomes, "duplicates_removed")
        return {
            "method": "insert_new_keys",
            "duplicates_removed": removed,
            "rows_inserted": inserted,
            "rows_already_loaded": staged - removed - inserted,
        }
    if strategy in (Strategy.REPLACE, Strategy.PARTITION_REPLACE) and "per_leaf" not in outcomes:
        method = "delete_insert" if strategy is Strategy.REPLACE else "scoped_delete_insert"
        return {"method": method, "rows_deleted": count(outcomes, "deleted"), "rows_inserted": inserted}
    if strategy is Strategy.PARTITION_REPLACE:
        touched = [i for i in range(len(facts.leaves)) if f"leaf_{i}" in outcomes]
        return {
            "method": "partition_swap",
            "partitions_replaced": [str(facts.leaves[i].table) for i in touched],
            "rows_inserted": sum(count(outcomes, f"leaf_{i}") for i in touched),
        }
    removed = count(outcomes, "duplicates_removed")
    if strategy is Strategy.CDC_APPLY:
        return {
            "method": "cdc_apply",
            "duplicates_removed": removed,
            "rows_inserted": inserted,
            "rows_updated": count(outcomes, "updated"),
            "rows_deleted": count(outcomes, "deleted") + count(outcomes, "deleted_by_snapshot"),
        }
    deletes = _deletes(job, outcomes)
    if strategy is Strategy.SCD2:
        return {
            "method": "scd2",
            "duplicates_removed": removed,
            "rows_closed_changed": count(outcomes, "closed"),
            "rows_inserted": inserted,
            "rows_unchanged": staged - removed - inserted,
            **deletes,
        }
    result: dict[str, Any] = {"duplicates_removed": removed}
    if not facts.exists:
        return {**result, "method": "insert", "rows_updated": 0, "rows_inserted": inserted}
    updated = count(outcomes, "updated")
    result["rows_updated"] = updated
    if "inserted" not in outcomes:  # every staged row matched one: nothing was new
        return {**result, "method": "update", "rows_inserted": 0}
    only_changed = strategy is Strategy.SNAPSHOT_DIFF
    result.update(method="diff" if only_changed else "update_insert", rows_inserted=inserted)
    if only_changed:
        result["rows_unchanged"] = staged - removed - updated - inserted
    return {**result, **deletes}


def _deletes(job: FinalizeJob, outcomes: Outcomes) -> dict[str, Any]:
    if "deleted" not in outcomes:
        return {}
    deleted = count(outcomes, "deleted")
    if job.load.sink.strategy is Strategy.SCD2:
        return {"rows_closed_deleted": deleted, "deletes": "close_version"}
    return {"rows_deleted": deleted, "deletes": job.load.reconciliation.deletes}
