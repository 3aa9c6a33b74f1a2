"""Runs asked for from the Airflow UI: the Trigger form's params (backfill a window, full
reload, reset state with a confirmation) and what a load task does with them."""

from __future__ import annotations

from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.manifest import LoadSpec, StateSpec
from ..contracts.run_request import MODES, PARAM, RunRequest, backfill_load, reload_load
from ..contracts.state import CursorState, StateRecord, state_mismatch


def run_params() -> dict[str, Any]:
    """The Trigger form's fields for a dpone DAG: ``DAG(..., params=run_params())``."""
    from airflow.sdk import Param

    text = ["null", "string"]
    return {
        PARAM["mode"]: Param(
            "scheduled",
            enum=list(MODES),
            title="dpone: run mode",
            description="scheduled: the normal incremental run. backfill: re-read the window "
            "below into the target, state unchanged. full_reload: read everything (merged, or "
            "replacing the target of an append load), store the new watermark. reset_state: forget the watermark (needs the "
            "confirmation below); nothing is loaded.",
        ),
        PARAM["start"]: Param(
            None,
            type=text,
            title="dpone: backfill from",
            description="First cursor value re-read (inclusive), e.g. 2026-01-01",
        ),
        PARAM["end"]: Param(
            None,
            type=text,
            title="dpone: backfill to",
            description="End of the window (exclusive), e.g. 2026-02-01",
        ),
        PARAM["loads"]: Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="dpone: loads",
            description="The loads (task ids) the mode applies to; the others do nothing this run. Empty: every load.",
        ),
        PARAM["confirm"]: Param(
            None,
            type=text,
            title="dpone: confirm state reset",
            description="For reset_state: type the pipeline (DAG) name",
        ),
    }


def check_selection(request: RunRequest, known: set[str]) -> None:
    """A load named in the request that this DAG does not have fails every task, so a typo
    never makes a run that skipped everything look successful."""
    unknown = sorted(set(request.loads) - known)
    if unknown:
        raise BadInputError(
            f"params.{PARAM['loads']}: no load {', '.join(map(repr, unknown))} here; loads: {', '.join(sorted(known))}"
        )


def requested_load(load: LoadSpec, request: RunRequest, stored: StateRecord | None = None) -> LoadSpec:
    """The load a backfill or a full reload runs (``load`` itself for a scheduled run);
    ``stored``: the load's state record (an append's backfill ends at its watermark, compared
    as the cursor's type, as the extract compares it)."""
    if request.mode == "backfill":
        assert request.start is not None and request.end is not None  # run_request checked it
        problem = state_mismatch(load, stored)
        if problem:
            raise BadInputError(f"load '{load.name}': the stored state does not fit this load: {problem}")
        watermark = stored.value if isinstance(stored, CursorState) else None
        ends_by = watermark is not None and _ends_by(stored, request.end)
        return backfill_load(load, request.start, request.end, watermark, ends_by)
    if request.mode == "full_reload":
        return reload_load(load)
    return load


def _ends_by(stored: Any, end: str) -> bool:
    """``end <= stored.value`` as values of the cursor's type (False when they do not compare:
    a naive time against an aware one, text that is not a number...)."""
    from ..contracts.table import CanonicalType
    from ..sql.extract_plan import cursor_after

    try:
        return not cursor_after(CanonicalType(stored.value_type), end, str(stored.value))
    except (ValueError, TypeError, BadInputError):
        return False


def reset_state(pipeline: str, load: LoadSpec, state: StateSpec, request: RunRequest) -> dict[str, Any]:
    """Forget the load's state (and an unfinished run's checkpoint) when ``confirm`` repeats
    the pipeline name; what was done, for XCom and the log."""
    from ..contracts.state import RESUME_SUFFIX
    from ..state import build_state_backend

    if request.confirm != pipeline:
        raise BadInputError(
            f"params.{PARAM['confirm']}: resetting state needs the pipeline name '{pipeline}' typed "
            "as confirmation; nothing was reset"
        )
    backend = build_state_backend(state)
    existed = backend.reset(pipeline, load.name)
    backend.reset(pipeline, load.name + RESUME_SUFFIX)
    return {
        "pipeline": pipeline,
        "load": load.name,
        "status": "state_reset",
        "existed": existed,
        "request": request.to_dict(),
    }
