"""Export files as records, streamed: gzip told by its magic bytes, then JSON or CSV told by the
first character (``{`` or ``[``: JSON).

A JSON file is an object holding the records in an array under one of ``RECORD_KEYS`` (Mindbox's
standard exports: ``{"customers": [...]}``), or an array of records; each record is read alone, so memory stays bounded by the largest one (up to
``limit`` characters). Nested objects are flattened with ``_`` between the names
(``{"ids": {"mindboxId": 1}}`` -> ``ids_mindbox_id`` through ``column``); lists stay as they are.
A CSV file is read by :func:`async_export.csv_records`.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..contracts.errors import SourceContractError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 65_536
_SPACE = " \t\r\n"
RECORD_KEYS = ("customers", "orders", "customerActions", "mailings")


def gunzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` decompressed when they start with the gzip magic bytes (several members
    too), else as they are."""
    chunks = iter(chunks)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 2:
            break
    if not head.startswith(GZIP_MAGIC):
        if head:
            yield head
        yield from chunks
        return
    inflater, fed = zlib.decompressobj(wbits=31), False
    pending = [head]
    for chunk in _chain(pending, chunks):
        while chunk:
            try:
                yield inflater.decompress(chunk)
            except zlib.error as exc:
                raise SourceContractError(f"export file: gzip data that does not inflate: {exc}") from None
            fed = True
            chunk = inflater.unused_data if inflater.eof else b""
            if inflater.eof:
                inflater, fed = zlib.decompressobj(wbits=31), False  # the next member
    if fed and not inflater.eof:  # the file ends inside a member: rows after the cut are missing
        raise SourceContractError("export file: the gzip data ends before its end of stream (cut short)")
    yield inflater.flush()


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def flatten(item: dict[str, Any], column: Callable[[str], str]) -> dict[str, Any]:
    """A JSON record as one level: nested objects' names joined with ``.``, then ``column``."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                walk(value, name)
            else:
                out[column(name)] = value

    walk(item, "")
    return out


class JsonItems:
    """The records of a JSON export file (see the module), read a piece at a time."""

    def __init__(self, text: IO[str], limit: int) -> None:
        self.text, self.limit = text, limit
        self.buf, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder()
        self.item = 0  # records read
        self.keys: list[str] = []  # the top-level keys skipped

    def _more(self) -> bool:
        if self.eof:
            return False
        if self.pos > _CHUNK:
            self.buf, self.pos = self.buf[self.pos :], 0
        piece = self.text.read(_CHUNK)
        self.eof = not piece
        self.buf += piece
        return bool(piece)

    def _peek(self) -> str:
        """The next character past whitespace ('' at the end)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def _expect(self, allowed: str) -> str:
        found = self._peek()
        if not found or found not in allowed:
            self._fail(f"expected one of {list(allowed)}, found {found or 'the end'!r}")
        self.pos += 1
        return found

    def _value(self) -> Any:
        """The next whole JSON value, reading more until it is complete."""
        self._peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                if end - self.pos <= self.limit and (end < len(self.buf) or self.eof):
                    self.pos = end  # (a number at the buffer's end may go on: read more)
                    return value
            except json.JSONDecodeError as exc:
                if self.eof:
                    self._fail(str(exc))
            if len(self.buf) - self.pos > self.limit:
                raise SourceContractError(
                    f"record {self.item + 1} is longer than {self.limit:,} characters, the limit "
                    "(connection extra max_response_bytes); reading stopped there"
                )
            self._more()

    def _fail(self, why: str) -> None:
        raise SourceContractError(f"the JSON file is not valid JSON after record {self.item}: {why}")

    def __iter__(self) -> Iterator[Any]:
        first = self._peek()
        if first == "[":
            yield from self._array()
            return
        self._expect("{")
        while True:
            key = self._value()
            self._expect(":")
            if key in RECORD_KEYS and self._peek() == "[":
                yield from self._array()
                return  # the rest is not read
            self._value()  # another value (an id, a count): skipped
            self.keys.append(str(key))
            if self._expect(",}") == "}":
                raise SourceContractError(
                    f"the JSON file holds no records: none of {list(RECORD_KEYS)} is an array in it "
                    f"(its keys: {self.keys[:20]})"
                )

    def _array(self) -> Iterator[Any]:
        self._expect("[")
        if self._peek() == "]":
            return
        while True:
            value = self._value()
            self.item += 1
            yield value
            if self._expect(",]") == "]":
                return


def file_records(
    chunks: Iterable[bytes], column: Callable[[str], str], skip: int, limit: int
) -> Iterator[dict[str, Any]]:
    """The records of one export file's bytes after ``skip`` records (see the module)."""
    from .async_export import _Chunks, csv_records

    raw = gunzipped(chunks)
    head = b""
    for chunk in raw:
        head += chunk
        if head.lstrip(b"\xef\xbb\xbf" + _SPACE.encode()) or len(head) > _CHUNK:
            break
    stream = io.BufferedReader(_Chunks(_chain([head], raw)))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    if head.lstrip(b"\xef\xbb\xbf" + _SPACE.encode())[:1] not in (b"{", b"["):
        yield from csv_records(text, column, skip, limit)
        return
    reader = JsonItems(text, limit)
    try:
        for index, item in enumerate(reader):
            if not isinstance(item, dict):
                raise SourceContractError(
                    f"record {index + 1} of the JSON file is not an object: {item!r:.100}"
                )
            if index >= skip:
                yield flatten(item, column)
    except UnicodeDecodeError as exc:
        raise SourceContractError(f"the file cannot be read: {type(exc).__name__}: {exc}") from None
