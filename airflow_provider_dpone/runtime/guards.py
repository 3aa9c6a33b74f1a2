"""Guards that stop a load which would otherwise report success on wrong data.

Each runs before anything is written and fails with an error that names what disagrees and
how to recover (docs/crash-safety.md, "What we refuse to do silently"):

- state says rows were loaded, but the target is missing (an incremental run would rebuild it
  from the delta): ``TargetStateMismatchError``, or a full extract by manifest choice;
- no state, but an append target already holds rows (everything would load twice):
  ``StateMissingError``, or the watermark taken from the target by manifest choice;
- a full refresh read nothing while the target holds rows: ``EmptySourceError``, and the
  ``max_delete_fraction`` guard when the manifest sets it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from ..contracts.capabilities import rereads
from ..contracts.errors import (
    BadInputError,
    EmptySourceError,
    MassDeleteError,
    NullKeyError,
    StateError,
    StateMissingError,
    TargetStateMismatchError,
)
from ..contracts.manifest import LoadSpec
from ..contracts.state import CursorState, StateRecord, fix_hint, state_mismatch, state_to_dict
from ..contracts.strategies import Strategy
from .protocols import LoadContext, StagedData, TargetProbe

log = logging.getLogger("airflow_provider_dpone.runtime")


def state_key(backend: Any, pipeline: str, load: str) -> str:
    """Where ``backend`` keeps a load's state, as a user finds it (Variable key or table row)."""
    where = getattr(backend, "where", None)
    return where(pipeline, load) if where is not None else f"the state of {pipeline}.{load}"


def _reset_hint(ctx: LoadContext) -> str:
    return f"`dpone state reset <manifest> --load {ctx.load.name}`"


def missing_target_error(
    ctx: LoadContext, *, during_load: bool = False, empty: bool = False
) -> TargetStateMismatchError:
    """The error for a target that stored state says holds rows, but is missing or empty."""
    target = ctx.load.sink.target
    when = (
        "disappeared while this run was loading"
        if during_load
        else "is empty (truncated, or re-created, e.g. by a migration in a new database)"
        if empty
        else "does not exist (dropped, restored elsewhere, or the sink points at another database)"
    )
    return TargetStateMismatchError(
        f"{ctx.key}: the stored state says rows were loaded into {target}, but {target} {when}; an "
        "incremental run would rebuild it from the delta alone. Nothing was written. Recover with "
        f"{_reset_hint(ctx)} (the next run reads the source in full) or a full-refresh run, or set "
        "source.incremental.on_target_missing: full_extract to do that automatically"
    )


def starting_state(
    ctx: LoadContext, sink: Any, backend: Any, before: StateRecord | None
) -> tuple[LoadContext, StateRecord | None, str | None]:
    """Where a run extracts from: the stored state, checked against the load (its mode and
    cursor) and against the target (``agree_state_and_target``). The run and ``dpone plan``
    both start here, so the plan shows what the run would do."""
    key = state_key(backend, ctx.pipeline, ctx.load.name)
    problem = state_mismatch(ctx.load, before)
    if problem:
        raise StateError(
            f"{ctx.key}: the state at {key} does not fit this load: {problem}. {fix_hint(ctx.load.name)}"
        )
    return agree_state_and_target(ctx, sink, before, key)


def agree_state_and_target(
    ctx: LoadContext, sink: Any, before: StateRecord | None, key: str
) -> tuple[LoadContext, StateRecord | None, str | None]:
    """Check the stored state against the target before extracting.

    Returns the context (``expects_target`` set when the run extracts from state), the state
    to extract from, and a warning for the report when a manifest option changed the plan.
    """
    inc = ctx.load.source.incremental
    if inc is None or not isinstance(sink, TargetProbe):
        return ctx, before, None
    if before is None and (ctx.load.sink.strategy is not Strategy.INCREMENTAL_APPEND or inc.initial_value):
        # a keyed strategy, which converges on a full read; or the manifest says where to start
        return ctx, None, None
    rows = sink.target_rows(ctx)
    if before is not None:
        # An empty table counts as lost too when the state proves rows were loaded (a cursor
        # value comes from a row) and nothing of dpone's could have emptied it (no
        # reconciliation deletes; a table, not a topic, which empties itself by retention).
        emptied = (
            rows == 0
            and isinstance(before, CursorState)
            and before.value is not None
            and ctx.load.reconciliation.deletes == "none"
            and bool(ctx.load.sink.table)
        )
        if rows is not None and not emptied:
            return dataclasses.replace(ctx, expects_target=True), before, None
        if inc.on_target_missing != "full_extract":
            raise missing_target_error(ctx, empty=emptied)
        note = (
            f"target {ctx.load.sink.target} is {'empty' if emptied else 'missing'} although {key} holds "
            f"{json.dumps(state_to_dict(before))}; reading the source in full "
            "(on_target_missing: full_extract)"
        )
        log.warning("dpone %s: %s", ctx.key, note)
        return ctx, None, note
    if not rows:
        return ctx, None, None  # a first load
    if inc.on_state_missing == "from_target" and inc.cursor:
        found = sink.target_watermark(ctx, inc.cursor)
        if found is not None:
            value, value_type = found
            note = (
                f"no state in {key} but {ctx.load.sink.target} holds rows; continuing after "
                f"max({inc.cursor}) = {value} read from the target (on_state_missing: from_target)"
            )
            log.warning("dpone %s: %s", ctx.key, note)
            record = CursorState(cursor=inc.cursor, value=value, value_type=value_type)
            return dataclasses.replace(ctx, expects_target=True), record, note
    raise StateMissingError(
        f"{ctx.key}: no state is stored in {key} (never set, or lost: a dropped state table, a "
        f"deleted or null value), but the incremental_append target {ctx.load.sink.target} already "
        "holds rows: reading from no state would append every source row again. Nothing was "
        f"written. Recover with `dpone state set <manifest> --load {ctx.load.name} --value <the "
        "last loaded cursor value>`, or set source.incremental.on_state_missing: from_target to "
        "continue after the target's max(cursor), or empty the target to reload it"
    )


def check_change_feed(load: LoadSpec, details: dict[str, Any]) -> None:
    """A change feed has one row per primary key of its table: ``sink.unique_key`` must be that
    key, or changes would be applied to the wrong rows (a coarser key) or fail (another one)."""
    feed_key = details.get("primary_key")
    if feed_key is None or load.sink.strategy is not Strategy.CDC_APPLY:
        return
    if sorted(load.sink.unique_key or ()) != sorted(feed_key):
        raise BadInputError(
            f"sink.unique_key: {list(load.sink.unique_key or ())} must be the source table's primary key "
            f"{list(feed_key)}: a change feed has one row per primary key"
        )


def check_full_refresh(ctx: LoadContext, sink: Any, staged: StagedData) -> None:
    """A full refresh may not empty a target (unless ``sink.allow_empty``), nor shrink it by
    more than ``reconciliation.max_delete_fraction``, the limit reconciliation deletes have."""
    load = ctx.load
    if load.sink.strategy is not Strategy.FULL_REFRESH or not isinstance(sink, TargetProbe):
        return
    target = load.sink.target
    if staged.rows == 0 and not load.sink.allow_empty and sink.target_rows(ctx):
        raise EmptySourceError(
            f"{ctx.key}: the source returned 0 rows and the full refresh would empty {target}, "
            "which holds rows; nothing was changed. If the source is really empty, set "
            "sink.allow_empty: true for this load"
        )
    limit = load.reconciliation.max_delete_fraction
    if limit >= 1 or (staged.rows == 0 and load.sink.allow_empty):
        return
    total = sink.target_rows(ctx, exact=True)
    if not total or staged.rows >= total:
        return
    gone = total - staged.rows
    if gone / total > limit:
        raise MassDeleteError(
            f"{ctx.key}: the full refresh would shrink {target} from {total:,} to {staged.rows:,} rows "
            f"({gone / total:.1%} fewer), above reconciliation.max_delete_fraction {limit:g}; nothing "
            "was changed. Check the source (a partial or failed extract?); if the rows are really "
            "gone, raise reconciliation.max_delete_fraction for one run (1 turns the check off)"
        )


def null_key_error(load: str, keys: list[str], count: int, sample: list[Any]) -> NullKeyError:
    """The error for staged rows with a NULL in a ``unique_key`` column (shared by the SQL sinks)."""
    shown = "; ".join(str(s) for s in sample[:5])
    return NullKeyError(
        f"{load}: {count:,} staged row(s) have NULL in unique_key {keys} (sample keys: {shown}); a "
        "NULL key matches no target row, so every run would insert them again. Nothing was changed. "
        "Filter or fix them in the source, or choose a unique_key that is never NULL"
    )


def skipped_keys_warning(load: LoadSpec, result: dict[str, Any]) -> str | None:
    """A keyed append skipped rows whose key its target holds although its extract re-reads
    nothing: a retry of a batch that landed, or keys that repeat across runs (then the rows
    were new and are not in the target: ``unique_key`` promises one row per key)."""
    skipped = result.get("rows_already_loaded")
    if not skipped or rereads(load):
        return None
    return (
        f"{skipped:,} staged row(s) were not appended: the target already holds their sink.unique_key "
        "and this load re-reads nothing. A retry of a batch that landed explains it; otherwise the "
        "source repeats keys across runs, and those rows are not in the target (remove unique_key "
        "to append every row, or merge them with incremental_merge)"
    )
