"""Partitioned parallel loads: the manifest's ``parallel`` option and the partitions a plan
splits a table source into. Pure: no I/O, no drivers.

A partitioned load runs as Airflow tasks: one plan task fixes the window and the key ranges, one
mapped extract task per range stages its rows as files in object storage, and one finalize task
verifies every partition's manifest and loads them together, then commits state
(docs/parallel.md). What crosses a task boundary is a :class:`PartitionTask` as JSON: bounds and
names, never rows and never secrets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field, field_validator

from .errors import BadInputError
from .spec_base import Strict
from .state import StateRecord

MAX_PARTITIONS = 64
PAGES = "ctid"  # PostgreSQL's row address: page ranges (refused: rows move between pages)


class ParallelSpec(Strict):
    """``parallel: {partitions, by}``: split a table source into ``partitions`` ranges of the
    primary-key column ``by``, each extracted by its own mapped Airflow task."""

    partitions: int = Field(ge=1, le=MAX_PARTITIONS)
    by: str

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        if value == PAGES:
            raise ValueError(
                "'ctid' page ranges are not offered: an updated row moves to another page, so "
                "partitions read one after another can miss or repeat it; give a primary-key column"
            )
        if not value.strip():
            raise ValueError("give the primary-key column to split by")
        return value


@dataclass(frozen=True)
class PartitionRange:
    """One partition of a table: rows whose ``by`` is in ``[lower, upper)`` (a missing bound is
    open), plus the rows whose ``by`` is NULL when ``nulls``. The ranges of one plan cover every
    value exactly once: the first is open below, the last open above."""

    index: int
    count: int
    by: str
    lower: str | None = None
    upper: str | None = None
    nulls: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "partition") -> PartitionRange:
        """A range read back from JSON; ``BadInputError`` names the first wrong field."""
        if not isinstance(data, dict) or set(data) != {"index", "count", "by", "lower", "upper", "nulls"}:
            raise BadInputError(f"{where}: needs exactly index, count, by, lower, upper and nulls")
        index, count = data["index"], data["count"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, count)):
            raise BadInputError(f"{where}: index and count must be integers")
        if not 0 <= index < count:
            raise BadInputError(f"{where}: index {index} is not within the {count} partitions")
        for key in ("lower", "upper"):
            if data[key] is not None and not isinstance(data[key], str):
                raise BadInputError(f"{where}.{key}: {data[key]!r} is not a text bound")
        if not isinstance(data["by"], str) or not isinstance(data["nulls"], bool):
            raise BadInputError(f"{where}: 'by' must be a column name and 'nulls' true or false")
        return cls(index, count, data["by"], data["lower"], data["upper"], data["nulls"])

    def describe(self) -> str:
        """The range for logs and reports: ``id in [100, 200)``."""
        low = "-inf" if self.lower is None else self.lower
        high = "+inf" if self.upper is None else self.upper
        nulls = " or null" if self.nulls else ""
        return f"{self.by} in [{low}, {high}){nulls}"


@dataclass(frozen=True)
class PartitionTask:
    """What one mapped extract task is given: its range, where its files go, and the plan it
    belongs to (the window and state every partition shares). ``noop``: the run does not load
    (a manual run that did not select this load, or a state reset); the tasks pass it along."""

    plan_id: str
    planned_at: str  # ISO 8601 UTC: plans of one load are ordered by it
    range: PartitionRange
    directory: str  # the plan's directory URI; the partition writes under p<index>/
    state_before: dict[str, Any] | None  # what the state backend held when the plan was made
    start: dict[str, Any] | None  # the state the window starts from (None: from scratch)
    candidate: dict[str, Any] | None  # the state the finalize commits
    window: dict[str, Any]  # the plan's window details (the report's source window)
    cursor_upper: str | None = None  # the cursor window's upper bound, fixed by the plan
    pinned: bool = False  # the cursor upper bound above applies (a cursor load)
    noop: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["range"] = self.range.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "partition") -> PartitionTask:
        if not isinstance(data, dict):
            raise BadInputError(f"{where}: not a partition task (got {type(data).__name__})")
        known = {f for f in cls.__dataclass_fields__}
        unexpected = sorted(set(data) - known)
        if unexpected or not {"plan_id", "planned_at", "range", "directory"} <= set(data):
            raise BadInputError(f"{where}: not a partition task (keys {sorted(data)})")
        return cls(**{**data, "range": PartitionRange.from_dict(data["range"], f"{where}.range")})


@dataclass(frozen=True)
class PartitionResult:
    """What one mapped extract task returns (its XCom): where its manifest is, and its counts."""

    task: PartitionTask
    manifest_uri: str | None  # None for a noop partition
    rows: int = 0
    files: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "task": self.task.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "partition result") -> PartitionResult:
        if not isinstance(data, dict) or "task" not in data or "manifest_uri" not in data:
            raise BadInputError(f"{where}: not a partition result (got {type(data).__name__})")
        task = PartitionTask.from_dict(data["task"], f"{where}.task")
        counts = {k: data.get(k, 0) for k in ("rows", "files", "bytes")}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts.values()):
            raise BadInputError(f"{where}: rows, files and bytes must be non-negative integers")
        return cls(task, data["manifest_uri"], **counts)


@dataclass(frozen=True)
class PartitionPlan:
    """What a source's partition plan measured, in one snapshot: the ranges, the window every
    partition reads (its details, and the cursor's upper bound when ``pinned``) and the state
    candidate the finalize commits."""

    ranges: tuple[PartitionRange, ...]
    candidate: StateRecord | None
    details: dict[str, Any]
    cursor_upper: str | None = None
    pinned: bool = False
