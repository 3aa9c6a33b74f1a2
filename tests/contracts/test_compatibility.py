"""What docs/compatibility.md promises as stable within v1, held where it is cheap to hold: the
v1 example manifest and its listed values, every state kind read back as written (and without
the fields added later), the run report's JSON keys, the exit codes, the connection types with
their form fields and the pip extras."""

from __future__ import annotations

import importlib.metadata
import json
import typing

import pytest
import yaml

from airflow_provider_dpone.contracts.manifest import (
    ReconciliationSpec,
    SchemaEvolutionSpec,
    StagingSpec,
    StateSpec,
    parse_manifest,
)
from airflow_provider_dpone.contracts.state import (
    CdcState,
    ChangeVersionState,
    CursorState,
    OffsetsState,
    PlanState,
    ResumeState,
    StateRecord,
    XminState,
    decode_state,
    state_to_dict,
)
from airflow_provider_dpone.contracts.strategies import IncrementalMode, Strategy

pytestmark = pytest.mark.unit

# design.md, "The manifest contract (v1)", as written there.
V1_EXAMPLE = """
pipeline: shop_orders            # the DAG id
description: Orders from the shop DB into the warehouse
schedule: "@hourly"              # any Airflow schedule; null = manual only
start_date: 2026-01-01
tags: [shop]
retries: 2                       # Airflow task retries
retry_delay: 5m
state:
  backend: variable              # variable (default) | table
  conn_id: dwh_pg                # table backend: where the state table lives
  table: dpone.state
defaults:                        # deep-merged into every load
  source: {connector: postgres, conn_id: shop_pg}
  sink: {connector: postgres, conn_id: dwh_pg}
loads:                           # one task per load
  - name: customers
    source: {table: public.customers}
    sink: {table: raw.customers}
  - name: orders
    depends_on: [customers]
    source:
      table: public.orders       # or query: "select ..."
      incremental:
        mode: cursor             # cursor | xmin | cdc | offsets
        cursor: updated_at
        lookback: 10m
    sink:
      table: raw.orders
      strategy: incremental_merge   # full_refresh | incremental_append |
                                    # incremental_merge | replace |
                                    # partition_replace | snapshot_diff |
                                    # scd2 | cdc_apply
      unique_key: [id]
      staging: {schema: dpone_staging, keep: on_failure}   # always | never | on_failure
    schema_evolution:
      mode: safe                 # safe | fail | plan_only
      on_type_change: fail       # fail | new_column
    reconciliation:
      deletes: none              # none | soft | hard
      max_delete_fraction: 0.05
    quality:
      - {check: not_null, columns: [id]}
      - {check: unique, columns: [id]}
      - {check: row_count, min: 1}
      - {check: sql, sql: "select count(*) from {staging} where amount < 0", expect: 0}
"""


def test_the_v1_example_manifest_still_validates() -> None:
    m = parse_manifest(yaml.safe_load(V1_EXAMPLE), "v1.yaml")
    assert (m.pipeline, m.schedule, m.retries, m.retry_delay) == ("shop_orders", "@hourly", 2, 300.0)
    assert (m.state.backend, m.state.conn_id, m.state.table) == ("variable", "dwh_pg", "dpone.state")
    orders = m.load("orders")
    assert orders.depends_on == ["customers"]
    assert (orders.source.connector, orders.source.conn_id) == ("postgres", "shop_pg")  # from defaults
    inc = orders.source.incremental
    assert inc is not None and (inc.mode, inc.cursor, inc.lookback) == (
        IncrementalMode.CURSOR,
        "updated_at",
        600,
    )
    sink = orders.sink
    assert (sink.connector, sink.conn_id, sink.table) == ("postgres", "dwh_pg", "raw.orders")
    assert (sink.strategy, sink.unique_key) == (Strategy.INCREMENTAL_MERGE, ["id"])
    assert (sink.staging.schema_name, sink.staging.keep) == ("dpone_staging", "on_failure")
    assert (orders.schema_evolution.mode, orders.schema_evolution.on_type_change) == ("safe", "fail")
    assert (orders.reconciliation.deletes, orders.reconciliation.max_delete_fraction) == ("none", 0.05)
    assert [q.check for q in orders.quality] == ["not_null", "unique", "row_count", "sql"]
    assert m.load("customers").sink.strategy is Strategy.FULL_REFRESH  # the default, unchanged


def test_the_v1_values_are_still_accepted() -> None:
    """Each value the v1 example lists as a choice."""
    strategies = {
        "full_refresh",
        "incremental_append",
        "incremental_merge",
        "replace",
        "partition_replace",
        "snapshot_diff",
        "scd2",
        "cdc_apply",
    }
    assert strategies <= {s.value for s in Strategy}
    assert {"cursor", "xmin", "cdc", "offsets"} <= {m.value for m in IncrementalMode}
    for keep in ("always", "never", "on_failure"):
        assert StagingSpec.model_validate({"keep": keep}).keep == keep
    for mode in ("safe", "fail", "plan_only"):
        assert SchemaEvolutionSpec.model_validate({"mode": mode}).mode == mode
    for change in ("fail", "new_column"):
        assert SchemaEvolutionSpec.model_validate({"on_type_change": change}).on_type_change == change
    for deletes in ("none", "soft", "hard"):
        assert ReconciliationSpec.model_validate({"deletes": deletes}).deletes == deletes
    assert StateSpec.model_validate({}).backend == "variable"
    assert StateSpec.model_validate({"backend": "table", "conn_id": "dwh_pg"}).table == "dpone.state"


# One record of every kind, as the current code writes it; a new kind must be added here.
RECORDS: list[StateRecord] = [
    CursorState("updated_at", "2026-01-01T00:00:00+00:00", "timestamptz"),
    CursorState("id", None, "int64"),
    XminState(2**40 + 7),
    OffsetsState("orders", {"0": 12, "1": 0}),
    ResumeState("scheduled__2026-01-01", {"page": 3, "next": "https://api.example.com/x?p=4"}, 250),
    ChangeVersionState(1234),
    CdcState("dbo_orders", "0x0000002A000001F80003"),
    CdcState("dpone_orders", "16/B374D848", "dpone_orders_pub"),
    PlanState("plan-7f3a", "2026-01-01T00:00:00+00:00"),
]
KINDS = {"cursor", "xmin", "offsets", "resume", "change_tracking", "cdc", "partition_plan"}


def test_every_state_kind_round_trips() -> None:
    assert {cls.kind for cls in typing.get_args(StateRecord)} == KINDS == {r.kind for r in RECORDS}
    for record in RECORDS:
        data = state_to_dict(record)
        assert data["kind"] == record.kind
        # as the table backend stores it, and as the Variable backend does: the committing run's
        # id beside the fields (a resume checkpoint is always committed by its own run)
        assert decode_state(json.dumps(data), "the state table", "orders") == record
        enveloped = json.dumps({**data, "run_id": getattr(record, "run_id", "r1")})
        assert decode_state(enveloped, "a Variable", "orders", envelope=("run_id",)) == record


def test_a_state_record_without_its_later_fields_still_reads() -> None:
    """A field with a default may be missing: records written before it existed (a SQL Server
    ``cdc`` record had no ``publication`` before PostgreSQL CDC) read with that default."""
    old = {"kind": "cdc", "stream": "dbo_orders", "lsn": "0x0000002A000001F80003"}
    assert decode_state(json.dumps(old), "k", "orders") == CdcState("dbo_orders", "0x0000002A000001F80003")
    cursor = decode_state('{"kind": "cursor", "cursor": "id", "value": "7"}', "k", "orders")
    assert cursor == CursorState("id", "7", "string")
    resume = decode_state('{"kind": "resume", "run_id": "r", "checkpoint": {}}', "k", "orders")
    assert resume == ResumeState("r", {}, 0)


def test_the_run_report_keeps_its_json_keys() -> None:
    from airflow_provider_dpone.runtime.report import Phase, RunReport

    report = RunReport("shop_orders", "orders", "r1", "incremental_merge")
    report.phase("stage").rows = 3
    data = json.loads(report.to_json())
    recorded = {
        "pipeline", "load", "run_id", "strategy", "status", "source", "sink", "fast_path", "phases",
        "rows", "state_before", "state_after", "state_committed", "schema", "quality", "chunks",
        "lineage", "warnings", "request", "error", "seconds", "started_at",
    }  # fmt: skip
    assert recorded <= set(data)
    assert {"name", "seconds", "rows", "bytes"} <= set(data["phases"][0])
    assert data["rows"] == 3 and data["state_committed"] == "no"
    assert RunReport.from_dict(data).to_dict() == data
    assert Phase("stage").bytes is None  # not measured: null, never 0


def test_a_saved_report_from_another_release_still_reads() -> None:
    from airflow_provider_dpone.runtime.report import RunReport

    older = {"pipeline": "p", "load": "l", "run_id": "r", "strategy": "full_refresh", "status": "success"}
    report = RunReport.from_dict(older)
    assert (report.status, report.phases, report.state_committed) == ("success", [], "no")
    newer = {**older, "phases": [{"name": "stage", "seconds": 1.0, "rows": 5, "bytes": 40}], "later": 1}
    assert RunReport.from_dict(newer).rows == 5


def test_the_exit_codes_keep_their_meaning() -> None:
    from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

    assert (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT) == (0, 1, 2)


# connection type -> the form fields (connection extras) it offers at least
CONNECTION_EXTRAS = {
    "dpone_postgres": {"sslmode"},
    "dpone_mssql": {"encrypt", "trust_server_certificate", "authentication", "application_intent"},
    "dpone_clickhouse": {"secure", "compress", "dsn"},
    "dpone_kafka": {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "dpone.schema_registry_url",
    },
    "dpone_rest": {
        "auth",
        "api_key_header",
        "api_key_prefix",
        "api_key_param",
        "token_url",
        "scope",
        "headers",
        "test_path",
        "timeout",
        "max_retries",
    },
    **{
        f"dpone_{vendor}": set()
        for vendor in (
            "cbr",
            "openexchangerates",
            "yandex_webmaster",
            "similarweb",
            "google_sheets",
            "appsflyer",
            "google_ads",
            "omnidesk",
            "mindbox",
            "fasttrack",
        )
    },
}
PIP_EXTRAS = {
    "postgres",
    "mssql",
    "clickhouse",
    "kafka",
    "bigquery",
    "rest",
    "openlineage",
    "s3",
    "gcs",
    "azure",
    "all",
}


def test_connection_types_and_their_extras_stay() -> None:
    from airflow_provider_dpone.get_provider_info import get_provider_info

    types = {t["connection-type"]: t for t in get_provider_info()["connection-types"]}
    assert set(CONNECTION_EXTRAS) <= set(types)
    for name, fields in CONNECTION_EXTRAS.items():
        assert fields <= set(types[name].get("conn-fields", {})), name
    # the pip extras, as the installed distribution declares them
    declared = importlib.metadata.metadata("airflow-provider-dpone").get_all("Provides-Extra") or []
    assert set(declared) >= PIP_EXTRAS


def test_an_endpoint_names_its_path_as_the_lineage_dataset_without_the_query() -> None:
    from airflow_provider_dpone.contracts.sources import EndpointSource

    spec = EndpointSource(connector="rest", conn_id="api", endpoint={"path": "/v1/items?api_key=abc"})
    assert spec.dataset_name == "/v1/items"
