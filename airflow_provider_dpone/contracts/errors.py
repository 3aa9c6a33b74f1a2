"""Error taxonomy: bad input, transient and terminal failures.

``retryable`` tells the operator whether an Airflow retry can help. Messages never carry
secrets: the engine masks every registered credential (``contracts.redaction``) before a
message reaches a log, a report or Airflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class DponeError(Exception):
    """Base class. ``code`` is stable and documented in docs/troubleshooting.md."""

    code = "DPONE000"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class BadInputError(DponeError):
    """The manifest, an argument or a connection is wrong; a retry cannot help."""

    code = "DPONE100"


class TransientError(DponeError):
    """A network blip, a lock timeout, a serialization failure; a retry may help."""

    code = "DPONE200"
    retryable = True


class TerminalError(DponeError):
    """The load cannot proceed without a human: data or target violates the contract."""

    code = "DPONE300"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in one manifest: file, load, dotted field path, message."""

    file: str
    field: str
    message: str
    load: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.load:
            where += f": load '{self.load}'"
        return f"{where}: {self.field or '<root>'}: {self.message}"


class ManifestError(BadInputError):
    """One or more manifest files are invalid."""

    code = "DPONE101"

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class MissingExtraError(BadInputError):
    """An optional driver is not installed; names the pip extra that provides it."""

    code = "DPONE102"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the '{package}' package is required; install it with "
            f"pip install 'airflow-provider-dpone[{extra}]'"
        )
        self.extra = extra


class UnsupportedError(BadInputError):
    """The requested combination (strategy, mode, artifact) is not supported by a connector."""

    code = "DPONE103"


class QuotaExceededError(BadInputError):
    """The API's quota for the period (e.g. a day's reports) is used up: a retry within the
    period fails again, and the credentials are fine."""

    code = "DPONE105"


class SchemaMismatchError(TerminalError):
    """Source and target schemas differ in a way this run may not change."""

    code = "DPONE301"


class DuplicateKeyError(TerminalError):
    """A merge batch holds several rows for one ``unique_key``."""

    code = "DPONE302"


class LoadInProgressError(TransientError):
    """Another run of the same load holds its lock."""

    code = "DPONE201"


class ResumeExpiredError(TransientError):
    """The position a failed try saved is no longer usable (an export job expired or failed, a
    cursor timed out): the saved position is dropped and the next try starts the run over."""

    code = "DPONE202"


class StateError(TerminalError):
    """Stored state is unreadable or does not match the load's incremental mode."""

    code = "DPONE303"


class MassDeleteError(TerminalError):
    """Reconciliation would delete more of the target than ``max_delete_fraction`` allows."""

    code = "DPONE305"


class StagingMismatchError(TerminalError):
    """The staged batch does not fit what the strategy rewrites (rows outside the window or partitions)."""

    code = "DPONE306"


class CredentialOriginError(BadInputError):
    """A request would carry the connection's credentials to another origin (a next link or a
    redirect to another scheme, host or port)."""

    code = "DPONE104"


class SourceContractError(TerminalError):
    """The source answered outside what the manifest declares: a record selector that matches
    nothing, a pagination that loops, a response body over the size limit."""

    code = "DPONE307"


class TargetStateMismatchError(TerminalError):
    """Stored state says rows were loaded, but the target is missing or was just created."""

    code = "DPONE308"


class StateMissingError(StateError):
    """No state is stored (or it was lost), but the incremental target already holds rows."""

    code = "DPONE309"


class NullKeyError(TerminalError):
    """A merge batch has NULL in a ``unique_key`` column."""

    code = "DPONE310"


class EmptySourceError(TerminalError):
    """A full refresh read 0 rows while the target holds rows, and ``allow_empty`` is not set."""

    code = "DPONE311"


class StagingEvidenceError(TerminalError):
    """A staged file is missing, or its size or SHA-256 differs from the staging manifest."""

    code = "DPONE312"


def scrub(exc: BaseException, redact: Callable[[str], str]) -> BaseException:
    """``exc`` with credentials masked, or a masked ``TransientError`` standing in for it.

    The cause chain is dropped when something was masked, so a traceback cannot print the
    original message either.
    """
    text = str(exc.message) if isinstance(exc, DponeError) else str(exc)
    clean = redact(text)
    if clean == text:
        return exc
    if isinstance(exc, DponeError):
        exc.message = clean
        exc.args = (clean,)
        exc.__cause__ = None
        exc.__suppress_context__ = True
        return exc
    masked = TransientError(f"{type(exc).__name__}: {clean}")
    masked.__suppress_context__ = True
    return masked
