"""PostgreSQL errors classified by whether an Airflow retry can help, for psycopg 3 and psycopg2.

Decided by SQLSTATE, which both drivers expose (``sqlstate`` / ``pgcode``):

- ``statement_timeout`` (57014 with that reason): terminal. The same statement on the same data
  would time out again; the message says how to raise the timeout.
- ``lock_timeout`` (55P03): transient. The session holding the lock finishes.
- serialization failures (40001), deadlocks (40P01), lost connections (class 08, or a driver
  ``OperationalError`` without a SQLSTATE), shutdowns (57P0x), a cancelled statement: transient.
- anything else (a constraint, a syntax error, a missing table): not classified here; the
  caller decides.
"""

from __future__ import annotations

from ..contracts.errors import DponeError, TerminalError, TransientError

_RETRYABLE_STATES = {"40001", "40P01", "57014", "57P01", "57P02", "57P03"}


def _operational(exc: BaseException) -> bool:
    """A driver's ``OperationalError`` (both drivers name their connection-level class so)."""
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


def classify(exc: BaseException, what: str) -> DponeError | None:
    """The dpone error for driver error ``exc`` raised while doing ``what``, or None."""
    state = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
    text = f"{type(exc).__name__}: {exc}".strip()
    if state == "57014" and "statement timeout" in str(exc):
        return TerminalError(
            f"{what}: statement_timeout cancelled it ({text}); a retry would time out again. Raise "
            "statement_timeout for this connection (extra options: '-c statement_timeout=...') or "
            "for its role, or make the load smaller (incremental.chunk)"
        )
    if state == "55P03":
        return TransientError(
            f"{what}: lock_timeout expired waiting for a lock another session holds ({text}); "
            "retried, as the other session finishes"
        )
    if state in _RETRYABLE_STATES or state.startswith("08") or (not state and _operational(exc)):
        return TransientError(f"{what} failed: {text}")
    return None
