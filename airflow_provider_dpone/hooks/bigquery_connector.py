"""The BigQuery sink: staging filled by Parquet load jobs (from GCS when the load staged its files
there, else each file uploaded), then the steps ``sql.bigquery_finalize`` plans, as query jobs:
read-only guards, the DDL BigQuery refuses inside a transaction, then one transaction script
with the data and the state (or journal) row; ``dpone plan`` renders the same steps.

``BigQueryConnector`` is the sink without its client: ``hooks.bigquery`` puts it on the official
``BigQueryHook`` (its ``google_cloud_platform`` connection), ``BigQueryEngine`` here stands alone
for the command line. With ``BIGQUERY_EMULATOR_HOST`` set (bqemulator), a full refresh empties
its target by DELETE: the emulator does not roll a TRUNCATE back with its transaction.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..contracts.artifacts import (
    CSV,
    ExtractResult,
    FileExport,
    ObjectStorageStagingManifest,
    iter_row_batches,
)
from ..contracts.errors import BadInputError, TransientError
from ..contracts.redaction import Redactor
from ..contracts.strategies import Strategy
from ..contracts.table import CanonicalType, TableSchema
from ..runtime.failpoints import failpoint
from ..runtime.guards import missing_target_error
from ..runtime.protocols import LoadContext, StagedData, Statement
from ..runtime.staging_label import staging_label
from ..schema.planner import SchemaPlan, enforce_schema_plan, plan_schema
from ..sql.bigquery import BigQueryDialect
from ..sql.bigquery_catalog import schema_from_api
from ..sql.bigquery_finalize import BigQueryFacts, bigquery_result, plan_bigquery_finalize
from ..sql.bigquery_types import stored
from ..sql.dialect import TableRef
from ..sql.finalize import FinalizeJob
from ..sql.finalize_sink import finalize_job, staged_job
from ..sql.journal import JournalingStagingSink
from ..sql.steps import Outcome, Step, render, run_steps, step_dict
from ..sql.targets import data_schema, managed_columns, target_primary_key
from .bigquery_client import BigQueryJobs, BigQuerySession, client_from_connection
from .connection import StandaloneConnection

log = logging.getLogger(__name__)

LOAD_FORMAT = "bigquery_load_job"
MAX_URIS = 10_000  # source URIs one load job takes
DIALECT = BigQueryDialect()
EMULATED = BigQueryDialect(truncate_in_transaction=False)


class BigQueryConnector(JournalingStagingSink):
    """The sink over the client of the class it is mixed into (``_client``)."""

    accepted_formats: tuple[str, ...] = (CSV,)  # PostgreSQL's CSV COPY, parsed by pyarrow into Parquet
    sql_dialect = DIALECT
    location: str | None = None
    dpone_conn_id: str  # the connection's id (the hook or the standalone connection gives it)
    _jobs: BigQueryJobs | None = None

    def _client(self) -> Any:
        raise NotImplementedError

    @property
    def jobs(self) -> BigQueryJobs:
        if self._jobs is None:
            self._jobs = BigQueryJobs(self._client(), self.sql_dialect, self.location)
        return self._jobs

    @property
    def planning_dialect(self) -> BigQueryDialect:
        """The dialect finalize plans with (the emulator's when it runs against one)."""
        return EMULATED if self.jobs.emulated else DIALECT

    def _read(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.jobs.query(statement, params or ())[2]

    def _write(self, statement: str, params: Any = None) -> None:
        self.jobs.query(statement, params or ())

    @contextmanager
    def session(self, what: str = "") -> Iterator[BigQuerySession]:
        """A DB-API-shaped session (the state table's backend reads and writes through it)."""
        yield BigQuerySession(self.jobs)

    def _dataset_exists(self, dataset: str) -> bool:
        return self.jobs.dataset_exists(dataset if "." in dataset else f"{self.jobs.project}.{dataset}")

    def _staging_dataset(self, staging: TableRef) -> list[Step]:
        """The staging dataset's creation, when it is missing."""
        if self._dataset_exists(staging.schema):
            return []
        return [Step(self.sql_dialect.create_schema(staging.schema), note="the staging dataset")]

    def has_table(self, table: TableRef) -> bool:
        """Asked of the API (a missing dataset's INFORMATION_SCHEMA is an error, not empty)."""
        return self.jobs.table_exists(self._table_id(table))

    def _journal_exists(self, table: TableRef) -> bool:
        return self.has_table(table)

    def hosts_state(self, conn_id: str) -> bool:
        """A state table on ``conn_id`` commits in this sink's transaction script when it is this connection."""
        return conn_id == self.dpone_conn_id

    def redactor(self) -> Redactor:
        return Redactor.of_connection(lambda: self.get_connection(self.dpone_conn_id))  # type: ignore[attr-defined]

    def release(self) -> None:
        if self._jobs is not None:
            close = getattr(self._jobs.client, "close", None)
            if close is not None:
                close()
            self._jobs = None

    def dataset(self, table: str) -> dict[str, str]:
        """OpenLineage naming: ``bigquery`` and ``project.dataset.table``."""
        ref = self.sql_dialect.parse_table(table)
        return {"namespace": "bigquery", "name": f"{self._table_id(ref)}"}

    def _table_id(self, table: TableRef) -> str:
        """``project.dataset.table`` as the API names it (the client's project by default)."""
        return f"{table}" if str(table).count(".") >= 2 else f"{self.jobs.project}.{table}"

    # --- staging -----------------------------------------------------------------------------------

    def stage(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        staging = self.staging_table(ctx)
        for step in self._staging_dataset(staging):  # the sweep reads the dataset
            self._write(step.sql)
        self.sweep_stale_staging(ctx)
        return self._stage_into(ctx, staging, extract)

    def stage_key_set(self, ctx: LoadContext, extract: ExtractResult) -> StagedData:
        """Stage the source's full key set next to the batch (reconciliation of incremental loads)."""
        return self._stage_into(ctx, self.staging_table(ctx, "keys"), extract)

    def _stage_into(self, ctx: LoadContext, staging: TableRef, extract: ExtractResult) -> StagedData:
        d, schema = self.sql_dialect, extract.schema
        self._write(d.drop_table(staging))
        born = float(self._read(d.now_epoch())[0][0])
        self._write(d.create_staging_table(staging, schema, staging_label(ctx, born)))
        rows, size = self._load(staging, schema, extract)
        log.info("staged %s rows into %s by load job", f"{rows:,}", staging)
        return StagedData(staging=str(staging), schema=schema, rows=rows, bytes=size, format=LOAD_FORMAT)

    def _load(self, staging: TableRef, schema: TableSchema, extract: ExtractResult) -> tuple[int, int | None]:
        """Fill staging by load jobs; the rows loaded and the Parquet bytes sent."""
        from ..staging.files import stage_csv, stage_parquet
        from ..staging.store import store_for

        table_id, fields = self._table_id(staging), self.sql_dialect.staging_load_schema(schema)
        artifact = extract.artifact
        if isinstance(artifact, ObjectStorageStagingManifest):
            manifest = artifact.manifest
            if manifest.format != "parquet":
                raise BadInputError(
                    f"{manifest.uri} holds {manifest.format} files, which only a PostgreSQL sink loads; "
                    "BigQuery loads Parquet staging"
                )
            store = store_for(manifest.uri, artifact.conn_id)
            if manifest.uri.startswith("gs://"):  # verified here, then read by BigQuery
                _verify(store, manifest)
                loaded = 0
                for start in range(0, len(manifest.files), MAX_URIS):  # a load job takes 10,000 URIs
                    part = manifest.files[start : start + MAX_URIS]
                    uris = [manifest.location(f) for f in part]
                    loaded += self.jobs.load_uris(uris, table_id, fields, sum(f.rows for f in part))
                return loaded, manifest.bytes
            return self._load_files(store, manifest, table_id, fields), manifest.bytes
        if isinstance(artifact, FileExport) and artifact.format != CSV:
            raise BadInputError(f"bigquery sink cannot load {artifact.format!r} exports")
        with tempfile.TemporaryDirectory(prefix="dpone-bq-") as tmp:
            # each Parquet file is loaded and deleted as soon as it is written: one file on disk
            local = _LoadingStore(f"file://{tmp}", self.jobs, table_id, fields)
            if isinstance(artifact, FileExport):
                manifest = stage_csv(local, schema, artifact.chunks)
            else:
                manifest = stage_parquet(local, schema, iter_row_batches(artifact))
            sent = extract.stats.source_rows
            if local.loaded != manifest.rows or (sent is not None and sent != manifest.rows):
                raise BadInputError(
                    f"the source sent {sent if sent is not None else '?'} rows, {manifest.rows:,} were "
                    f"written for loading and {local.loaded:,} loaded; nothing is finalized"
                )
            return local.loaded, manifest.bytes

    def _load_files(self, store: Any, manifest: Any, table_id: str, fields: list[dict[str, str]]) -> int:
        """Each file, its bytes verified, appended by a load job of its own (one file in memory)."""
        from ..contracts.staging_manifest import verify_file

        loaded = 0
        for staged in manifest.files:
            chunks = store.read(staged.name)
            data = None if chunks is None else b"".join(chunks)
            verify_file(manifest, staged, None if data is None else [data])
            assert data is not None
            loaded += self.jobs.load_bytes(data, table_id, fields, staged.rows)
            failpoint("mid_copy")
        return loaded

    # --- the target ----------------------------------------------------------------------------------

    def _resource(self, target: TableRef) -> dict[str, Any] | None:
        return self.jobs.table(self._table_id(target))

    def _current(
        self, resource: dict[str, Any] | None, batch: TableSchema | None = None
    ) -> TableSchema | None:
        """The target's columns from its resource. bqemulator drops a NUMERIC's precision and
        scale (it stores every one as 38,9) and reads a JSON column back as STRING: there a
        decimal reads as unbounded (it holds the batch's) and a STRING column the batch has as
        JSON as JSON, instead of changes that were never made."""
        if resource is None:
            return None
        current = schema_from_api(resource["schema"]["fields"])
        if not self.jobs.emulated:
            return current
        json_in_batch = {c.name for c in batch.columns if c.type is CanonicalType.JSON} if batch else set()

        def as_meant(c: Any) -> Any:
            if c.type is CanonicalType.DECIMAL:
                return replace(c, precision=None, scale=None)
            if c.type is CanonicalType.STRING and c.name in json_in_batch:
                return stored(replace(c, type=CanonicalType.JSON, native_type=None, dialect=None))
            return c

        return TableSchema(tuple(map(as_meant, current.columns)), current.primary_key, current.extras)

    def _plan_schema(
        self, ctx: LoadContext, schema: TableSchema, resource: dict[str, Any] | None
    ) -> SchemaPlan:
        evolution = ctx.load.schema_evolution
        data = data_schema(schema)
        current = self._current(resource, data)
        as_stored = TableSchema(tuple(stored(c) for c in data.columns), data.primary_key, data.extras)
        return plan_schema(
            as_stored,
            current,
            mode=evolution.mode,
            on_type_change=evolution.on_type_change,
            ignore_target_columns=[c.name for c in managed_columns(ctx.load)],
            rewrites_all_rows=ctx.load.rewrites_whole_target,
        )

    def schema_plan(self, ctx: LoadContext, schema: TableSchema) -> SchemaPlan:
        return self._plan_schema(ctx, schema, self._resource(self.target_table(ctx)))

    def target_rows(self, ctx: LoadContext, *, exact: bool = False) -> int | None:
        """None when the target is missing; else whether it has rows (0/1), or its row count."""
        target = self.target_table(ctx)
        if self._resource(target) is None:
            return None
        query = (
            f"select count(*) from {target.sql}"
            if exact
            else f"select count(*) from (select 1 from {target.sql} limit 1)"
        )
        return int(self._read(query)[0][0])

    def target_watermark(self, ctx: LoadContext, column: str) -> tuple[str, str] | None:
        """max(``column``) in the target as text, with its canonical type; None when empty."""
        target = self.target_table(ctx)
        current = self._current(self._resource(target))
        if current is None or not current.has(column):
            raise BadInputError(
                f"source.incremental.on_state_missing: from_target needs column '{column}' in {target}"
            )
        value = self._read(
            f"select cast(max({self.sql_dialect.quote_ident(column)}) as string) from {target.sql}"
        )[0][0]
        return None if value is None else (str(value), current.column(column).type.value)

    def _facts(self, job: FinalizeJob, resource: dict[str, Any] | None) -> BigQueryFacts:
        """The target as finalize finds it. Partitions are replaced by a scoped DELETE + INSERT
        in the transaction script, never by partition decorators: a decorator's WRITE_TRUNCATE
        replaces a whole day (a load of some hours of a timestamp column would drop the rest),
        commits apart from the state, and has not run against a real BigQuery here. An append
        skips the keys the target already holds (the source's primary key, as PostgreSQL's
        target declares it), so re-read rows are not added twice."""
        if resource is None:
            return BigQueryFacts(exists=False, dataset_exists=self._dataset_exists(job.target.schema))
        columns = tuple(schema_from_api(resource["schema"]["fields"]).names)
        keys: tuple[str, ...] = ()
        if job.load.sink.strategy is Strategy.INCREMENTAL_APPEND and job.schema is not None:
            # the key as the target names it (a column the schema plan renamed has a new name)
            wanted = tuple(job.mapping.get(k, k) for k in target_primary_key(job.load, job.schema))
            keys = wanted if all(k in columns for k in wanted) else ()
        return BigQueryFacts(True, columns, None, primary_key=keys)

    def _job(
        self, ctx: LoadContext, schema: TableSchema | None, plan: SchemaPlan | None, **kw: Any
    ) -> FinalizeJob:
        return finalize_job(self, ctx, schema, plan, **kw)

    # --- finalize ----------------------------------------------------------------------------------

    def finalize(self, ctx: LoadContext, staged: StagedData, extra: list[Statement]) -> dict[str, Any]:
        """The planned steps as query jobs: guards, DDL, then one transaction script with ``extra``
        (the colocated state or the journal row) in it."""
        target, d = self.target_table(ctx), self.planning_dialect
        resource = self._resource(target)
        plan = self._plan_schema(ctx, staged.schema, resource)
        enforce_schema_plan(plan, str(target))
        if not plan.target_exists and ctx.expects_target:
            raise missing_target_error(ctx, during_load=True)
        job = staged_job(self, ctx, staged, plan, d)
        facts = self._facts(job, resource)
        # counted again inside the transaction: one snapshot with what the script reads
        recount = [(d.assert_rows(job.staging, staged.rows), ())]
        steps = plan_bigquery_finalize(d, job, facts, [*recount, *extra])
        self._check_staged(job.staging, staged.rows)
        failpoint("mid_finalize")  # nothing of the transaction has run yet
        outcomes = run_steps(steps, self._executor(target))
        return {
            "schema_changes": [c.describe() for c in plan.to_apply],
            **bigquery_result(job, facts, outcomes),
        }

    def _checked_staging(self, staged: StagedData) -> TableRef:
        """Staging read as the target's types (it keeps a numeric without precision, a time and
        a uuid as text), so ``amount < 0`` and key checks compare values, not their text."""
        d = self.sql_dialect
        return d.typed_staging(d.parse_table(staged.staging), data_schema(staged.schema))

    def _check_staged(self, staging: TableRef, rows: int) -> None:
        """Staging holds exactly the rows staged: a load job a killed try left running cannot
        have appended to it unseen."""
        found = int(self._read(self.sql_dialect.count_rows(staging))[0][0])
        if found != rows:
            raise TransientError(
                f"staging {staging} holds {found:,} rows where {rows:,} were staged (a load job of an "
                "earlier try finished late); nothing was finalized, the next try stages again"
            )

    def _executor(self, target: TableRef) -> Callable[[Step], Outcome]:
        def execute(step: Step) -> Outcome:
            params = list(step.params.values()) if isinstance(step.params, dict) else list(step.params or ())
            count, names, rows = self.jobs.query(step.sql, params)
            return Outcome(count, rows if names else None)

        return execute

    def plan_load(
        self,
        ctx: LoadContext,
        schema: TableSchema | None,
        binary: bool = True,
        schema_plan: SchemaPlan | None = None,
    ) -> dict[str, Any]:
        """The jobs this load would run, planned from the target's resource (read-only)."""
        target, staging, d = self.target_table(ctx), self.staging_table(ctx), self.planning_dialect
        steps = self._staging_dataset(staging)
        if schema is not None:
            steps.append(Step(d.create_staging_table(staging, schema, "<the run's label>")))
        steps.append(
            Step(f"-- load job: the staged Parquet files appended to {staging.sql} (one job from GCS)")
        )
        resource = self._resource(target)
        job = self._job(ctx, schema, schema_plan, key_set=self.staging_table(ctx, "keys"))
        recount = [(d.assert_rows(staging, None), ())]  # the run puts in the rows it staged
        finalize = plan_bigquery_finalize(d, job, self._facts(job, resource), recount)
        lines = render(steps)
        if resource is None and ctx.expects_target:
            lines.append(f"-- fails: {target} is missing while the load's state says it was loaded")
        return {
            "target": str(target),
            "staging": str(staging),
            "statements": lines + render(finalize),
            "steps": [step_dict(s) for s in finalize],
        }


class _LoadingStore:
    """A local directory whose Parquet files go to BigQuery as they are written: each is loaded
    by a job of its own and deleted, so the disk holds one file, not the extract."""

    def __init__(self, uri: str, jobs: BigQueryJobs, table_id: str, fields: list[dict[str, str]]) -> None:
        from ..staging.store import LocalStore

        self._files = LocalStore(uri)
        self.uri, self.jobs, self.table_id, self.fields, self.loaded = uri, jobs, table_id, fields, 0

    def write(self, name: str, chunks: Any) -> None:
        if not name.endswith(".parquet"):
            self._files.write(name, chunks)  # the manifest: a few bytes
            return
        data = b"".join(chunks)  # one file, as the writer holds it anyway
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        self.loaded += self.jobs.load_bytes(data, self.table_id, self.fields, rows)
        failpoint("mid_copy")

    def read(self, name: str) -> Any:
        return self._files.read(name)

    def delete(self, name: str) -> None:
        self._files.delete(name)

    def names(self) -> list[str]:
        return self._files.names()


def _verify(store: Any, manifest: Any) -> None:
    """Every file's size and SHA-256 checked against the manifest before a load job reads it."""
    from ..contracts.staging_manifest import verify_file

    for staged in manifest.files:
        verify_file(manifest, staged, store.read(staged.name))


class BigQueryEngine(BigQueryConnector, StandaloneConnection):
    """The BigQuery sink standing alone, without Airflow's classes: what ``dpone run``, ``plan``
    and ``state`` use. Its ``google_cloud_platform`` connection comes from ``AIRFLOW_CONN_<ID>``."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(conn_id)
        self.location = self.get_connection(conn_id).extra_dejson.get("location")

    def _client(self) -> Any:
        return client_from_connection(self.get_connection(self.conn_id), self.location)
