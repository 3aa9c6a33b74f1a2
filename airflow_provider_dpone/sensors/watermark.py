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
