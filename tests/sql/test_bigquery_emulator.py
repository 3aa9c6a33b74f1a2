"""The BigQuery dialect's statements, run: staging filled by a Parquet load job, each strategy's
planned steps executed as query jobs (the transaction as one script), the target and the state
table read back; and a load job reading Parquet from ``gs://`` that GCSHook wrote. Runs against
``bqemulator`` (BigQuery's REST API over DuckDB) beside an on-disk GCS emulator, both started
here (tests/bigquery_fixtures.py, demo/bigquery_server.py); without ``.bqemu/``
(``scripts/bqemulator.sh``) the tests skip, saying why.

What the emulator cannot do (partition decorators, BIGNUMERIC, DML statistics, isolation) is
not asserted here; see the live profile (``DPONE_BIGQUERY_PROJECT``)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.table import CanonicalType as T
from airflow_provider_dpone.contracts.table import Column, TableSchema
from airflow_provider_dpone.sql.bigquery import BigQueryDialect
from airflow_provider_dpone.sql.bigquery_catalog import schema_from_api
from airflow_provider_dpone.sql.bigquery_finalize import BigQueryFacts, plan_bigquery_finalize
from airflow_provider_dpone.sql.finalize import FinalizeJob
from airflow_provider_dpone.sql.steps import Outcome, Step, run_steps

if TYPE_CHECKING:
    from tests.bigquery_fixtures import BigQueryTarget

d = BigQueryDialect(truncate_in_transaction=False)  # bqemulator 1.4 does not roll TRUNCATE back
# A 500 from the emulator would keep the client's default retry going for 600 s: short ones here.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
bigquery = pytest.importorskip("google.cloud.bigquery")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RETRY = bigquery.DEFAULT_RETRY.with_timeout(20)
SCHEMA = TableSchema(
    (
        Column("id", T.INT64, nullable=False),
        Column("name", T.STRING),
        Column("day", T.DATE, nullable=False),
        Column("at", T.TIME),
        Column("doc", T.JSON),
        Column("amount", T.DECIMAL, precision=12, scale=2),
    ),
    ("id",),
)


@pytest.fixture
def client(bigquery_target: BigQueryTarget) -> Any:
    """The emulator's client, found through BIGQUERY_EMULATOR_HOST (as Airflow's hook finds it)."""
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(project=bigquery_target.project, credentials=AnonymousCredentials())


@pytest.fixture
def dataset(client: Any, bigquery_target: BigQueryTarget) -> Any:
    name = f"{bigquery_target.project}.{bigquery_target.dataset}"
    client.create_dataset(name, retry=RETRY, timeout=30)
    yield name
    client.delete_dataset(name, delete_contents=True, not_found_ok=True, retry=RETRY, timeout=30)


def run(client: Any, sql: str) -> None:
    client.query(sql, job_retry=None, retry=RETRY).result(retry=RETRY, timeout=60, job_retry=None)


def execute(client: Any, step: Step) -> Outcome:
    sql = d.inline(step.sql, step.params) if step.params else step.sql
    job = client.query(sql, job_retry=None, retry=RETRY)
    rows = [tuple(r.values()) for r in job.result(retry=RETRY, timeout=60, job_retry=None)]
    return Outcome(job.num_dml_affected_rows or 0, rows)


def stage(client: Any, dataset: str, rows: list[tuple], name: str = "items__stg") -> Any:
    """A staging table in the staged types, filled from a Parquet file by a load job."""
    from airflow_provider_dpone.staging.arrow import rows_to_arrow

    table = d.table(dataset, name)
    run(client, d.create_staging_table(table, SCHEMA, '{"dpone_staging": "p.items"}'))
    buf = io.BytesIO()
    pq.write_table(rows_to_arrow(SCHEMA, SCHEMA.names, rows, unbounded=None), buf)
    config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_APPEND")
    load = client.load_table_from_file(
        io.BytesIO(buf.getvalue()), f"{dataset}.{name}", job_config=config, timeout=60
    )
    assert load.result(retry=RETRY, timeout=60).output_rows == len(rows)
    return table


def make_job(
    dataset: str, staging: Any, sink: dict[str, Any], extras: dict[str, Any] | None = None, staged: int = 1
) -> FinalizeJob:
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", **sink},
        **(extras or {}),
    }
    load = parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]
    return FinalizeJob(
        key="p.items",
        load=load,
        target=d.table(dataset, "items"),
        staging=staging,
        schema=SCHEMA,
        staged_rows=staged,
    )


def facts(client: Any, table: Any) -> BigQueryFacts:
    from google.api_core.exceptions import NotFound

    try:
        resource = client.get_table(str(table), retry=RETRY, timeout=30).to_api_repr()
    except NotFound:
        return BigQueryFacts(exists=False)
    return BigQueryFacts(True, tuple(schema_from_api(resource["schema"]["fields"]).names))


def finalize(client: Any, job: FinalizeJob, state: Any = None, record: str = "{}") -> None:
    extra = [(d.upsert_state(state), ("p", "items", record, "run-1"))] if state is not None else []
    run_steps(plan_bigquery_finalize(d, job, facts(client, job.target), extra), lambda s: execute(client, s))


def rows(client: Any, sql: str) -> list[tuple]:
    job = client.query(sql, job_retry=None, retry=RETRY)
    return [tuple(r.values()) for r in job.result(retry=RETRY, timeout=60, job_retry=None)]


def row(i: int, name: str, day: int = 1) -> tuple:
    return (i, name, dt.date(2026, 1, day), dt.time(1, 2, 3), f'{{"n": {i}}}', Decimal(f"{i}.50"))


def test_full_refresh_creates_then_replaces_rows_with_the_state_in_one_transaction(client, dataset):
    state = d.table(dataset, "state")
    for statement in d.create_state_table(state):
        run(client, statement)
    staging = stage(client, dataset, [row(1, "a"), row(2, "b")])
    job = make_job(dataset, staging, {"strategy": "full_refresh"})
    finalize(client, job, state, '{"v": 1}')
    target = job.target.sql
    assert rows(client, f"select id, name, `at`, to_json_string(doc), amount from {target} order by id") == [
        (1, "a", dt.time(1, 2, 3), '{"n":1}', Decimal("1.50")),
        (2, "b", dt.time(1, 2, 3), '{"n":2}', Decimal("2.50")),
    ]
    staging2 = stage(client, dataset, [row(3, "c")], name="items__stg2")
    finalize(client, make_job(dataset, staging2, {"strategy": "full_refresh"}), state, '{"v": "it\'s 2"}')
    assert rows(client, f"select id from {target}") == [(3,)]
    assert rows(client, f"select state, run_id from {state.sql}") == [('{"v": "it\'s 2"}', "run-1")]


def test_a_failing_transaction_changes_neither_data_nor_state(client, dataset):
    state = d.table(dataset, "state")
    for statement in d.create_state_table(state):
        run(client, statement)
    staging = stage(client, dataset, [row(1, "a")])
    job = make_job(dataset, staging, {"strategy": "full_refresh"})
    finalize(client, job, state, '{"v": 1}')
    insert = d.insert_select(job.target, d.typed_staging(staging, SCHEMA), SCHEMA.names)
    broken = d.script(
        [d.truncate(job.target), insert, "select error('dpone: injected')"],
        [(d.upsert_state(state), ("p", "items", '{"v": 2}', "run-2"))],
    )
    with pytest.raises(Exception, match="injected"):
        run(client, broken)
    assert rows(client, f"select count(*) from {job.target.sql}") == [(1,)]
    assert rows(client, f"select state from {state.sql}") == [('{"v": 1}',)]


def test_merge_updates_inserts_and_deletes_what_the_full_extract_lost(client, dataset):
    first = stage(client, dataset, [row(1, "a"), row(2, "b"), row(3, "c")])
    finalize(client, make_job(dataset, first, {"strategy": "incremental_merge", "unique_key": ["id"]}))
    second = stage(client, dataset, [row(1, "a2"), row(2, "b"), row(4, "d")], name="items__stg2")
    rec = {"reconciliation": {"deletes": "hard", "max_delete_fraction": 0.5}}
    job = make_job(dataset, second, {"strategy": "incremental_merge", "unique_key": ["id"]}, rec)
    finalize(client, job)
    assert rows(client, f"select id, name from {job.target.sql} order by id") == [
        (1, "a2"),
        (2, "b"),
        (4, "d"),
    ]


def test_soft_deletes_mark_rows_and_bring_them_back(client, dataset):
    rec = {"reconciliation": {"deletes": "soft", "max_delete_fraction": 0.9}}
    sink = {"strategy": "incremental_merge", "unique_key": ["id"]}
    finalize(client, make_job(dataset, stage(client, dataset, [row(1, "a"), row(2, "b")]), sink, rec))
    finalize(client, make_job(dataset, stage(client, dataset, [row(1, "a")], name="s2"), sink, rec))
    target = d.table(dataset, "items").sql
    assert rows(client, f"select id, _dpone_deleted_at is not null from {target} order by id") == [
        (1, False),
        (2, True),
    ]
    finalize(
        client, make_job(dataset, stage(client, dataset, [row(1, "a"), row(2, "b")], name="s3"), sink, rec)
    )
    assert rows(client, f"select id, _dpone_deleted_at is not null from {target} order by id") == [
        (1, False),
        (2, False),
    ]


def test_append_replace_and_scoped_partition_replace(client, dataset):
    target = d.table(dataset, "items").sql
    finalize(
        client,
        make_job(
            dataset,
            stage(client, dataset, [row(1, "a", 1), row(2, "b", 2)]),
            {"strategy": "incremental_append"},
        ),
    )
    window = {
        "strategy": "replace",
        "replace": {"window": {"column": "day", "start": "2026-01-02", "end": "2026-01-03"}},
    }
    finalize(client, make_job(dataset, stage(client, dataset, [row(5, "e", 2)], name="s2"), window))
    assert rows(client, f"select id, day from {target} order by id") == [
        (1, dt.date(2026, 1, 1)),
        (5, dt.date(2026, 1, 2)),
    ]
    by_day = {"strategy": "partition_replace", "partition_by": ["day"]}
    finalize(
        client, make_job(dataset, stage(client, dataset, [row(7, "g", 1), row(8, "h", 3)], name="s3"), by_day)
    )
    assert rows(client, f"select id from {target} order by id") == [(5,), (7,), (8,)]


def test_an_append_with_a_unique_key_skips_the_keys_the_target_holds(client, dataset):
    target = d.table(dataset, "items").sql
    keyed = {"strategy": "incremental_append", "unique_key": ["id"]}
    finalize(client, make_job(dataset, stage(client, dataset, [row(1, "a"), row(2, "b")]), keyed))
    # the second batch re-reads key 2 (a lookback): only key 3 is new
    finalize(client, make_job(dataset, stage(client, dataset, [row(2, "B"), row(3, "c")], name="s2"), keyed))
    assert rows(client, f"select id, name from {target} order by id") == [(1, "a"), (2, "b"), (3, "c")]


def test_quality_fragments_and_key_guards_run_on_staging(client, dataset):
    staging = stage(
        client, dataset, [row(1, "a"), row(1, None), (None, "x", dt.date(2026, 1, 1), None, None, None)]
    )
    not_null, _ = d.quality_not_null(staging, ["id", "name"])
    assert rows(client, not_null) == [(2, 1, 1)]
    unique, _ = d.quality_unique(staging, ["id"])
    assert rows(client, unique) == [(1, 2)]
    accepted, _, params = d.quality_accepted_values(staging, SCHEMA.column("name"), ["a"])
    assert rows(client, d.inline(accepted, params)) == [(1,)]
    assert rows(client, d.null_keys(staging, ["id"]))[0][0] == 1
    assert rows(client, d.duplicate_keys(staging, ["id"])) == [(1, 2)]
    assert rows(client, d.quality_freshness(staging, "day"))[0][0] > 0
    query, params = d.staging_tables(staging.schema)
    assert rows(client, d.inline(query, params)) == [("items__stg", '{"dpone_staging": "p.items"}')]


def test_a_load_job_reads_parquet_that_gcshook_put_in_the_gcs_emulator(client, dataset, bigquery_target):
    """Staging through GCS: GCSHook (the ``bq`` connection, anonymous) uploads Parquet parts into
    the on-disk GCS emulator, and a load job takes them by a ``gs://`` wildcard."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    from airflow_provider_dpone.staging.arrow import rows_to_arrow

    gcs = GCSHook(gcp_conn_id=bigquery_target.conn_id)
    bucket = bigquery_target.dataset.replace("_", "-")
    gcs.create_bucket(bucket_name=bucket, project_id=bigquery_target.project)
    for part, batch in enumerate([[row(1, "a"), row(2, "b")], [row(3, "c")]]):
        buf = io.BytesIO()
        pq.write_table(rows_to_arrow(SCHEMA, SCHEMA.names, batch, unbounded=None), buf)
        gcs.upload(bucket_name=bucket, object_name=f"x/part-{part}.parquet", data=buf.getvalue())
    gcs.upload(bucket_name=bucket, object_name="y/part-0.parquet", data=b"not under x/: not loaded")
    table = d.table(dataset, "items__stg")
    run(client, d.create_staging_table(table, SCHEMA, '{"dpone_staging": "p.items"}'))
    config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_APPEND")
    load = client.load_table_from_uri(
        f"gs://{bucket}/x/*.parquet", f"{dataset}.items__stg", job_config=config, retry=RETRY, timeout=30
    )
    assert load.result(retry=RETRY, timeout=60).output_rows == 3
    typed = d.typed_staging(table, SCHEMA)
    assert rows(client, f"select id, name, amount from {typed.sql} order by id") == [
        (1, "a", Decimal("1.50")),
        (2, "b", Decimal("2.50")),
        (3, "c", Decimal("3.50")),
    ]
