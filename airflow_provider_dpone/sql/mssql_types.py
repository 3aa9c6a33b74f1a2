"""SQL Server's types and the canonical ones, both ways. Pure: parses and renders type names.

A column read from SQL Server keeps its native type (with its collation, for character types:
``nvarchar(50) collate Latin1_General_CI_AS``) so a SQL Server target recreates it exactly,
and gets the canonical type every other sink understands. Types dpone cannot carry
faithfully (spatial, hierarchyid, sql_variant, CLR user types) are refused, naming the column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..contracts.errors import UnsupportedError
from ..contracts.table import CanonicalType, Column, TableSchema

DIALECT = "mssql"
UNBOUNDED_DECIMAL = (38, 10)  # where a numeric without precision lands; wider values fail the insert
MAX_DECIMAL_PRECISION = 38
MAX_NVARCHAR = 4000  # above this an nvarchar is nvarchar(max)
MAX_VARBINARY = 8000
KEY_NVARCHAR = 450  # 900 bytes: the key size limit of a clustered index
KEY_VARBINARY = 900

CHARACTER = frozenset({"char", "varchar", "nchar", "nvarchar"})
BINARY = frozenset({"binary", "varbinary"})
ROWVERSION = frozenset({"rowversion", "timestamp"})  # ``timestamp`` is SQL Server's old name for it
TEMPORAL = frozenset({"date", "datetime", "smalldatetime", "datetime2", "datetimeoffset", "time"})

# Types with no faithful canonical form: cast them in a source query instead.
REFUSED: dict[str, str] = {
    "geometry": "STAsText() (WKT) or STAsBinary() (WKB)",
    "geography": "STAsText() (WKT) or STAsBinary() (WKB)",
    "hierarchyid": "ToString()",
    "sql_variant": "cast(... as nvarchar(4000)) or the base type you expect",
}

_SIMPLE: dict[str, CanonicalType] = {
    "bit": CanonicalType.BOOLEAN,
    "tinyint": CanonicalType.INT16,  # 0..255 fits int16; there is no unsigned canonical type
    "smallint": CanonicalType.INT16,
    "int": CanonicalType.INT32,
    "bigint": CanonicalType.INT64,
    "real": CanonicalType.FLOAT32,
    "date": CanonicalType.DATE,
    "time": CanonicalType.TIME,
    "datetime": CanonicalType.TIMESTAMP,
    "smalldatetime": CanonicalType.TIMESTAMP,
    "datetime2": CanonicalType.TIMESTAMP,
    "datetimeoffset": CanonicalType.TIMESTAMPTZ,
    "uniqueidentifier": CanonicalType.UUID,
    "xml": CanonicalType.STRING,
    "text": CanonicalType.STRING,
    "ntext": CanonicalType.STRING,
    "image": CanonicalType.BINARY,
    "rowversion": CanonicalType.BINARY,
    "timestamp": CanonicalType.BINARY,
    "json": CanonicalType.JSON,  # SQL Server 2025's native json
}
_MONEY = {"money": (19, 4), "smallmoney": (10, 4)}

# Storage a SQL Server table gets for a column of a type it cannot (or should not) hold as is.
_STORED_AS = {
    "rowversion": "binary(8)",  # a rowversion column cannot be written; its value can
    "timestamp": "binary(8)",
    "xml": "nvarchar(max)",  # xml cannot be compared (snapshot_diff, scd2); its text can
    "text": "varchar(max)",  # deprecated large types: the (max) types replace them
    "ntext": "nvarchar(max)",
    "image": "varbinary(max)",
}

_TO_NATIVE: dict[CanonicalType, str] = {
    CanonicalType.BOOLEAN: "bit",
    CanonicalType.INT16: "smallint",
    CanonicalType.INT32: "int",
    CanonicalType.INT64: "bigint",
    CanonicalType.FLOAT32: "real",
    CanonicalType.FLOAT64: "float",
    CanonicalType.BINARY: "varbinary(max)",
    CanonicalType.DATE: "date",
    CanonicalType.TIME: "time(7)",
    CanonicalType.TIMESTAMP: "datetime2(7)",
    CanonicalType.TIMESTAMPTZ: "datetimeoffset(7)",
    CanonicalType.INTERVAL: "nvarchar(100)",  # no interval type: its text form
    CanonicalType.UUID: "uniqueidentifier",
    CanonicalType.JSON: "nvarchar(max)",
    CanonicalType.ARRAY: "nvarchar(max)",  # as JSON text
    CanonicalType.UNKNOWN: "nvarchar(max)",
}

_NATIVE = re.compile(
    r"^\s*(?P<base>[a-z][a-z0-9_ ]*?)\s*(?:\(\s*(?P<args>[^)]*)\))?"
    r"(?:\s+collate\s+(?P<collation>[A-Za-z0-9_]+))?\s*$",
    re.IGNORECASE,
)


def split_native(native: str) -> tuple[str, list[str], str | None]:
    """(base type in lower case, its arguments, collation) of a native type name."""
    m = _NATIVE.match(native)
    if not m:
        raise UnsupportedError(f"cannot read the SQL Server type {native!r}")
    args = [a.strip().lower() for a in m["args"].split(",")] if m["args"] else []
    return " ".join(m["base"].lower().split()), args, m["collation"]


def refusal(column: str, base: str) -> UnsupportedError:
    """The error for a column of a type dpone does not carry."""
    how = REFUSED.get(base, "a cast to a standard type")
    return UnsupportedError(
        f"column '{column}' is {base}, which dpone cannot carry faithfully; select it converted "
        f"in a source query ({column} via {how}) or leave the column out"
    )


def canonical_from_native(
    native: str, column: str = "?"
) -> tuple[CanonicalType, int | None, int | None, int | None]:
    """(type, precision, scale, length) of a SQL Server type name such as ``decimal(12,2)``,
    ``nvarchar(max)`` or ``datetime2(3)``; ``UnsupportedError`` naming ``column`` for a
    refused type."""
    base, args, _ = split_native(native)
    if base in REFUSED:
        raise refusal(column, base)
    if base in _SIMPLE:
        return _SIMPLE[base], None, None, None
    if base in _MONEY:
        precision, scale = _MONEY[base]
        return CanonicalType.DECIMAL, precision, scale, None
    if base in ("decimal", "numeric"):
        nums = [int(a) for a in args]
        precision = nums[0] if nums else 18  # SQL Server's default precision and scale
        return CanonicalType.DECIMAL, precision, (nums[1] if len(nums) > 1 else 0), None
    if base == "float":
        bits = int(args[0]) if args else 53
        return (CanonicalType.FLOAT32 if bits <= 24 else CanonicalType.FLOAT64), None, None, None
    if base in CHARACTER:
        length = None if not args or args[0] == "max" else int(args[0])
        return CanonicalType.STRING, None, None, length
    if base in BINARY:
        return CanonicalType.BINARY, None, None, None
    return CanonicalType.UNKNOWN, None, None, None


def native_from_catalog(
    type_name: str, max_length: int, precision: int, scale: int, collation: str | None
) -> str:
    """The type as SQL Server spells it, from ``sys.columns`` / ``sys.types`` values."""
    base = type_name.lower()
    if base in CHARACTER or base in BINARY:
        if max_length == -1:
            size = "max"
        else:
            size = str(max_length // 2 if base in ("nchar", "nvarchar") else max_length)
        native = f"{base}({size})"
    elif base in ("decimal", "numeric"):
        native = f"{base}({precision},{scale})"
    elif base in ("datetime2", "datetimeoffset", "time"):
        native = f"{base}({scale})"
    elif base == "float":
        native = "real" if precision <= 24 else "float"
    else:
        native = base
    if collation and base in CHARACTER | {"text", "ntext"}:
        native += f" collate {collation}"
    return native


def cast_type(native: str) -> str:
    """The type to CAST a value to: the native type without its collation (COLLATE is not part
    of a CAST), and a writable type for those a table stores differently (rowversion, xml)."""
    base, args, _ = split_native(native)
    if base in _STORED_AS:
        return _STORED_AS[base]
    return f"{base}({','.join(args)})" if args else base


def stored_type(column: Column) -> str:
    """The type of a SQL Server column holding ``column``: its own native type (with collation)
    when it came from SQL Server, else the canonical type's SQL Server equivalent."""
    if column.dialect == DIALECT and column.native_type:
        base, _, collation = split_native(column.native_type)
        if base in REFUSED:
            raise refusal(column.name, base)
        stored = _STORED_AS.get(base, column.native_type)
        if collation is None:
            return stored
        return f"{cast_type(stored)} collate {collation}"
    t = column.type
    if t is CanonicalType.DECIMAL:
        if column.precision is None or column.precision > MAX_DECIMAL_PRECISION:
            p, s = UNBOUNDED_DECIMAL
            if column.precision is not None:
                s = min(column.scale or 0, p - 1)
            return f"decimal({p},{s})"
        return f"decimal({column.precision},{column.scale or 0})"
    if t is CanonicalType.STRING:
        if column.length and column.length <= MAX_NVARCHAR:
            return f"nvarchar({column.length})"
        return "nvarchar(max)"
    return _TO_NATIVE[t]


def key_type(column: Column) -> str:
    """``stored_type`` for a primary-key column: an unbounded string or binary gets the widest
    type an index key can hold (a longer value then fails the insert, naming the column)."""
    native = stored_type(column)
    base, args, collation = split_native(native)
    if args == ["max"] and base in CHARACTER:
        size = KEY_NVARCHAR if base.startswith("n") else 2 * KEY_NVARCHAR
        return f"{base}({size})" + (f" collate {collation}" if collation else "")
    if args == ["max"] and base in BINARY:
        return f"{base}({KEY_VARBINARY})"
    return native


def collation_of(native: str | None) -> str | None:
    return split_native(native)[2] if native else None


def text_of(expr: str, native: str) -> str:
    """``expr`` (of type ``native``) as text that parses back to the same value: ISO 8601 for
    date/time (UTC with ``Z`` for datetimeoffset), ``0x``-hex for binary and rowversion,
    lossless digits for float."""
    base, _, _ = split_native(native)
    if base == "date":
        return f"convert(varchar(10), {expr}, 23)"
    if base in ("datetime", "smalldatetime", "datetime2"):
        return f"convert(varchar(33), {expr}, 126)"
    if base == "datetimeoffset":
        return f"convert(varchar(33), convert(datetime2(7), switchoffset({expr}, '+00:00')), 126) + 'Z'"
    if base in BINARY or base in ROWVERSION:
        return f"convert(varchar(max), {expr}, 1)"
    if base in ("float", "real"):
        return f"convert(varchar(32), {expr}, 3)"
    return f"convert(nvarchar(max), {expr})"


def value_of(param: str, native: str) -> str:
    """A parameter (text, as ``text_of`` renders it) as a value of type ``native``."""
    base, _, _ = split_native(native)
    if base in BINARY or base in ROWVERSION:
        return f"convert({cast_type(native)}, {param}, 1)"
    return f"cast({param} as {cast_type(native)})"


def _json_text(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


def _bytes(value: Any) -> Any:
    return value if isinstance(value, bytes) else bytes(value)


# Canonical values bulk copy takes as they are: None, bool, int, float, str, Decimal, date, time,
# datetime (aware for datetimeoffset), uuid.UUID, bytes. The others are sent as SQL Server
# stores them: JSON and arrays as JSON text, intervals and unknown values as text.
_BULK_CONVERT: dict[CanonicalType, Callable[[Any], Any]] = {
    CanonicalType.JSON: _json_text,
    CanonicalType.ARRAY: _json_text,
    CanonicalType.INTERVAL: _text,
    CanonicalType.UNKNOWN: _text,
    CanonicalType.BINARY: _bytes,  # memoryview and bytearray from other drivers
}


def bulk_row_converter(schema: TableSchema) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function turning one canonical row into the tuple ``cursor.bulkcopy`` takes."""
    converters = [_BULK_CONVERT.get(c.type) for c in schema.columns]
    if not any(converters):
        return tuple
    pairs = list(enumerate(converters))

    def convert(row: Sequence[Any]) -> tuple[Any, ...]:
        values = list(row)
        for i, fn in pairs:
            if fn is not None and values[i] is not None:
                values[i] = fn(values[i])
        return tuple(values)

    return convert
