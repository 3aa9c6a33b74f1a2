"""Table schemas with canonical column types.

A column keeps both its canonical type (what every sink understands) and, when known, the
native type of the database it came from, so a same-dialect sink can recreate it exactly.
"""

from __future__ import annotations

import re
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


_TYPE_NAME = re.compile(r"^\s*(\w+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")
TYPE_NAMES = tuple(t.value for t in CanonicalType if t not in (CanonicalType.ARRAY, CanonicalType.UNKNOWN))


def column_from_type_name(name: str, text: str) -> Column:
    """A column from a manifest type name: ``int64``, ``decimal(12,2)``, ``string(40)``.

    Columns are nullable: a message may lack the field.
    """
    match = _TYPE_NAME.match(text)
    if not match or match.group(1) not in TYPE_NAMES:
        raise ValueError(f"unknown type '{text}'; allowed: {', '.join(TYPE_NAMES)} (decimal(p,s), string(n))")
    type_ = CanonicalType(match.group(1))
    first = int(match.group(2)) if match.group(2) else None
    second = int(match.group(3)) if match.group(3) else None
    if type_ is CanonicalType.DECIMAL:
        return Column(name, type_, True, precision=first, scale=second or 0 if first else None)
    if type_ is CanonicalType.STRING:
        return Column(name, type_, True, length=first)
    if first is not None:
        raise ValueError(f"type '{text}' takes no arguments")
    return Column(name, type_, True)
