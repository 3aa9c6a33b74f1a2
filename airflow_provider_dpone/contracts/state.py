"""Typed state records. Each serialises to a JSON-safe dict tagged with ``kind``."""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import StateError
from .strategies import IncrementalMode
from .table import CanonicalType

if TYPE_CHECKING:
    from .manifest import LoadSpec


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


@dataclass(frozen=True)
class ChangeVersionState:
    """SQL Server Change Tracking: the database version the last extract read up to."""

    kind: ClassVar[str] = "change_tracking"
    version: int


@dataclass(frozen=True)
class CdcState:
    """A CDC position: the capture ``stream`` (SQL Server: the capture instance; PostgreSQL: the
    replication slot) and the last LSN applied, as text (SQL Server: ``0x`` and 20 hex digits;
    PostgreSQL: ``X/Y``); PostgreSQL's ``publication`` too."""

    kind: ClassVar[str] = "cdc"
    stream: str
    lsn: str
    publication: str | None = None


@dataclass(frozen=True)
class PlanState:
    """The last partition plan a partitioned load loaded (``plan_id``, planned at ``planned_at``,
    ISO 8601 UTC), under ``<load>.__plan__``, committed with its data: a finalize of that plan
    again loads nothing, and one of an older plan is refused (it would put older rows over
    newer). A state reset keeps it: it is about the target's rows, not the next window."""

    kind: ClassVar[str] = "partition_plan"
    plan_id: str
    planned_at: str


# SQL Server's binary(10) LSN as text, or PostgreSQL's pg_lsn
_LSN = re.compile(r"^(0x[0-9A-Fa-f]{20}|[0-9A-F]{1,8}/[0-9A-F]{1,8})$")

# Not "#": a key travels in URL paths (the Task SDK sets Variables through the API server).
RESUME_SUFFIX = ".__resume__"
PLAN_SUFFIX = ".__plan__"

StateRecord = CursorState | XminState | OffsetsState | ResumeState | ChangeVersionState | CdcState | PlanState
_KINDS: dict[str, type[StateRecord]] = {
    CursorState.kind: CursorState,
    XminState.kind: XminState,
    OffsetsState.kind: OffsetsState,
    ResumeState.kind: ResumeState,
    ChangeVersionState.kind: ChangeVersionState,
    CdcState.kind: CdcState,
    PlanState.kind: PlanState,
}


def state_to_dict(record: StateRecord) -> dict[str, Any]:
    return {"kind": record.kind, **asdict(record)}


XMIN_MAX = 2**64 - 1  # an xmin position is a 64-bit transaction id
_SHOWN = 200  # characters of a stored value an error message quotes
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _text(name: str, value: Any, nullable: bool = False) -> str | None:
    """Why field ``name`` is not text (or null, when ``nullable``), or None when it is."""
    if isinstance(value, str) or (nullable and value is None):
        return None
    return f"'{name}' must be text{' or null' if nullable else ''}, not {type(value).__name__}"


def _count(name: str, value: Any, limit: int | None = None) -> str | None:
    """Why field ``name`` is not a non-negative integer (at most ``limit``), or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"'{name}' must be an integer, not {type(value).__name__}"
    if value < 0 or (limit is not None and value > limit):
        return f"'{name}' must be between 0 and {'2**64-1' if limit == XMIN_MAX else limit}, not {value}"
    return None


def _field_problem(record: StateRecord) -> str | None:
    """Why a record built from stored JSON holds a field of the wrong type, or None."""
    if isinstance(record, CursorState):
        problem = _text("cursor", record.cursor) or _text("value", record.value, nullable=True)
        problem = problem or _text("value_type", record.value_type)
        if problem is None and record.value_type not in CanonicalType._value2member_map_:
            problem = f"unknown value_type {record.value_type!r}"
        return problem
    if isinstance(record, XminState):
        return _count("xmin", record.xmin, XMIN_MAX)
    if isinstance(record, OffsetsState):
        offsets = record.offsets
        if not isinstance(offsets, dict) or any(
            not (isinstance(k, str) and k.isascii() and k.isdigit()) or _count(k, v)
            for k, v in offsets.items()
        ):
            return "'offsets' must map partition numbers (as text) to non-negative integer offsets"
        return _text("topic", record.topic)
    if isinstance(record, ChangeVersionState):
        return _count("version", record.version)
    if isinstance(record, CdcState):
        problem = _text("stream", record.stream) or _text("lsn", record.lsn)
        problem = problem or _text("publication", record.publication, nullable=True)
        if problem is None and not _LSN.match(record.lsn):
            problem = f"'lsn' {record.lsn!r} is not an LSN (0x and 20 hex digits, or X/Y)"
        return problem
    if isinstance(record, PlanState):
        return _text("plan_id", record.plan_id) or _text("planned_at", record.planned_at)
    if not isinstance(record.checkpoint, dict):
        return f"'checkpoint' must be an object, not a JSON {_json_type(record.checkpoint)}"
    return _text("run_id", record.run_id) or _count("staged_rows", record.staged_rows)


def state_from_dict(data: Any) -> StateRecord | None:
    """The record a stored JSON value holds; None for JSON null. Raises ``StateError`` naming
    the first problem: not an object, no or unknown ``kind``, a missing, unexpected or
    wrongly typed field."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise StateError(f"a JSON {_json_type(data)}, not an object with a 'kind'")
    if "kind" not in data:
        raise StateError(f"no 'kind' field; allowed kinds: {sorted(_KINDS)}")
    kind = data["kind"]
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise StateError(f"unknown kind {kind!r}; allowed: {sorted(_KINDS)}")
    values = {k: v for k, v in data.items() if k != "kind"}
    unexpected = sorted(set(values) - {f.name for f in fields(cls)})
    missing = [
        f.name
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if unexpected or missing:
        shape = f"unexpected field {unexpected[0]!r}" if unexpected else f"missing field {missing[0]!r}"
        raise StateError(f"malformed {kind} state: {shape}")
    record = cls(**values)
    problem = _field_problem(record)
    if problem:
        raise StateError(f"malformed {kind} state: {problem}")
    return record


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def decode_state(
    raw: str | None, where: str, load: str, envelope: tuple[str, ...] = ()
) -> StateRecord | None:
    """The record stored as JSON text ``raw`` under ``where`` (the key, for messages).

    Nothing, blank text or JSON ``null`` is no state (None). ``envelope`` names keys a backend
    stores around the record (the Variable backend's ``run_id``); they are dropped unless the
    record has a field of that name. Anything else unreadable raises ``StateError`` naming the
    key, the stored value (shortened) and the ``dpone state`` commands that fix it.
    """
    if raw is None or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _unreadable(where, load, raw, f"not valid JSON: {exc}") from None
    if isinstance(data, dict) and envelope:
        cls = _KINDS.get(data["kind"]) if isinstance(data.get("kind"), str) else None
        own = {f.name for f in fields(cls)} if cls else set()
        data = {k: v for k, v in data.items() if k not in envelope or k in own}
    try:
        return state_from_dict(data)
    except StateError as exc:
        raise _unreadable(where, load, raw, exc.message) from None


def fix_hint(load: str) -> str:
    """How a user repairs a load's stored state, for messages."""
    load = load.removesuffix(RESUME_SUFFIX).removesuffix(PLAN_SUFFIX)
    return (
        f"Set a good value with `dpone state set PATH --load {load} --value ...`, or clear it "
        f"with `dpone state reset PATH --load {load}` (the next run then reads the source in full)"
    )


def _unreadable(where: str, load: str, raw: str, reason: str) -> StateError:
    return StateError(
        f"stored state at {where} is unreadable ({reason}); stored value: {_shorten(raw)}. {fix_hint(load)}"
    )


_MODE_KIND = {
    IncrementalMode.CURSOR: "cursor",
    IncrementalMode.XMIN: "xmin",
    IncrementalMode.OFFSETS: "offsets",
    IncrementalMode.CHANGE_TRACKING: "change_tracking",
    IncrementalMode.CDC: "cdc",
}


def state_mismatch(load: LoadSpec, record: StateRecord | None) -> str | None:
    """Why ``record`` does not fit ``load``'s incremental mode and cursor, or None if it does.

    No record fits every load; a load without ``source.incremental`` ignores state (None).
    The message names what is stored and what the load expects.
    """
    inc = load.source.incremental
    if record is None or inc is None:
        return None
    stored = _shorten(json.dumps(state_to_dict(record), default=str))
    if isinstance(record, ResumeState):
        return (
            f"a resume checkpoint is stored under load '{load.name}' itself, where its state "
            f"belongs; checkpoints live under '{load.name}{RESUME_SUFFIX}'; stored: {stored}"
        )
    kind = _MODE_KIND.get(inc.mode)
    if kind is None:
        return f"load '{load.name}' uses {inc.mode.value} mode, which keeps no {record.kind} state; stored: {stored}"
    if record.kind != kind:
        expected = f"a cursor state on '{inc.cursor}'" if kind == "cursor" else f"an {kind} state"
        article = "an" if record.kind in ("xmin", "offsets") else "a"
        return (
            f"{article} {record.kind} state does not fit load '{load.name}', which uses "
            f"{inc.mode.value} mode ({expected}); stored: {stored}"
        )
    if isinstance(record, CursorState) and record.cursor != inc.cursor:
        return (
            f"a cursor state on '{record.cursor}' does not fit load '{load.name}', which uses "
            f"cursor '{inc.cursor}'; stored: {stored}"
        )
    return None
