"""BigQuery jobs for the sink, over a ``google.cloud.bigquery.Client`` (Airflow's
``BigQueryHook.get_client`` builds it in a task, ``client_from_connection`` on the command line):
query jobs, Parquet load jobs, a table's resource, errors classified (what a retry can fix is a
``TransientError``) and a DB-API-shaped session for the state table.

Every job waits at most ``JOB_TIMEOUT`` seconds and API calls give up after ``API_DEADLINE``:
the client's defaults retry a failing call for ten minutes, which hangs a task on an outage.
Statements take ``?`` parameters, rendered as typed literals by the dialect (scripts take none).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..contracts.errors import BadInputError, DponeError, MissingExtraError, TerminalError, TransientError
from ..sql.bigquery import BigQueryDialect

try:
    from google.api_core import exceptions as api_errors
    from google.cloud import bigquery
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise MissingExtraError(_exc.name or "google.cloud.bigquery", "bigquery") from None

JOB_TIMEOUT = 3600.0  # seconds a job may run
API_DEADLINE = 60.0  # seconds an API call is retried for
SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/devstorage.read_write")
_RETRY = bigquery.DEFAULT_RETRY.with_timeout(API_DEADLINE)
_TRANSIENT = (
    api_errors.TooManyRequests,
    api_errors.InternalServerError,
    api_errors.BadGateway,
    api_errors.ServiceUnavailable,
    api_errors.GatewayTimeout,
)
# reasons BigQuery gives in a job's errors when a retry resolves them
_TRANSIENT_REASONS = (
    "rateLimitExceeded",
    "quotaExceeded",  # a 403, but a rate quota that refills
    "backendError",
    "internalError",
    "jobBackendError",
    "tableUnavailable",
)
_CONCURRENT = "concurrent update"  # a transaction aborted by another one on the same table


def classify(exc: BaseException, what: str) -> DponeError | None:
    """Our error for a google-api-core one (None for anything else): a retryable HTTP status, a
    job error a retry resolves, or a concurrent transaction is transient; a refused permission
    is bad input; the rest is terminal, with BigQuery's message (which names the statement's
    problem, never a credential)."""
    if isinstance(exc, FutureTimeout):
        return TransientError(f"BigQuery {what}: no answer within {JOB_TIMEOUT:.0f} s; the job was cancelled")
    if not isinstance(exc, api_errors.GoogleAPICallError):
        return None
    message = getattr(exc, "message", None) or str(exc)
    reasons = {str(e.get("reason")) for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)}
    if isinstance(exc, _TRANSIENT) or reasons & set(_TRANSIENT_REASONS) or _CONCURRENT in message.lower():
        return TransientError(f"BigQuery {what}: {message}")
    if isinstance(exc, api_errors.Forbidden | api_errors.Unauthorized):
        return BadInputError(f"BigQuery {what}: permission denied: {message}")
    return TerminalError(f"BigQuery {what}: {message}")


class BigQueryJobs:
    """Jobs on one client; ``location`` where the datasets are (None: BigQuery's default)."""

    def __init__(self, client: Any, dialect: BigQueryDialect, location: str | None = None) -> None:
        self.client, self.dialect, self.location = client, dialect, location

    @property
    def project(self) -> str:
        return str(self.client.project)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, list[str], list[tuple[Any, ...]]]:
        """Run one statement or script: the rows it changed, its result's column names and rows."""
        text = self._located(self.dialect.inline(sql, params) if params else sql)
        config = bigquery.QueryJobConfig(use_legacy_sql=False)
        job = None
        try:
            job = self.client.query(
                text, job_config=config, location=self.location, retry=_RETRY, job_retry=None
            )
            result = job.result(timeout=JOB_TIMEOUT, retry=_RETRY)
            names = [f.name for f in result.schema or []]
            rows = [tuple(r.values()) for r in result]
        except Exception as exc:
            _cancel(job, exc)
            raise classify(exc, "query") or exc from None
        return int(job.num_dml_affected_rows or 0), names, rows

    def _located(self, sql: str) -> str:
        """A ``create schema`` in the connection's location (BigQuery would put it in US, and a
        script reading across locations fails)."""
        if self.location and _CREATE_SCHEMA.match(sql) and " options" not in sql.lower():
            return (
                f"{sql.rstrip().rstrip(';')} options (location = {self.dialect.quote_literal(self.location)})"
            )
        return sql

    def table_exists(self, table_id: str) -> bool:
        """Whether the table exists, asked of the API: a missing dataset's INFORMATION_SCHEMA is
        an error, not an empty list."""
        return self.table(table_id) is not None

    def dataset_exists(self, dataset_id: str) -> bool:
        """Whether the dataset exists (``datasets.get``): ``create schema if not exists`` asks for
        bigquery.datasets.create on the project even when it does."""
        try:
            self.client.get_dataset(dataset_id, retry=_RETRY)
        except api_errors.NotFound:
            return False
        except Exception as exc:
            raise classify(exc, f"reading dataset {dataset_id}") or exc from None
        return True

    @property
    def emulated(self) -> bool:
        """Whether the client talks to bqemulator (``BIGQUERY_EMULATOR_HOST`` and its endpoint)."""
        host = os.environ.get("BIGQUERY_EMULATOR_HOST")
        base = getattr(getattr(self.client, "_connection", None), "API_BASE_URL", None)
        return bool(host) and base == host

    def table(self, table_id: str) -> dict[str, Any] | None:
        """The table's resource (``tables.get``); None when it does not exist."""
        try:
            return dict(self.client.get_table(table_id, retry=_RETRY).to_api_repr())
        except api_errors.NotFound:
            return None
        except Exception as exc:
            raise classify(exc, f"reading {table_id}") or exc from None

    def _load_config(self, schema: list[dict[str, str]]) -> Any:
        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            schema=[
                bigquery.SchemaField(f["name"], f["type"], mode=f.get("mode", "NULLABLE")) for f in schema
            ],
        )

    def _loaded(self, job: Any, table_id: str, expected: int) -> int:
        try:
            job.result(timeout=JOB_TIMEOUT, retry=_RETRY)
        except Exception as exc:
            _cancel(job, exc)
            raise classify(exc, f"load into {table_id}") or exc from None
        rows = int(job.output_rows or 0)
        if rows != expected:
            raise BadInputError(
                f"the load job into {table_id} wrote {rows:,} rows where {expected:,} were sent; "
                "nothing is finalized"
            )
        return rows

    def load_uris(self, uris: list[str], table_id: str, schema: list[dict[str, str]], rows: int) -> int:
        """Parquet files in GCS appended to ``table_id`` by one load job (atomic: all or none)."""
        try:
            job = self.client.load_table_from_uri(
                uris, table_id, job_config=self._load_config(schema), location=self.location, retry=_RETRY
            )
        except Exception as exc:
            raise classify(exc, f"load into {table_id}") or exc from None
        return self._loaded(job, table_id, rows)

    def load_bytes(self, data: bytes, table_id: str, schema: list[dict[str, str]], rows: int) -> int:
        """One Parquet file's bytes appended to ``table_id`` by a load job."""
        try:
            job = self.client.load_table_from_file(
                io.BytesIO(data), table_id, job_config=self._load_config(schema), location=self.location
            )
        except Exception as exc:
            raise classify(exc, f"load into {table_id}") or exc from None
        return self._loaded(job, table_id, rows)


_CREATE_SCHEMA = re.compile(r"^\s*create\s+schema\s+if\s+not\s+exists\s", re.I)


def _cancel(job: Any, exc: BaseException) -> None:
    """Cancel a job the client stopped waiting for: it would run on, racing the next try."""
    if job is not None and isinstance(exc, FutureTimeout):
        with contextlib.suppress(Exception):  # the timeout is what is reported
            job.cancel(retry=_RETRY)


class _Cursor:
    """The DB-API cursor surface ``hooks.dbapi`` uses, one query job per ``execute``."""

    def __init__(self, jobs: BigQueryJobs) -> None:
        self.jobs = jobs
        self.rowcount = -1
        self.description: list[tuple[str, None, None, None, None, None, None]] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        count, names, rows = self.jobs.query(sql, params)
        self.description = [(n, None, None, None, None, None, None) for n in names] or None
        self._rows, self.rowcount = rows, count if not names else len(rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def nextset(self) -> bool:
        return False

    def close(self) -> None:
        return None


class BigQuerySession:
    """A DB-API-shaped connection over the jobs (the state table's backend reads and writes
    through it). Every statement commits on its own: ``commit`` and ``rollback`` do nothing."""

    def __init__(self, jobs: BigQueryJobs) -> None:
        self.jobs = jobs

    def cursor(self) -> _Cursor:
        return _Cursor(self.jobs)

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def __enter__(self) -> BigQuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# the google provider's ways to authenticate that only its hook implements
_AIRFLOW_ONLY = ("impersonation_chain", "credential_config_file", "key_secret_name", "key_secret_project_id")


def _extra(extras: dict[str, Any], name: str) -> Any:
    """An extra as the google provider stores it, plain or with its old prefix."""
    return extras.get(name) or extras.get(f"extra__google_cloud_platform__{name}")


def client_from_connection(connection: Any, location: str | None = None) -> Any:
    """A client from a ``google_cloud_platform`` connection read without Airflow: ``project``,
    and ``is_anonymous`` (an emulator), ``keyfile_dict`` or ``key_path`` (a service account),
    else the machine's application default credentials."""
    extras = connection.extra_dejson
    unsupported = [k for k in _AIRFLOW_ONLY if _extra(extras, k)]
    if unsupported:
        raise BadInputError(
            f"connection '{connection.conn_id}': {', '.join(unsupported)} is read by the Airflow hook only; "
            "run this load in Airflow, or give key_path, keyfile_dict or application default credentials"
        )
    project = _extra(extras, "project") or _extra(extras, "project_id")
    if str(_extra(extras, "is_anonymous")).lower() == "true":
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()
    elif keyfile := _extra(extras, "keyfile_dict"):
        from google.oauth2 import service_account

        info = json.loads(keyfile) if isinstance(keyfile, str) else keyfile
        credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        project = project or info.get("project_id")
    elif path := _extra(extras, "key_path"):
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
        project = project or credentials.project_id
    else:
        import google.auth

        credentials, found = google.auth.default(scopes=SCOPES)
        project = project or found
    if not project:
        raise BadInputError(f"connection '{connection.conn_id}': give the project in its extra 'project'")
    return bigquery.Client(project=project, credentials=credentials, location=location)
