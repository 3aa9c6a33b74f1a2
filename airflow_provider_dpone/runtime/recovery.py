"""Rolling forward a state commit a crash lost between the data's commit and the state's: the
sink journals the new state inside its finalize transaction, and the next run (or try) finds it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from ..contracts.state import StateRecord, state_from_dict, state_to_dict
from .protocols import JournalingSink, LoadContext

if TYPE_CHECKING:
    from .engine import LoadRuntime

log = logging.getLogger("airflow_provider_dpone.runtime")


def plain_state(record: StateRecord | None) -> dict[str, Any] | None:
    """State as the JSON the journal stores, for comparison."""
    return None if record is None else json.loads(json.dumps(state_to_dict(record), default=str))


def recover_state(ctx: LoadContext, parts: LoadRuntime, current: StateRecord | None) -> StateRecord | None:
    """Roll forward a state commit lost after its data committed (a crash between the two).

    The sink journals the new state inside its finalize transaction when the state backend is
    elsewhere. If the backend still holds that run's state-before, the commit was lost and is
    replayed now, so the batch is not loaded a second time; if it holds something else (a
    ``dpone state reset`` or ``set``), the operator's choice wins and the journal is dropped.
    """
    sink = parts.sink
    if not isinstance(sink, JournalingSink):
        return current
    pending = sink.pending_journal(ctx)
    if pending is None:
        return current
    now = plain_state(current)
    if now == pending["state_before"] and now != pending["state_after"]:
        recovered = state_from_dict(pending["state_after"])
        assert recovered is not None
        log.warning(
            "dpone %s: run %s committed its data but not its state (killed in between); "
            "committing state %s now",
            ctx.key,
            pending["run_id"],
            pending["state_after"],
        )
        parts.state.commit(ctx.pipeline, ctx.load.name, recovered, pending["run_id"])
        current = recovered
    elif now != pending["state_after"]:
        log.warning(
            "dpone %s: state was changed after run %s (%s, not its %s); keeping it",
            ctx.key,
            pending["run_id"],
            now,
            pending["state_after"],
        )
    sink.acknowledge_journal(ctx, pending["run_id"])
    return current
