"""The cursor value a dpone load stored, for sensors that wait for rows past it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contracts.errors import BadInputError


def stored_cursor(state: Mapping[str, Any], pipeline: str, load: str, column: str | None) -> str | None:
    """The cursor value ``load`` of ``pipeline`` stored (None: nothing stored yet, every row is
    new), read from the backend the manifest's ``state`` mapping names; a state that is not a
    cursor on ``column`` is an error naming what is stored."""
    from pydantic import ValidationError

    from ..contracts.manifest import StateSpec
    from ..contracts.state import CursorState
    from ..state import build_state_backend

    try:
        spec = StateSpec.model_validate(dict(state))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "state"
        raise BadInputError(f"state: {where}: {first['msg']}") from None
    backend = build_state_backend(spec)
    stored = backend.get(pipeline, load)
    if stored is None:
        return None
    if not isinstance(stored, CursorState):
        raise BadInputError(
            f"{backend.where(pipeline, load)} holds {stored.kind} state; this sensor waits past a "
            f"cursor state (a load with incremental mode cursor)"
        )
    if stored.cursor != column:
        raise BadInputError(
            f"{backend.where(pipeline, load)} is a cursor on '{stored.cursor}', not on the "
            f"sensor's column '{column}'"
        )
    return stored.value


def check_sensor_arguments(
    sensor: str, sql: str | None, parameters: Any, watermark: Mapping[str, Any]
) -> None:
    """A watermark sensor's two modes, exclusive: ``sql`` (with ``parameters``), or ``table``,
    ``column`` and ``load`` (``pipeline`` and ``state`` optional); anything else is an error
    naming what was given or is missing."""
    if sql is not None:
        given = sorted(k for k, v in watermark.items() if v is not None)
        if given:
            raise BadInputError(
                f"{sensor}: give either sql (a query answering true) or table, column and load "
                f"(rows past the load's watermark), not both; got sql and {given}"
            )
        return
    missing = [k for k in ("table", "column", "load") if not watermark.get(k)]
    if missing:
        raise BadInputError(
            f"{sensor}: give sql (a query answering true), or table, column and load "
            f"(rows past the load's watermark); missing {missing}"
        )
    if parameters is not None:
        raise BadInputError(f"{sensor}: parameters go with sql")


def condition_arguments(sensor: Any) -> dict[str, Any]:
    """A two-mode sensor's check arguments: its ``sql`` and ``parameters``, or its ``table`` and
    ``column`` with the load's stored cursor as the watermark (read now)."""
    watermark = None
    if sensor.sql is None:
        watermark = stored_cursor(
            sensor.state, sensor.pipeline or sensor.dag_id, str(sensor.load), sensor.column
        )
    return {
        "sql": sensor.sql,
        "parameters": list(sensor.parameters or ()),
        "table": sensor.table,
        "column": sensor.column,
        "watermark": watermark,
    }
