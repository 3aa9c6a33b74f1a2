"""State backends: Airflow Variables and a state table."""

from __future__ import annotations

import json
from typing import Any

from ..contracts.errors import StateError
from ..contracts.manifest import StateSpec
from ..contracts.state import decode_state, state_to_dict


def build_state_backend(spec: StateSpec, *, standalone: bool = False) -> Any:
    """The backend a manifest asks for; drivers are imported only here. ``standalone``: the
    state table's hook is its connector's standalone engine (the command line)."""
    if spec.backend == "table":
        from .table import TableStateBackend

        return TableStateBackend(
            conn_id=spec.conn_id or "", table=spec.table, connector=spec.connector, standalone=standalone
        )
    from .variable import VariableStateBackend

    return VariableStateBackend()


def listed(raw: str | None, where: str, load: str, envelope: tuple[str, ...] = ()) -> dict[str, Any]:
    """How ``state show`` lists a stored value: ``state`` is its JSON (the raw text when it is
    not JSON) without the ``envelope`` keys, which are listed beside it; ``error`` is added
    when the value is not a readable state record."""
    out: dict[str, Any] = dict.fromkeys(envelope)
    try:
        record = decode_state(raw, where, load, envelope)
    except StateError as exc:
        out["error"] = exc.message
        record = None
    try:
        state = json.loads(raw) if raw and raw.strip() else None
    except ValueError:
        return {"state": raw, **out}
    if isinstance(state, dict):
        own = () if record is None else tuple(state_to_dict(record))
        for key in envelope:
            if key not in own and key in state:
                out[key] = state.pop(key)
    return {"state": state, **out}
