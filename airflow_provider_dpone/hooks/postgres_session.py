"""Connections of the PostgreSQL hook: one kept between the units of work of a load, replaced
when the server may have cut it; libpq's messages redacted; errors classified.

``PostgresSessions`` needs no Airflow class: the Airflow hook (``hooks.postgres``) puts it on
the official PostgresHook, which opens the connections; the standalone engine
(``postgres_connector.PostgresEngine``, what ``dpone run`` uses) opens them itself, from the same
connection fields.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ..contracts.errors import MissingExtraError

try:
    import psycopg
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "psycopg", "postgres") from None

from ..contracts.errors import TransientError
from .postgres_errors import classify

if TYPE_CHECKING:
    from ..contracts.redaction import Redactor

# A kept connection idle for longer is replaced, not reused: the steps of one load follow each
# other within seconds, while a connection idle through a long extract may have been cut.
IDLE_REUSE_SECONDS = 30.0


def _alive(conn: psycopg.Connection) -> bool:
    """Whether an idle connection is still open: a server that ended the session (an idle
    timeout, a terminated backend, a restart) has sent its goodbye, so the socket is readable."""
    try:
        return not select.select([conn.fileno()], [], [], 0)[0]
    except (OSError, ValueError, psycopg.Error):
        return False


def one_row(cursor: psycopg.Cursor) -> tuple[Any, ...]:
    """The row a statement that always answers one row (an aggregate, a catalog probe) returned."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement answered no row")
    return tuple(row)


class PostgresSessions:
    """dpone's connection handling (kept connection, redacted connect errors), over the class
    it is mixed into: that gives ``get_conn()`` (a new psycopg connection),
    ``get_connection(conn_id)``, ``dpone_conn_id`` and ``redactor()``."""

    if TYPE_CHECKING:  # given by the class this is mixed into

        @property
        def dpone_conn_id(self) -> str: ...

        def get_conn(self) -> Any: ...

        def get_connection(self, conn_id: str) -> Any: ...

        def redactor(self) -> Redactor: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: psycopg.Connection | None = None
        self._idle_since = 0.0
        self._idle_lock = threading.Lock()

    def connect(self) -> psycopg.Connection:
        try:
            conn = self.get_conn()
        except psycopg.OperationalError as exc:
            # libpq echoes the user, database and options: never let them reach a log or report.
            message = self.redactor().redact(str(exc).strip())
            raise TransientError(f"cannot connect to '{self.dpone_conn_id}': {message}") from None
        if not isinstance(conn, psycopg.Connection):
            conn.close()
            raise MissingExtraError("psycopg", "postgres")
        conn.autocommit = False
        return conn

    @contextmanager
    def session(self, what: str | None = None) -> Iterator[psycopg.Connection]:
        """A connection for one unit of work: committed when the block ends, closed if it
        raises. A healthy one is kept for the hook's next unit instead of being closed, so a
        load opens a few connections rather than one per step (each costs a round trip, and
        TLS and auth on a remote server). ``release()`` closes it; the engine calls it after
        every load."""
        with self._idle_lock:
            conn, self._idle = self._idle, None
        if conn is not None and (
            time.monotonic() - self._idle_since > IDLE_REUSE_SECONDS or not _alive(conn)
        ):
            conn.close()  # cut by the server, or idle long enough for a firewall to have cut it
            conn = None
        if conn is None or conn.closed or conn.broken:
            conn = self.connect()
        try:
            yield conn
            conn.commit()
        except psycopg.Error as exc:
            conn.close()  # rolled back by the server; never reused in an unknown state
            classified = classify(exc, what or f"PostgreSQL '{self.dpone_conn_id}'")
            if classified is not None:
                raise classified from None
            raise
        except BaseException:
            conn.close()
            raise
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        # Back to the defaults connect() gives: a unit may have made its transactions read-only.
        conn.autocommit = False
        conn.read_only = conn.isolation_level = conn.deferrable = None
        with self._idle_lock:
            if self._idle is None:
                self._idle, self._idle_since, conn = conn, time.monotonic(), None
        if conn is not None:
            conn.close()

    def release(self) -> None:
        """Close the connection kept between units of work, if any."""
        with self._idle_lock:
            conn, self._idle = self._idle, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:  # hooks used outside a load (sensors, the CLI) close theirs too
        if getattr(self, "_idle", None) is not None:
            with suppress(Exception):
                self.release()
