"""The pgoutput decoder and the change rows it yields, on messages built byte by byte as the
protocol documents them (protocol-logicalrep-message-formats)."""

from __future__ import annotations

import struct

import pytest

from airflow_provider_dpone.contracts.errors import SchemaMismatchError, SourceContractError
from airflow_provider_dpone.sql.pgoutput import (
    UNCHANGED,
    Begin,
    Change,
    Commit,
    DecodeError,
    Relation,
    Truncate,
    copy_line,
    decode,
    lsn_int,
    lsn_text,
)
from airflow_provider_dpone.sql.pgoutput_rows import BatchColumns, ChangeRows

pytestmark = pytest.mark.unit

OID = 16387
INT8, TEXT = 20, 25


def relation(identity: bytes = b"d", columns=(("id", INT8, True), ("name", TEXT, False))) -> bytes:
    body = b"R" + struct.pack(">I", OID) + b"public\x00items\x00" + identity + struct.pack(">h", len(columns))
    for name, oid, key in columns:
        body += bytes([1 if key else 0]) + name.encode() + b"\x00" + struct.pack(">Ii", oid, -1)
    return body


def tup(*values) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


def insert(*values) -> bytes:
    return b"I" + struct.pack(">I", OID) + b"N" + tup(*values)


def update(new: tuple, old: tuple | None = None, kind: bytes = b"K") -> bytes:
    head = b"U" + struct.pack(">I", OID)
    return head + (kind + tup(*old) if old else b"") + b"N" + tup(*new)


def delete(old: tuple, kind: bytes = b"K") -> bytes:
    return b"D" + struct.pack(">I", OID) + kind + tup(*old)


BATCH = BatchColumns("public", "items", ("id", "name"), {"id": INT8, "name": TEXT}, ("id",))


def rows(*messages: bytes, batch: BatchColumns = BATCH) -> tuple[list[bytes], ChangeRows]:
    feed = ChangeRows(batch)
    out = [copy_line([*values, op.encode()]) for m in messages for values, op in feed.feed(decode(m))]
    return out, feed


def test_begin_commit_relation_and_lsns() -> None:
    assert decode(b"B" + struct.pack(">QqI", 0x1D9EF0, 5, 729)) == Begin(0x1D9EF0, 5, 729)
    assert decode(b"C\x00" + struct.pack(">QQq", 1, 2, 3)) == Commit(1, 2, 3)
    rel = decode(relation())
    assert isinstance(rel, Relation) and rel.names == ["id", "name"] and rel.columns[0].key
    assert lsn_text(lsn_int("16/B374D848")) == "16/B374D848" and lsn_int("0/10") == 16
    assert decode(b"T" + struct.pack(">i", 1) + b"\x01" + struct.pack(">I", OID)) == Truncate(
        (OID,), True, False
    )


def test_changes_decode_with_old_keys_and_rows() -> None:
    assert decode(insert(b"1", None)) == Change("I", OID, (b"1", None))
    assert decode(update((b"2", b"b"), (b"1", None))) == Change("U", OID, (b"2", b"b"), (b"1", None), "K")
    assert decode(delete((b"1", b"a"), b"O")) == Change("D", OID, None, (b"1", b"a"), "O")
    assert decode(update((b"1", UNCHANGED))).new == (b"1", UNCHANGED)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"X", "unknown pgoutput message"),
        (b"I" + struct.pack(">I", OID) + b"N" + struct.pack(">h", 1) + b"t\x00\x00\x00\x09ab", "ends after"),
        (b"I" + struct.pack(">I", OID) + b"K", "without its new tuple"),
        (b"I" + struct.pack(">I", OID) + b"N" + struct.pack(">h", 1) + b"b\x00\x00\x00\x01a", "binary"),
    ],
)
def test_what_it_does_not_understand_fails(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(data)


def test_copy_text_escapes_what_copy_reads_specially() -> None:
    assert copy_line([b"a\tb", None, b"c\\d\ne\r"]) == b"a\\tb\t\\N\tc\\\\d\\ne\\r\n"


def test_change_rows_in_order_with_key_changes_and_deletes() -> None:
    lines, feed = rows(
        relation(),
        insert(b"1", b"one"),
        update((b"1", b"uno")),
        update((b"9", b"nine"), (b"1", None)),  # the key changed: a delete of 1, then 9
        delete((b"9", None)),
        b"C\x00" + struct.pack(">QQq", 10, 20, 0),
    )
    assert lines == [b"1\tone\tI\n", b"1\tuno\tU\n", b"1\t\\N\tD\n", b"9\tnine\tU\n", b"9\t\\N\tD\n"]
    assert feed.counts == {"I": 1, "U": 2, "D": 1, "key_changes": 1} and feed.end_lsn == 20


def test_other_tables_are_skipped_and_a_truncate_of_ours_fails() -> None:
    other = relation().replace(b"items\x00", b"other\x00")
    assert rows(other, insert(b"1", b"x"))[0] == []
    with pytest.raises(SourceContractError, match="truncated"):
        rows(relation(), b"T" + struct.pack(">i", 1) + b"\x00" + struct.pack(">I", OID))


def test_unchanged_toast_comes_from_the_full_old_row_or_fails() -> None:
    full = relation(b"f")
    lines, _ = rows(full, update((b"1", UNCHANGED), (b"1", b"big"), b"O"))
    assert lines == [b"1\tbig\tU\n"]
    with pytest.raises(SourceContractError, match=r"\['name'\].*REPLICA IDENTITY FULL"):
        rows(relation(), update((b"1", UNCHANGED)))


def test_columns_added_or_retyped_since_the_change() -> None:
    batch = BatchColumns(
        "public", "items", ("id", "name", "extra"), {"id": INT8, "name": TEXT, "extra": TEXT}, ("id",)
    )
    assert rows(relation(), insert(b"1", b"a"), batch=batch)[0] == [b"1\ta\t\\N\tI\n"]  # NULL then
    defaulted = BatchColumns(**{**batch.__dict__, "defaulted": frozenset({"extra"})})
    with pytest.raises(SchemaMismatchError, match=r"'extra'.*added with a default"):
        rows(relation(), batch=defaulted)
    retyped = BatchColumns("public", "items", ("id", "name"), {"id": INT8, "name": 1043}, ("id",))
    with pytest.raises(SchemaMismatchError, match="changed type"):
        rows(relation(), batch=retyped)


def test_a_replica_identity_other_than_the_primary_key_fails() -> None:
    index = relation(b"i", (("id", INT8, False), ("name", TEXT, True)))
    with pytest.raises(SourceContractError, match="replica identity"):
        rows(index)
