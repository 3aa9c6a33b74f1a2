"""PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1), decoded. Pure:
bytes in, messages out, no connection.

A change batch read from a slot is a run of these messages in commit order: ``Begin``, the
``Relation`` describing each table before its first change, the changes, ``Commit``. Tuple
values arrive in the text form of the type's output function (what text COPY writes before
escaping), ``None`` for NULL, or ``UNCHANGED`` for a TOASTed value an update did not touch.
See https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


class _Unchanged:
    """A TOASTed value the update left as it was (not sent; 'u' in the protocol)."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
Value = bytes | None | _Unchanged
Tuple = tuple[Value, ...]


class DecodeError(ValueError):
    """A message this decoder does not understand (another protocol version, corrupt bytes)."""


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    typmod: int
    key: bool  # part of the replica identity (the key an update's or delete's old tuple carries)


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str  # d (primary key), n (nothing), f (full), i (index)
    columns: tuple[RelationColumn, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: int  # microseconds since 2000-01-01 UTC
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: int


@dataclass(frozen=True)
class Change:
    """An insert (I), update (U) or delete (D) of one row of ``relation``. ``old`` is the old
    key (``old_kind`` K) or the whole old row (O, with REPLICA IDENTITY FULL), when sent."""

    op: str
    relation: int
    new: Tuple | None
    old: Tuple | None = None
    old_kind: str | None = None


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class Ignored:
    """A message a change batch does not need (origin, type, logical message)."""

    tag: str


Message = Relation | Begin | Commit | Change | Truncate | Ignored

_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">bQQq")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"message ends after {len(self.data)} bytes, {end} expected")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> str:
        return chr(self.take(1)[0])

    def i16(self) -> int:
        return _I16.unpack(self.take(2))[0]

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def text(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DecodeError("a string without its terminating zero byte")
        value = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return value

    def tuple(self) -> Tuple:
        values: list[Value] = []
        for _ in range(self.i16()):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in ("t", "b"):
                if kind == "b":
                    raise DecodeError("a binary tuple value: the slot was read with binary 'true'")
                values.append(self.take(self.i32()))
            else:
                raise DecodeError(f"unknown tuple value kind {kind!r}")
        return tuple(values)


def decode(data: bytes) -> Message:
    """One pgoutput message (``pg_logical_slot_peek_binary_changes``' ``data``)."""
    r = _Reader(bytes(data))
    tag = r.byte()
    if tag == "B":
        final_lsn, commit_time, xid = _BEGIN.unpack(r.take(_BEGIN.size))
        return Begin(final_lsn, commit_time, xid)
    if tag == "C":
        _flags, commit_lsn, end_lsn, commit_time = _COMMIT.unpack(r.take(_COMMIT.size))
        return Commit(commit_lsn, end_lsn, commit_time)
    if tag == "R":
        oid, schema, name = r.u32(), r.text(), r.text()
        identity = r.byte()
        columns = []
        for _ in range(r.i16()):
            flags = r.take(1)[0]
            col, type_oid, typmod = r.text(), r.u32(), r.i32()
            columns.append(RelationColumn(col, type_oid, typmod, bool(flags & 1)))
        return Relation(oid, schema, name, identity, tuple(columns))
    if tag == "I":
        oid = r.u32()
        if r.byte() != "N":
            raise DecodeError("an insert without its new tuple")
        return Change("I", oid, r.tuple())
    if tag in ("U", "D"):
        oid = r.u32()
        marker = r.byte()
        old = old_kind = None
        if marker in ("K", "O"):
            old, old_kind = r.tuple(), marker
            if tag == "U":
                marker = r.byte()
        if tag == "D":
            if old is None:
                raise DecodeError("a delete without its old key")
            return Change("D", oid, None, old, old_kind)
        if marker != "N":
            raise DecodeError(f"an update without its new tuple (found {marker!r})")
        return Change("U", oid, r.tuple(), old, old_kind)
    if tag == "T":
        count, options = r.i32(), r.take(1)[0]
        return Truncate(tuple(r.u32() for _ in range(count)), bool(options & 1), bool(options & 2))
    if tag in ("O", "Y", "M"):
        return Ignored(tag)
    raise DecodeError(f"unknown pgoutput message {tag!r} (is the slot's plugin pgoutput, protocol 1?)")


# --- LSNs ---------------------------------------------------------------------------------


def lsn_int(lsn: str) -> int:
    """``'16/B374D848'`` as a 64-bit position."""
    high, _, low = lsn.partition("/")
    if not high or not low:
        raise ValueError(f"{lsn!r} is not an LSN (X/Y in hex)")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(position: int) -> str:
    """A 64-bit position as PostgreSQL spells it (``pg_lsn``'s output)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


# --- COPY text ----------------------------------------------------------------------------

_ESCAPES = {ord("\\"): b"\\\\", ord("\t"): b"\\t", ord("\n"): b"\\n", ord("\r"): b"\\r"}
_NEEDS_ESCAPE = (b"\\", b"\t", b"\n", b"\r")


def copy_field(value: bytes | None) -> bytes:
    """One value as text COPY (and ClickHouse's TabSeparated) reads it: ``\\N`` for NULL,
    backslash, tab and line breaks escaped."""
    if value is None:
        return b"\\N"
    if not any(c in value for c in _NEEDS_ESCAPE):
        return value
    return b"".join(_ESCAPES.get(b, bytes((b,))) for b in value)


def copy_line(values: Sequence[bytes | None]) -> bytes:
    return b"\t".join(copy_field(v) for v in values) + b"\n"
