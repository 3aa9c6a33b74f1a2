"""How a PostgreSQL change batch leaves the CDC reader (``hooks.postgres_cdc``): as text COPY
chunks where the sink reads them (no row decoded in Python), else as typed row batches loaded by
psycopg's own text loaders."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import psycopg

from ..sql.pgoutput import copy_line
from ..sql.pgoutput_rows import ChangeRow

_CHUNK = 1 << 20  # text COPY is written in ~1 MiB chunks


def copy_chunks(changes: Iterator[list[ChangeRow]]) -> Generator[bytes, None, None]:
    """Change rows as text COPY (UTF-8: the decode session's client encoding), in ~1 MiB chunks."""
    buffer, sequence = bytearray(), 0
    for batch in changes:
        for values, op in batch:
            sequence += 1
            buffer += copy_line([*values, op.encode(), str(sequence).encode()])
        if len(buffer) >= _CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def typed_batches(
    conn: psycopg.Connection,
    changes: Iterator[list[ChangeRow]],
    load_oids: tuple[int, ...],
    batch_size: int,
) -> Generator[list[list[Any]], None, None]:
    """Change rows as Python values, loaded from their text by psycopg's loaders for the
    columns' types (JSON, interval and timetz stay text, as the row path reads them)."""
    from psycopg.adapt import Transformer
    from psycopg.types.string import TextLoader

    for name in ("json", "jsonb", "interval", "timetz"):
        conn.adapters.register_loader(name, TextLoader)
    loader = Transformer(conn)
    loader.set_loader_types(list(load_oids), psycopg.pq.Format.TEXT)
    batch: list[list[Any]] = []
    sequence = 0
    for fetched in changes:
        for values, op in fetched:
            sequence += 1
            batch.append([*loader.load_sequence(values), op, sequence])
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
