"""Typed state records. Each serialises to a JSON-safe dict tagged with ``kind``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from .errors import StateError


@dataclass(frozen=True)
class CursorState:
    """High-water mark of a cursor column; ``value`` is the text form of the last upper bound."""

    kind: ClassVar[str] = "cursor"
    cursor: str
    value: str | None
    value_type: str = "string"  # canonical type name of the cursor column


@dataclass(frozen=True)
class XminState:
    """Postgres XMin position: the 64-bit snapshot xmin seen when the last extract started."""

    kind: ClassVar[str] = "xmin"
    xmin: int


@dataclass(frozen=True)
class OffsetsState:
    """Kafka positions: for each partition of ``topic``, the next offset to read."""

    kind: ClassVar[str] = "offsets"
    topic: str
    offsets: dict[str, int]  # partition number (as text, JSON keys are text) -> next offset

    def next_offset(self, partition: int) -> int | None:
        value = self.offsets.get(str(partition))
        return None if value is None else int(value)


@dataclass(frozen=True)
class ResumeState:
    """Where a run's resumable extract stopped: the checkpoint after its last staged batch.

    Kept under ``<load>.__resume__`` while a run is unfinished; only a retry of the same run
    (``run_id``) resumes from it, and only while its staging still exists.
    """

    kind: ClassVar[str] = "resume"
    run_id: str
    checkpoint: dict[str, Any]
    staged_rows: int = 0


# Not "#": a key travels in URL paths (the Task SDK sets Variables through the API server).
RESUME_SUFFIX = ".__resume__"

StateRecord = CursorState | XminState | OffsetsState | ResumeState
_KINDS: dict[str, type] = {
    CursorState.kind: CursorState,
    XminState.kind: XminState,
    OffsetsState.kind: OffsetsState,
    ResumeState.kind: ResumeState,
}


def state_to_dict(record: StateRecord) -> dict[str, Any]:
    return {"kind": record.kind, **asdict(record)}


def state_from_dict(data: dict[str, Any] | None) -> StateRecord | None:
    if data is None:
        return None
    kind = data.get("kind")
    cls = _KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise StateError(f"stored state has unknown kind {kind!r}; allowed: {sorted(_KINDS)}")
    fields = {k: v for k, v in data.items() if k != "kind"}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise StateError(f"stored {kind} state is malformed: {exc}") from None
