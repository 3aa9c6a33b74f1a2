"""Table schemas with canonical column types.

A column keeps both its canonical type (what every sink understands) and, when known, the
native type of the database it came from, so a same-dialect sink can recreate it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class CanonicalType(str, Enum):
    BOOLEAN = "boolean"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    DECIMAL = "decimal"  # precision / scale on the column; None means unbounded
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # length on the column; None means unbounded text
    BINARY = "binary"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"  # without time zone
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    UUID = "uuid"
    JSON = "json"
    ARRAY = "array"  # element type in ``element``
    UNKNOWN = "unknown"  # carried as text by sinks of another dialect


@dataclass(frozen=True)
class Column:
    name: str
    type: CanonicalType
    nullable: bool = True
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    element: CanonicalType | None = None
    native_type: str | None = None
    dialect: str | None = None


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)
