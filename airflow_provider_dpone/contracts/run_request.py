"""What a manually triggered run asks for (the DAG's Trigger form params): a backfill of a
window, a full reload, or a state reset; and the load each of them runs. Pure: no Airflow.

- ``backfill`` re-reads ``from <= cursor < to`` of a table source into the target (merged,
  or replacing that window of an append target) and leaves the state as it is;
- ``full_reload`` reads the source from scratch (ignoring the stored watermark), replaces the
  target atomically and stores the watermark it read;
- ``reset_state`` forgets the load's state, only when ``confirm`` repeats the pipeline name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

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
    elif request.start or request.end:
        raise BadInputError(
            f"params.{PARAM['start']}/{PARAM['end']}: only a backfill takes a window, not '{mode}'"
        )
    return request


def backfill_load(load: LoadSpec, start: str, end: str) -> LoadSpec:
    """``load`` re-reading ``start <= cursor < end``: a merge merges the window, an append
    replaces that window of the target; no state (the watermark stays where it is) and no
    reconciliation deletes (a window is not the whole source)."""
    inc, source = load.source.incremental, load.source
    if inc is None or inc.mode is not IncrementalMode.CURSOR or source.kind != "table":
        raise BadInputError(
            f"load '{load.name}': a backfill re-reads a window of a table source's cursor column; "
            f"this load reads a {source.kind} {'in full' if inc is None else f'by {inc.mode.value}'}"
        )
    if not CONNECTORS[source.connector].window:
        raise BadInputError(f"load '{load.name}': connector '{source.connector}' cannot read a fixed window")
    window = {"column": inc.cursor, "start": start, "end": end}
    strategy = load.sink.strategy
    sink = load.sink.model_dump(by_alias=True, exclude_unset=True)
    if strategy is Strategy.INCREMENTAL_APPEND:
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
    return LoadSpec.model_validate(data)


def reload_load(load: LoadSpec) -> LoadSpec:
    """``load`` as a full reload: read from scratch (the run ignores the stored watermark) and
    replace the target atomically, keeping the cursor so the watermark read is stored. The
    manifest rule that a full refresh takes no incremental guards a run that starts *from the
    watermark*; this one does not, so the spec is copied, not revalidated."""
    if not load.sink.table or Strategy.FULL_REFRESH not in CONNECTORS[load.sink.connector].sink_strategies:
        raise BadInputError(
            f"load '{load.name}': a full reload replaces a table; connector '{load.sink.connector}' "
            f"({load.sink.target}) cannot"
        )
    inc = load.source.incremental
    if inc is not None and inc.mode is IncrementalMode.OFFSETS:
        raise BadInputError(
            f"load '{load.name}': a topic keeps only its retention; a full reload would replace the "
            "target with the messages left in it"
        )
    source = load.source
    if inc is not None:
        source = source.model_copy(update={"incremental": inc.model_copy(update={"chunk": None})})
    sink = load.sink.model_copy(
        update={"strategy": Strategy.FULL_REFRESH, "replace": None, "partition_by": None}
    )
    deletes = load.reconciliation.model_copy(update={"deletes": "none"})
    return load.model_copy(update={"source": source, "sink": sink, "reconciliation": deletes})
