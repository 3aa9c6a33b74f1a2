"""Connections of the SQL Server hook, over Microsoft's ``mssql-python`` driver: the connection
string built from the official ``mssql`` connection's fields, sessions in autocommit mode (the
finalize's own ``begin transaction`` / ``commit`` statements own its transaction), statements
whose every result set is drained, and driver errors classified and redacted.

``MsSqlSessions`` needs no Airflow class: the Airflow hook (``hooks.mssql``) puts it on the
official MsSqlHook, the standalone engine (``mssql_connector.MsSqlEngine``) on a connection read
from ``AIRFLOW_CONN_<ID>``. The driver pools connections itself, so a session is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ..contracts.errors import MissingExtraError

try:
    import mssql_python
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "mssql_python", "mssql") from None

from ..contracts.errors import BadInputError, DponeError, TransientError
from .dbapi import fetch, results, run

__all__ = [
    "RESET",
    "MsSqlSessions",
    "classify",
    "close_quietly",
    "connection_string",
    "fetch",
    "results",
    "run",
]

if TYPE_CHECKING:
    from ..contracts.redaction import Redactor

# Connection extras and the connection-string keyword each becomes (mssql-python refuses any
# other keyword). Values may be true/false; they are sent as yes/no.
EXTRA_KEYWORDS = {
    "encrypt": "Encrypt",
    "trust_server_certificate": "TrustServerCertificate",
    "hostname_in_certificate": "HostnameInCertificate",
    "server_certificate": "ServerCertificate",
    "server_spn": "ServerSPN",
    "authentication": "Authentication",
    "trusted_connection": "Trusted_Connection",
    "application_intent": "ApplicationIntent",
    "multi_subnet_failover": "MultiSubnetFailover",
    "connect_retry_count": "ConnectRetryCount",
    "connect_retry_interval": "ConnectRetryInterval",
    "keep_alive": "KeepAlive",
    "keep_alive_interval": "KeepAliveInterval",
    "ip_address_preference": "IpAddressPreference",
    "packet_size": "PacketSize",
}
# Extras other clients read and this driver has no use for: the official hook's SQLAlchemy
# scheme, an ODBC driver name (mssql-python brings its own ODBC Driver 18), and dpone's own login_timeout.
IGNORED_EXTRAS = frozenset(
    {"sqlalchemy_scheme", "driver", "login_timeout"}
)  # login_timeout: read by get_conn
LOGIN_TIMEOUT = 30  # seconds to open a connection, unless the extra login_timeout says otherwise

# Server messages of errors a retry can resolve: a deadlock victim (1205), a lock wait that
# timed out (1222), a snapshot update conflict (3960). mssql-python does not expose the error
# number, only the SQLSTATE's description and the server's text.
_RETRYABLE_TEXT = (
    "deadlocked on lock",
    "lock request time out period exceeded",
    "snapshot isolation transaction aborted due to update conflict",
)
# SQLSTATE descriptions mssql-python gives connection-level failures and serialization failures.
_RETRYABLE_STATES = (
    "Serialization failure",
    "Communication link failure",
    "Client unable to establish connection",
    "Connection timeout expired",
    "Disconnect error",
    "Connection failure during transaction",
)


def _braced(value: str) -> str:
    """A connection-string value, braced when it holds a character the syntax reserves."""
    if any(ch in value for ch in ";{}=") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def connection_string(conn: Any) -> str:
    """The mssql-python connection string of an Airflow ``mssql`` connection: host (a named
    instance as ``host\\instance``; Azure SQL as its host name), port, login, password, schema
    as the database, and the extras in ``EXTRA_KEYWORDS``. An unknown extra is refused, naming it."""
    if not conn.host:
        raise BadInputError(f"connection '{conn.conn_id}': host is empty; set the server's host name")
    server = conn.host if not conn.port else f"{conn.host},{int(conn.port)}"
    parts = [("Server", server)]
    if conn.schema:
        parts.append(("Database", conn.schema))
    extra = dict(conn.extra_dejson)
    unknown = sorted(k for k in extra if k not in EXTRA_KEYWORDS and k not in IGNORED_EXTRAS)
    if unknown:
        raise BadInputError(
            f"connection '{conn.conn_id}': extra {unknown} is not a SQL Server connection option; "
            f"allowed: {', '.join(sorted(EXTRA_KEYWORDS))}"
        )
    if conn.login:
        parts.append(("UID", conn.login))
    if conn.password:
        parts.append(("PWD", conn.password))
    parts += [
        (EXTRA_KEYWORDS[k], _flag(v)) for k, v in extra.items() if k in EXTRA_KEYWORDS and v is not None
    ]
    return ";".join(f"{key}={_braced(str(value))}" for key, value in parts)


def classify(exc: BaseException, what: str, redactor: Redactor) -> DponeError | None:
    """A ``TransientError`` for a driver error an Airflow retry can resolve; None otherwise."""
    text = redactor.redact(f"{type(exc).__name__}: {exc}".strip())
    driver = str(getattr(exc, "driver_error", ""))
    lowered = text.lower()
    if driver in _RETRYABLE_STATES or any(t in lowered for t in _RETRYABLE_TEXT):
        return TransientError(f"{what} failed: {text}")
    return None


# What a connection goes back to the pool as: no transaction, the default isolation level.
RESET = "if @@trancount > 0 rollback transaction; set transaction isolation level read committed"


def close_quietly(conn: Any) -> None:
    """Roll back whatever ``conn`` may still hold open (a snapshot read, a finalize that failed
    and could not roll back), then close it: the driver pools connections, and an idle pooled
    one must not keep a transaction, its locks or its snapshot of the version store."""
    try:
        run(conn.cursor(), RESET)
    except Exception:  # a broken connection holds nothing on the server any more
        pass
    finally:
        with suppress(Exception):
            conn.close()


class MsSqlSessions:
    """dpone's connection handling over the class it is mixed into: that gives
    ``get_connection(conn_id)``, ``dpone_conn_id`` and ``redactor()``."""

    if TYPE_CHECKING:  # given by the class this is mixed into

        @property
        def dpone_conn_id(self) -> str: ...

        def get_connection(self, conn_id: str) -> Any: ...

        def redactor(self) -> Redactor: ...

    def get_conn(self) -> Any:
        """A new mssql-python connection in autocommit mode."""
        conn = self.get_connection(self.dpone_conn_id)
        timeout = int(conn.extra_dejson.get("login_timeout") or LOGIN_TIMEOUT)
        return mssql_python.connect(connection_string(conn), autocommit=True, timeout=timeout)

    def connect(self) -> Any:
        try:
            return self.get_conn()
        except mssql_python.Error as exc:
            # The driver's message may echo the login or server: never let them reach a log.
            message = self.redactor().redact(str(exc).strip())
            raise TransientError(f"cannot connect to '{self.dpone_conn_id}': {message}") from None

    @contextmanager
    def session(self, what: str | None = None) -> Iterator[Any]:
        """A connection for one unit of work, closed when the block ends (the driver's pool
        keeps it warm). A driver error a retry can resolve becomes a ``TransientError``."""
        conn = self.connect()
        try:
            yield conn
        except mssql_python.Error as exc:
            classified = classify(exc, what or f"SQL Server '{self.dpone_conn_id}'", self.redactor())
            if classified is not None:
                raise classified from None
            raise
        finally:  # back to the pool clean, whatever the unit of work left (a transaction, an isolation level)
            close_quietly(conn)

    def release(self) -> None:
        """Nothing is kept between units of work (the driver pools connections)."""
