"""What a manually triggered run asks for (the DAG's Trigger form params): a backfill of a
window, a full reload, or a state reset; and the load each of them runs. Pure: no Airflow.

- ``backfill`` re-reads ``from <= cursor < to`` of a table source into the target (merged,
  or replacing that window of an append target) and leaves the state as it is;
- ``full_reload`` reads the source from scratch (ignoring the stored watermark): a merge load
  merges it, an append load replaces the target atomically; the watermark read is stored;
- ``reset_state`` forgets the load's state, only when ``confirm`` repeats the pipeline name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from pydantic import ValidationError

from .connectors import CONNECTORS
from .errors import BadInputError
from .manifest import LoadSpec
from .strategies import IncrementalMode, Strategy

Mode = Literal["scheduled", "backfill", "full_reload", "reset_state"]
MODES: tuple[Mode, ...] = ("scheduled", "backfill", "full_reload", "reset_state")
PARAM = {
    "mode": "dpone_mode",
    "start": "dpone_from",
    "end": "dpone_to",
    "loads": "dpone_loads",
    "confirm": "dpone_confirm",
}
"""The DAG param that carries each field of the request."""


@dataclass(frozen=True)
class RunRequest:
    mode: Mode = "scheduled"
    start: str | None = None
    end: str | None = None
    loads: tuple[str, ...] = ()
    confirm: str | None = None

    def applies_to(self, load: str) -> bool:
        """Whether this load does what the request asks (no list: every load)."""
        return not self.loads or load in self.loads

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())}


def _text(params: dict[str, Any], field: str) -> str | None:
    value = params.get(PARAM[field])
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BadInputError(f"params.{PARAM[field]}: give a text value, not {type(value).__name__}")
    return str(value).strip()


def _ordered(start: str, end: str) -> bool | None:
    """``start < end`` when both are numbers or both ISO dates/timestamps; None otherwise."""
    for parse in (float, dt.datetime.fromisoformat):
        try:
            return parse(start) < parse(end)  # type: ignore[operator]
        except (TypeError, ValueError):
            continue
    return None


def run_request(params: dict[str, Any]) -> RunRequest:
    """The request the run's params make; a clear error naming the param for a bad one."""
    mode = params.get(PARAM["mode"]) or "scheduled"
    if mode not in MODES:
        raise BadInputError(f"params.{PARAM['mode']}: '{mode}' is not one of {', '.join(MODES)}")
    loads = params.get(PARAM["loads"]) or []
    if isinstance(loads, str):
        loads = [x.strip() for x in loads.split(",") if x.strip()]
    if not isinstance(loads, list) or not all(isinstance(x, str) for x in loads):
        raise BadInputError(f"params.{PARAM['loads']}: give a list of load names")
    request = RunRequest(
        cast(Mode, mode), _text(params, "start"), _text(params, "end"), tuple(loads), _text(params, "confirm")
    )
    if request.mode == "backfill":
        if request.start is None or request.end is None:
            raise BadInputError(
                f"params.{PARAM['start']}/{PARAM['end']}: a backfill needs both ends of its window"
            )
        if _ordered(request.start, request.end) is False:
            raise BadInputError(
                f"params.{PARAM['end']}: '{request.end}' is not after {PARAM['start']} '{request.start}' "
                "(the window is from <= cursor < to)"
            )
    elif request.mode == "scheduled" and request.loads:
        raise BadInputError(
            f"params.{PARAM['loads']}: choose a mode for these loads; a scheduled run runs every load"
        )
    elif request.start or request.end:
        raise BadInputError(
            f"params.{PARAM['start']}/{PARAM['end']}: only a backfill takes a window, not '{mode}'"
        )
    return request


def backfill_load(
    load: LoadSpec, start: str, end: str, watermark: str | None = None, ends_by_watermark: bool = False
) -> LoadSpec:
    """``load`` re-reading ``start <= cursor < end``: a merge merges the window, an append
    replaces that window of the target; no state (the watermark stays where it is) and no
    reconciliation deletes (a window is not the whole source). ``watermark``: the stored cursor
    value, and ``ends_by_watermark`` whether ``end`` is at or before it, compared as the
    cursor's type by the caller: an append's window must (rows past the watermark are the next
    run's: a window reaching them would load them twice)."""
    inc, source = load.source.incremental, load.source
    if inc is None or inc.mode is not IncrementalMode.CURSOR or source.kind != "table":
        raise BadInputError(
            f"load '{load.name}': a backfill re-reads a window of a table source's cursor column; "
            f"this load reads a {source.kind} {'in full' if inc is None else f'by {inc.mode.value}'}"
        )
    if not CONNECTORS[source.connector].window:
        raise BadInputError(f"load '{load.name}': connector '{source.connector}' cannot read a fixed window")
    if load.reconciliation.deletes == "soft":
        raise BadInputError(
            f"load '{load.name}': a backfill runs without reconciliation, so rows it re-reads would "
            "stay marked deleted; run a full_reload instead"
        )
    window = {"column": inc.cursor, "start": start, "end": end}
    strategy = load.sink.strategy
    sink = load.sink.model_dump(by_alias=True, exclude_unset=True)
    if strategy is Strategy.INCREMENTAL_APPEND:
        if Strategy.REPLACE not in CONNECTORS[load.sink.connector].sink_strategies:
            raise BadInputError(
                f"load '{load.name}': an append backfill replaces its window; connector "
                f"'{load.sink.connector}' cannot replace a window"
            )
        if watermark is None or not ends_by_watermark:
            raise BadInputError(
                f"params.{PARAM['end']}: an append load's backfill must end at or before its stored "
                f"watermark ({watermark if watermark is not None else 'none stored'}): the rows past "
                "it are the next scheduled run's, and reading them here would load them twice (give a "
                "time with its UTC offset when the cursor is a timestamp with time zone)"
            )
        sink.update(strategy=Strategy.REPLACE.value, replace={"window": window})
    elif strategy is not Strategy.INCREMENTAL_MERGE:
        raise BadInputError(
            f"load '{load.name}': a backfill merges or replaces a window; '{strategy.value}' cannot"
        )
    data = load.model_dump(by_alias=True, exclude_unset=True)
    data["source"] = {
        **source.model_dump(by_alias=True, exclude_unset=True),
        "incremental": None,
        "window": window,
    }
    data["sink"] = sink
    data["reconciliation"] = {"deletes": "none"}
    try:
        return LoadSpec.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(
            f"load '{load.name}': this load cannot be backfilled: {exc.errors()[0]['msg']}"
        ) from None


_RELOADABLE = frozenset({Strategy.FULL_REFRESH, Strategy.INCREMENTAL_APPEND, Strategy.INCREMENTAL_MERGE})


def reload_load(load: LoadSpec) -> LoadSpec:
    """``load`` as a full reload: the run reads from scratch (it ignores the stored watermark)
    and stores the watermark it read. A merge merges every row (its keys, duplicate guards and
    deletes as on any run); an append replaces the target atomically (``full_refresh``, the
    cursor kept: the manifest rule that a full refresh takes no incremental guards a run that
    starts *from the watermark*; this one does not, so the spec is copied, not revalidated).
    Loads that write part of a target (replace, partition_replace) or keep history (scd2,
    snapshot_diff) are refused: a reload would lose what they keep."""
    strategy = load.sink.strategy
    if strategy not in _RELOADABLE:
        raise BadInputError(
            f"load '{load.name}': a full reload applies to full_refresh, incremental_append and "
            f"incremental_merge loads; '{strategy.value}' keeps rows (history, other slices) a "
            "reload would lose"
        )
    inc = load.source.incremental
    if inc is not None and inc.mode is IncrementalMode.OFFSETS:
        raise BadInputError(
            f"load '{load.name}': a topic keeps only its retention; a full reload would replace the "
            "target with the messages left in it"
        )
    if inc is None or strategy is Strategy.FULL_REFRESH:
        return load  # already a full read each run
    source = load.source.model_copy(update={"incremental": inc.model_copy(update={"chunk": None})})
    if strategy is Strategy.INCREMENTAL_MERGE:
        return load.model_copy(update={"source": source})
    if load.source.kind in ("endpoint", "resource"):
        raise BadInputError(
            f"load '{load.name}': an API source without a watermark reads its default window, not "
            "everything: replacing the target with it would lose the rest; backfill or merge instead"
        )
    if not load.sink.table or Strategy.FULL_REFRESH not in CONNECTORS[load.sink.connector].sink_strategies:
        raise BadInputError(
            f"load '{load.name}': a full reload of an append load replaces a table; connector "
            f"'{load.sink.connector}' ({load.sink.target}) cannot"
        )
    sink = load.sink.model_copy(update={"strategy": Strategy.FULL_REFRESH})
    return load.model_copy(update={"source": source, "sink": sink})
