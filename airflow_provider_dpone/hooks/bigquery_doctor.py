"""``dpone doctor`` on a BigQuery connection: reachable and authenticated (timed), the project,
and for each load that writes to it and each state table it keeps what the BigQuery sink will
do there: the staging and target datasets (``datasets.get``), the target table
(``tables.get``), the permissions the load uses on it as BigQuery answers them
(``tables.testIamPermissions``) and a dry-run query job of a SELECT of it (``jobs.insert`` with
``dryRun``: ``bigquery.jobs.create`` on the project). Nothing is written: no dataset, table or
job that runs. The credentials go to the connection's BigQuery endpoint (or its emulator) only.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..contracts.doctor import ConnectionUse, Finding, LoadUse
from ..contracts.errors import BadInputError
from ..contracts.manifest import STATE_SCHEMA
from ..sql import bigquery_doctor as bd
from ..sql.dialect import TableRef
from ..sql.journal import JOURNAL_TABLE

API_TIMEOUT = 10.0  # seconds one API call may take, retries included: doctor must not hang


def _classify(exc: BaseException) -> str | None:
    """Which way the first call failed: unreachable, credentials refused or absent; None for an
    answer that proves BigQuery reached and authenticated us (a 403, a 404)."""
    import requests
    from google.api_core import exceptions as api_errors
    from google.auth import exceptions as auth_errors

    if isinstance(exc, auth_errors.DefaultCredentialsError | BadInputError):
        return bd.NO_CREDENTIALS
    if isinstance(exc, auth_errors.TransportError | requests.ConnectionError | requests.Timeout):
        return bd.UNREACHABLE
    if isinstance(exc, auth_errors.RefreshError | api_errors.Unauthorized):
        return bd.REFUSED
    if isinstance(exc, api_errors.RetryError | TimeoutError):
        return bd.UNREACHABLE
    if isinstance(exc, api_errors.GoogleAPICallError):
        return None
    return bd.UNREACHABLE if isinstance(exc, OSError) else None


_REQUEST = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")  # api-core's "<method> <url>: " prefix


def _message(exc: BaseException) -> str:
    """The first line of an error without the request's URL, with its HTTP status when it has one."""
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__).strip().splitlines()[0]
    text = _REQUEST.sub("", text)[:300]
    code = getattr(exc, "code", None)
    return f"{int(code)} {text}" if isinstance(code, int) and not text.startswith(str(code)) else text


class _Probe:
    """The checks of one connection on its client; every call read-only and time-bounded."""

    def __init__(self, engine: Any, use: ConnectionUse) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        self.engine, self.use = engine, use
        self.client = engine.jobs.client
        self.project = str(self.client.project)
        self.location: str | None = engine.location
        self.retry = bigquery.DEFAULT_RETRY.with_timeout(API_TIMEOUT)
        # anonymous credentials (an emulator): nothing is authorized, so no answer proves a permission
        self.anonymous = isinstance(getattr(self.client, "_credentials", None), AnonymousCredentials)
        self.datasets: dict[str, bd.Dataset] = {}

    def redact(self, text: str) -> str:
        return str(self.engine.redactor().redact(text))

    def denied(self, exc: BaseException) -> str | None:
        """BigQuery's message for a refused permission (403), else None."""
        from google.api_core import exceptions as api_errors

        return self.redact(_message(exc)) if isinstance(exc, api_errors.Forbidden) else None

    def ref(self, name: str, default_schema: str | None = None) -> TableRef:
        return self.engine.sql_dialect.parse_table(name, default_schema=default_schema)  # type: ignore[no-any-return]

    def table_id(self, ref: TableRef) -> str:
        return str(self.engine._table_id(ref))

    def dataset(self, table_id: str) -> bd.Dataset:
        """``datasets.get`` of the table's dataset (asked once)."""
        from google.api_core import exceptions as api_errors

        name = table_id.rpartition(".")[0]
        if name not in self.datasets:
            try:
                found = self.client.get_dataset(name, retry=self.retry, timeout=API_TIMEOUT)
                self.datasets[name] = bd.Dataset(name, True, found.location)
            except api_errors.NotFound:
                self.datasets[name] = bd.Dataset(name, False)
            except api_errors.Forbidden as exc:
                self.datasets[name] = bd.Dataset(name, True, denied=self.redact(_message(exc)))
        return self.datasets[name]

    def table(self, table_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the table's resource or None when missing, BigQuery's message for a 403)."""
        from google.api_core import exceptions as api_errors

        try:
            return dict(
                self.client.get_table(table_id, retry=self.retry, timeout=API_TIMEOUT).to_api_repr()
            ), None
        except api_errors.NotFound:
            return None, None
        except api_errors.Forbidden as exc:
            return None, self.redact(_message(exc))

    def granted(self, table_id: str, asked: list[str]) -> tuple[frozenset[str] | None, str]:
        """The permissions BigQuery says the caller holds on an existing table; None (and why)
        when it gives no answer."""
        from google.api_core import exceptions as api_errors

        try:
            answer = self.client.test_iam_permissions(table_id, asked, retry=self.retry, timeout=API_TIMEOUT)
        except api_errors.ClientError as exc:  # 405 from an emulator, 403, 404 ...
            return None, f"tables.testIamPermissions answered {self.redact(_message(exc))}"
        if self.anonymous:
            return None, "anonymous credentials: the endpoint checks no identity"
        return frozenset(answer.get("permissions", [])), ""

    def dry_run(self, sql: str) -> bd.DryRun:
        """A query job with dryRun: planned and authorized, never run."""
        from google.api_core import exceptions as api_errors
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False)
        try:
            job = self.client.query(
                sql,
                job_config=config,
                location=self.location,
                retry=self.retry,
                timeout=API_TIMEOUT,
                job_retry=None,
            )
        except api_errors.GoogleAPICallError as exc:
            return bd.DryRun(sql, self.redact(_message(exc)), isinstance(exc, api_errors.Forbidden))
        if not job.dry_run:  # an endpoint that ran it would have answered something else
            return bd.DryRun(sql, "the endpoint did not treat the job as a dry run")
        processed = job.total_bytes_processed
        return bd.DryRun(sql, bytes=None if processed is None else int(processed), checked=not self.anonymous)

    # --- what the loads use ------------------------------------------------------------------

    def datasets_of(self, subject: str, uses: list[tuple[str, str, bool]]) -> list[Finding]:
        """(table id, what, creates) for each dataset a load uses, then their locations."""
        found: list[Finding] = []
        seen: list[bd.Dataset] = []
        for table_id, what, creates in uses:
            ds = self.dataset(table_id)
            seen.append(ds)
            found += bd.dataset_findings(subject, ds, project=self.project, what=what, creates=creates)
        return found + bd.location_findings(subject, self.location, seen)

    def existing(
        self, subject: str, table_id: str, what: str, needs: bd.TargetNeeds
    ) -> tuple[list[Finding], bool]:
        """An existing or missing table the load uses, and whether it exists."""
        resource, denied = self.table(table_id)
        if denied is not None:
            return [
                Finding(
                    "fail",
                    "privilege",
                    subject,
                    f"{table_id} ({what}) cannot be read: {denied}",
                    fix=f"grant {bd.GET} on {table_id} or its dataset",
                )
            ], True
        if resource is None:
            return [
                Finding(
                    "info",
                    "object",
                    subject,
                    f"{table_id} ({what}) does not exist; the first run creates it "
                    f"({bd.CREATE_TABLE} on its dataset)",
                )
            ], False
        kind = str(resource.get("type", "TABLE"))
        if kind != "TABLE":
            return [
                Finding("fail", "object", subject, f"{table_id} ({what}) is a {kind}: DML cannot write it")
            ], True
        found = [Finding("ok", "object", subject, f"{table_id} ({what}) exists")]
        granted, why = self.granted(table_id, needs.asked)
        return found + bd.iam_findings(subject, table_id, needs, granted, why), True

    def sink(self, load: LoadUse) -> list[Finding]:
        subject, spec = f"{load.key} sink", load.load.sink
        assert spec.table is not None  # a table sink: validation requires it
        target = self.table_id(self.ref(spec.table))
        staging = self.table_id(self.engine.sql_dialect.table(spec.staging.schema_name, "x"))
        found, exists = self.existing(subject, target, "the target", bd.target_needs(load.load))
        found = (
            self.datasets_of(subject, [(staging, "staging", True), (target, "the target", not exists)])
            + found
        )
        if not any(f.status == "fail" for f in found):
            quoted = self.engine.sql_dialect.parse_table(target).sql
            sql = f"select * from {quoted}" if exists else "select 1"
            found += bd.dry_run_findings(
                subject, self.dry_run(sql), project=self.project, reads=target if exists else None
            )
        if not any(p == load.pipeline for p, _ in self.use.states):  # state elsewhere: journaled here
            journal = self.table_id(self.engine.sql_dialect.table(spec.staging.schema_name, JOURNAL_TABLE))
            more, _ = self.existing(
                subject,
                journal,
                "the crash journal, when state is kept elsewhere",
                bd.TargetNeeds(bd.JOURNAL),
            )
            found += more
        files = spec.staging.files
        if files is not None and files.uri.startswith("gs://"):
            found.append(bd.gcs_finding(subject, files.uri))
        return found

    def state(self, pipeline: str, table: str) -> list[Finding]:
        subject = f"{pipeline} state"
        table_id = self.table_id(self.ref(table, default_schema=STATE_SCHEMA))  # as the backend reads it
        found, exists = self.existing(subject, table_id, "the state table", bd.TargetNeeds(bd.STATE))
        return self.datasets_of(subject, [(table_id, "the state table", not exists)]) + found


def _first_dataset(probe: _Probe) -> str:
    """A dataset the loads use: the first call, which shows the endpoint answers and accepts us."""
    use = probe.use
    if use.sinks:
        spec = use.sinks[0].load.sink
        return probe.table_id(probe.engine.sql_dialect.table(spec.staging.schema_name, "x"))
    return probe.table_id(probe.ref(use.states[0][1].table, default_schema=STATE_SCHEMA))


def check(engine: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one BigQuery connection and the loads and state tables on it."""
    started = time.monotonic()
    try:
        probe = _Probe(engine, use)
        first = probe.dataset(_first_dataset(probe))
    except Exception as exc:
        kind = _classify(exc)
        if kind is None:
            raise  # cli.doctor reports it, redacted
        message = str(engine.redactor().redact(_message(exc)))
        return bd.connect_findings(use.conn_id, kind, message, time.monotonic() - started)
    seconds = time.monotonic() - started
    how = "anonymous credentials (an emulator)" if probe.anonymous else "its credentials"
    found = [
        Finding(
            "ok", "reachable", use.conn_id, f"BigQuery answered datasets.get of {first.name}", seconds=seconds
        ),
        Finding("ok", "authenticated", use.conn_id, f"with {how}"),
        Finding(
            "info",
            "setting",
            use.conn_id,
            f"project {probe.project}; jobs run in {probe.location or 'the location BigQuery picks (none set)'}",
        ),
    ]
    for load in use.sinks:
        found += probe.sink(load)
    for pipeline, state in use.states:
        found += probe.state(pipeline, state.table)
    return found
