"""A source's COPY OUT stream read by psycopg2, in the extract's own snapshot.

psycopg 3 hands each COPY message (one per row) to Python; psycopg2's ``copy_expert`` loops in
C and writes each message to a file object. With a buffered file that gathers the messages
into ~1 MiB chunks, relaying a table costs well under half the CPU (measured in
``benchmarks/pg_to_pg.py``): CPU that the two database backends need on a small worker.

The extract's window and schema come from a psycopg 3 ``REPEATABLE READ`` transaction. That
transaction exports its snapshot and the psycopg2 connection imports it, so the COPY sees
exactly the rows the window was computed on. Where psycopg2 is not installed or the snapshot
cannot be exported, the hook streams through psycopg 3 as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import psycopg

from ..contracts.artifacts import StreamStats
from ..contracts.errors import TerminalError, TransientError
from ..runtime.prefetch import Pushed
from .postgres_errors import classify

log = logging.getLogger(__name__)

_EXPORT = "select pg_export_snapshot()"


def export_snapshot(conn: psycopg.Connection) -> str | None:
    """Export the snapshot of ``conn``'s new ``REPEATABLE READ`` transaction, as its first
    statement; None where psycopg2 is absent or the server refuses (the transaction is then
    rolled back, before it has read anything)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return None
    try:
        return conn.execute(_EXPORT).fetchone()[0]  # type: ignore[index]
    except psycopg.Error as exc:
        conn.rollback()
        log.info(
            "cannot export the extract's snapshot (SQLSTATE %s); reading COPY through psycopg", exc.sqlstate
        )
        return None


def snapshot_reader(
    conn: psycopg.Connection, snapshot: str, connect_error: Callable[[str], str]
) -> Any | None:
    """A psycopg2 connection in the exported ``snapshot`` of ``conn``'s open transaction, or
    None where the snapshot cannot be imported (a proxy that sent the reader to another server,
    say): the caller then reads through ``conn``.

    ``connect_error`` turns a connection error's text into the message to raise (it redacts
    the credentials libpq may echo).
    """
    import psycopg2

    # The extract's own libpq parameters (options, sslmode, ...): the server gives the reader the
    # same session settings, so values are written out the same way (TimeZone, DateStyle, ...).
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    try:
        reader = psycopg2.connect(**params)
    except psycopg2.Error as exc:
        raise TransientError(connect_error(str(exc).strip())) from None
    try:
        reader.set_session(isolation_level="REPEATABLE READ")  # not read-only: like the extract
        reader.cursor().execute("set transaction snapshot %s", (snapshot,))  # its first statement
    except psycopg2.Error as exc:
        reader.close()
        log.info(
            "cannot import the extract's snapshot (SQLSTATE %s); reading COPY through psycopg", exc.pgcode
        )
        return None
    except BaseException:
        reader.close()
        raise
    return reader


def copy_out_chunks(
    reader: Any, statement: str, params: tuple, stats: StreamStats, *, chunk: int, depth: int
) -> Iterator[bytes]:
    """``statement`` (a ``COPY ... TO STDOUT``) as chunks of up to ``chunk`` bytes; records the
    rows sent in ``stats`` once the stream is complete. The caller closes ``reader``."""
    import psycopg2

    cur = reader.cursor()
    query = cur.mogrify(statement, params) if params else statement  # same %s rules as psycopg

    def produce(out: Any) -> None:
        try:
            cur.copy_expert(query, out)
        except psycopg2.Error as exc:
            classified = classify(exc, "source COPY")
            if isinstance(classified, TerminalError):
                raise classified from None
            if isinstance(exc, psycopg2.OperationalError) or _broken(reader):
                # The connection dropped (a failover, a terminated backend): a retry can succeed.
                raise TransientError(f"source COPY broke off: {type(exc).__name__}: {exc}".strip()) from None
            raise

    with closing(Pushed(produce, chunk_size=chunk, depth=depth, interrupt=reader.cancel)) as chunks:
        yield from chunks
    stats.source_rows = cur.rowcount


def _broken(reader: Any) -> bool:
    """psycopg2 may report a connection cut mid-COPY as a bare ``DatabaseError``."""
    return bool(reader.closed) or reader.info.status != 0  # 0: CONNECTION_OK
