"""Every (connector, feature) pair: a declared feature has a run test that shows it working;
an undeclared one is refused by ``dpone validate``, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.cli.evidence import resolve_test
from airflow_provider_dpone.contracts.api_catalog import RESOURCES
from airflow_provider_dpone.contracts.api_resource import ResourceFacts
from airflow_provider_dpone.contracts.connectors import CONNECTORS, ConnectorInfo
from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.strategies import CHANGE_MODES, IncrementalMode, Strategy

ROOT = Path(__file__).resolve().parents[2]

SOURCE_FEATURES = [f"mode:{m.value if m else 'full'}" for m in (None, *IncrementalMode)] + [
    "chunk",
    "window",
    "partitions",
]
SINK_FEATURES = (
    [f"strategy:{s.value}" for s in Strategy]
    + ["on_duplicate_keys:fail", "on_duplicate_keys:keep_last"]
    + ["deletes:soft", "deletes:hard", "deletes_incremental", "hosts_state", "from_target"]
)

_SAAS = {  # connector: (test module, full-load test, incremental test or None)
    "cbr": ("test_cbr", "test_daily_rates_over_a_range_with_a_weekend", "test_dynamics_are_incremental_with_the_server_side_date_range"),
    "openexchangerates": ("test_openexchangerates", "test_latest_rates_become_one_row_per_currency", "test_historical_is_incremental_by_day"),
    "yandex_webmaster": ("test_yandex_webmaster", "test_summary_per_host", "test_indexing_history_is_incremental_on_the_server"),
    "similarweb": ("test_similarweb", "test_domains_are_required", "test_visits_per_domain_and_month_incremental_on_start_date"),
    "google_sheets": ("test_google_sheets", "test_a_range_becomes_typed_rows_by_header", None),
    "appsflyer": ("test_appsflyer", "test_aggregate_headers_become_column_names", "test_installs_day_by_day_incremental_from_the_watermark"),
    "google_ads": ("test_google_ads", "test_campaigns_are_flattened", "test_daily_stats_filter_segments_date_on_the_server"),
    "omnidesk": ("test_omnidesk", "test_wrong_credentials_are_not_retried", "test_cases_page_through_numbered_bodies_then_filter_on_the_server"),
    "mindbox": ("test_mindbox", "test_export_polls_until_ready_then_reads_every_file", "test_period_export_starts_at_the_watermark"),
    "fasttrack": ("test_fasttrack", "test_chat_sessions_gzip_bom_russian_headers_into_postgres", None),
}  # fmt: skip

MS, FEEDS = "tests/hooks/test_mssql_live.py", "tests/hooks/test_mssql_feeds.py"
S, PG, CH, KF = "tests/hooks/test_sink_contract.py", "tests/hooks/test_postgres_integration.py", "tests/hooks/test_clickhouse.py", "tests/hooks/test_kafka.py"  # fmt: skip
EVIDENCE: dict[tuple[str, str], str] = {
    # SQL Server: the live suite (DPONE_MSSQL_URI); it skips with that reason where no server runs
    ("mssql", "mode:full"): f"{MS}::test_a_full_extract_lands_in_postgres",
    ("mssql", "mode:cursor"): f"{MS}::test_a_cursor_extract_with_lookback_merges_only_new_rows",
    ("mssql", "chunk"): f"{MS}::test_a_chunked_backfill_reads_the_range_in_chunks",
    ("mssql", "window"): f"{MS}::test_a_window_reads_only_its_range",
    ("mssql", "partitions"): f"{MS}::test_a_partitioned_load_reads_every_row_once",
    # BigQuery: the shared contract against bqemulator, and tests/hooks/test_bigquery.py
    **{("bigquery", f"strategy:{s}"): f"{S}::test_every_declared_strategy_converges"
       for s in ("full_refresh", "incremental_append", "incremental_merge", "partition_replace")},
    ("bigquery", "strategy:replace"): f"{S}::test_replace_rewrites_only_the_window",
    ("bigquery", "strategy:snapshot_diff"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("bigquery", "strategy:cdc_apply"): "tests/hooks/test_bigquery.py::test_postgres_cdc_into_bigquery_with_the_state_in_the_transaction",
    ("bigquery", "on_duplicate_keys:fail"): f"{S}::test_duplicate_keys_fail_before_the_target_changes",
    ("bigquery", "deletes:soft"): f"{S}::test_soft_deletes_mark_rows_and_returning_rows_are_revived",
    ("bigquery", "deletes:hard"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("bigquery", "deletes_incremental"): f"{S}::test_incremental_merge_reconciles_through_a_staged_key_set",
    ("bigquery", "hosts_state"): "tests/hooks/test_bigquery.py::test_state_in_bigquery_commits_with_the_data",
    ("bigquery", "from_target"): "tests/hooks/test_bigquery.py::test_lost_state_is_rederived_from_a_bigquery_target",
    ("postgres", "partitions"): "tests/runtime/test_partitioned_load.py::test_four_partitions_load_every_row_once",
    ("mssql", "strategy:full_refresh"): f"{S}::test_every_declared_strategy_converges",
    ("mssql", "strategy:incremental_append"): f"{S}::test_every_declared_strategy_converges",
    ("mssql", "strategy:incremental_merge"): f"{S}::test_every_declared_strategy_converges",
    ("mssql", "strategy:replace"): f"{S}::test_replace_rewrites_only_the_window",
    ("mssql", "strategy:partition_replace"): f"{S}::test_partition_replace_with_a_scoped_delete",
    ("mssql", "strategy:snapshot_diff"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("mssql", "strategy:scd2"): f"{S}::test_scd2_keeps_history_and_closes_deleted_keys",
    ("mssql", "on_duplicate_keys:fail"): f"{S}::test_duplicate_keys_fail_before_the_target_changes",
    ("mssql", "on_duplicate_keys:keep_last"): f"{S}::test_keep_last_keeps_the_last_row_of_a_key",
    ("mssql", "deletes:soft"): f"{S}::test_soft_deletes_mark_rows_and_returning_rows_are_revived",
    ("mssql", "deletes:hard"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("mssql", "deletes_incremental"): f"{S}::test_incremental_merge_reconciles_through_a_staged_key_set",
    ("mssql", "mode:change_tracking"): f"{FEEDS}::test_change_tracking_snapshot_then_changes_into_postgres",
    ("mssql", "mode:cdc"): f"{FEEDS}::test_cdc_net_changes_into_postgres",
    ("mssql", "strategy:cdc_apply"): f"{MS}::test_change_tracking_into_sql_server_applies_deletes",
    ("postgres", "strategy:cdc_apply"): f"{FEEDS}::test_change_tracking_snapshot_then_changes_into_postgres",
    ("mssql", "hosts_state"): f"{MS}::test_state_on_sql_server_commits_with_the_data",
    ("mssql", "from_target"): f"{MS}::test_lost_state_is_rederived_from_a_sql_server_target",
    ("postgres", "mode:full"): f"{PG}::test_full_refresh_swaps_then_keeps_target_shape",
    ("postgres", "mode:cursor"): f"{PG}::test_cursor_incremental_merge_with_lookback",
    ("postgres", "mode:xmin"): f"{PG}::test_xmin_incremental_append",
    ("postgres", "mode:cdc"): "tests/hooks/test_postgres_cdc.py::test_snapshot_then_inserts_updates_deletes_and_key_changes",
    ("postgres", "chunk"): "tests/hooks/test_backfill_chunks.py::test_a_backfill_runs_in_chunks_and_a_retry_resumes_at_the_failed_chunk",
    ("postgres", "window"): f"{S}::test_partition_replace_with_a_scoped_delete",
    ("postgres", "strategy:full_refresh"): f"{PG}::test_full_refresh_swaps_then_keeps_target_shape",
    ("postgres", "strategy:incremental_append"): f"{PG}::test_xmin_incremental_append",
    ("postgres", "strategy:incremental_merge"): f"{PG}::test_cursor_incremental_merge_with_lookback",
    ("postgres", "strategy:replace"): f"{S}::test_replace_rewrites_only_the_window",
    ("postgres", "strategy:partition_replace"): "tests/hooks/test_postgres_strategies.py::test_partition_replace_swaps_declarative_partitions",
    ("postgres", "strategy:snapshot_diff"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("postgres", "strategy:scd2"): f"{S}::test_scd2_keeps_history_and_closes_deleted_keys",
    ("postgres", "on_duplicate_keys:fail"): f"{PG}::test_merge_rejects_duplicate_keys_by_default_and_keep_last",
    ("postgres", "on_duplicate_keys:keep_last"): f"{PG}::test_merge_rejects_duplicate_keys_by_default_and_keep_last",
    ("postgres", "deletes:soft"): f"{S}::test_soft_deletes_mark_rows_and_returning_rows_are_revived",
    ("postgres", "deletes:hard"): f"{S}::test_snapshot_diff_converges_updates_inserts_and_deletes",
    ("postgres", "deletes_incremental"): f"{S}::test_incremental_merge_reconciles_through_a_staged_key_set",
    ("postgres", "hosts_state"): "tests/runtime/test_crash_safety.py::test_colocated_state_commits_with_the_data",
    ("postgres", "from_target"): "tests/runtime/test_guards.py::test_lost_state_can_be_rederived_from_the_target",
    ("clickhouse", "mode:full"): f"{CH}::test_clickhouse_to_postgres_full_and_incremental",
    ("clickhouse", "mode:cursor"): f"{CH}::test_clickhouse_to_postgres_full_and_incremental",
    ("clickhouse", "window"): f"{CH}::test_a_clickhouse_source_reads_only_its_window",
    ("clickhouse", "strategy:full_refresh"): f"{CH}::test_full_refresh_through_tsv_then_an_atomic_exchange",
    ("clickhouse", "strategy:incremental_append"): f"{CH}::test_incremental_append_by_cursor",
    ("clickhouse", "strategy:incremental_merge"): f"{CH}::test_incremental_merge_deletes_and_inserts_by_key",
    ("clickhouse", "strategy:partition_replace"): f"{CH}::test_partition_replace_swaps_only_the_staged_partitions",
    ("clickhouse", "strategy:cdc_apply"): "tests/hooks/test_postgres_cdc.py::test_into_clickhouse_last_change_per_key_then_a_resnapshot",
    ("clickhouse", "on_duplicate_keys:fail"): f"{CH}::test_null_and_duplicate_keys_fail_before_the_target_changes",
    ("clickhouse", "from_target"): f"{CH}::test_state_and_target_must_agree_on_clickhouse",
    ("kafka", "mode:offsets"): f"{KF}::test_kafka_to_postgres_reads_to_the_high_watermark_and_keeps_offsets",
    ("kafka", "strategy:incremental_append"): f"{KF}::test_lost_state_over_a_topic_with_messages_fails_instead_of_publishing_twice",
    ("kafka", "strategy:incremental_merge"): f"{KF}::test_postgres_to_kafka_keyed_upserts_in_one_transaction",
    ("kafka", "on_duplicate_keys:keep_last"): f"{KF}::test_postgres_to_kafka_keyed_upserts_in_one_transaction",
    ("kafka", "deletes:hard"): f"{KF}::test_deleted_rows_become_tombstones",
    ("kafka", "deletes_incremental"): f"{KF}::test_an_incremental_load_sends_the_flagged_rows_of_each_window_as_tombstones",
    ("rest", "mode:full"): "tests/hooks/test_rest.py::test_every_pagination_reads_every_record_once",
    ("rest", "mode:cursor"): "tests/hooks/test_rest.py::test_rest_to_postgres_merge_then_incremental",
} | {
    (name, f"mode:{mode}"): f"tests/apis/{module}.py::{test}"
    for name, (module, full, incremental) in _SAAS.items()
    for mode, test in (("full", full), ("cursor", incremental))
    if test
}  # fmt: skip


def supported(info: ConnectorInfo, feature: str) -> bool:
    """What the connector declares for ``feature`` (sink features only for sinks)."""
    kind, _, value = feature.partition(":")
    if kind == "mode":
        return (None if value == "full" else IncrementalMode(value)) in info.source_modes
    if kind in ("chunk", "window", "partitions"):
        return bool(getattr(info, kind))
    if not info.sink_strategies:
        return False  # not a sink
    if kind == "strategy":
        return Strategy(value) in info.sink_strategies
    if kind == "on_duplicate_keys":
        return value in info.duplicate_keys
    if kind == "deletes":
        return value in info.deletes and Strategy.INCREMENTAL_MERGE in info.sink_strategies
    if kind == "deletes_incremental":  # by a staged key set, or by the source's own flag
        return info.key_set or info.deletes_by_flag
    return bool(getattr(info, {"from_target": "target_watermark"}.get(kind, kind)))


def _resource_of(connector: str) -> tuple[str, ResourceFacts]:
    """The catalogue's first resource the API filters on (else its first)."""
    catalog = RESOURCES[connector]
    return next(((n, f) for n, f in catalog.items() if f.cursor), next(iter(catalog.items())))


def _side(name: str, role: str) -> dict[str, Any]:
    """A source or sink spec of connector ``name`` naming the object it works on."""
    info = CONNECTORS[name]
    spec: dict[str, Any] = {"connector": name, "conn_id": f"{name}_{role}"}
    if info.objects == "topic":
        spec["topic"] = "t"
        if role == "source":
            spec["incremental"] = {"mode": "offsets"}
    elif info.objects == "endpoint":
        spec["endpoint"] = {"path": "/x", "server_filter": {"param": "since", "field": "updated_at"}}
    elif info.objects == "resource":  # a real resource of the catalogue, with its options
        name, facts = _resource_of(name)
        spec.update(resource=name, options={o.split("|")[0]: "x" for o in facts.required_options})
    else:
        spec["table"] = "t"
    return spec


def manifest_using(connector: str, feature: str) -> dict[str, Any]:
    """A manifest whose only use of ``connector`` outside the basics is ``feature``; every
    other part is PostgreSQL, which supports everything."""
    kind, _, value = feature.partition(":")
    sink_side = kind not in ("mode", "chunk", "window", "partitions")
    source = _side("postgres" if sink_side else connector, "source")
    sink = _side(connector if sink_side else "postgres", "sink")
    sink.update(strategy="incremental_merge", unique_key=["id"])
    load: dict[str, Any] = {"name": "l", "source": source, "sink": sink}
    state: dict[str, Any] = {"backend": "variable"}
    cursor = {"mode": "cursor", "cursor": "updated_at"}
    if kind == "mode":
        source.pop("incremental", None)
        if value != "full":
            source["incremental"] = cursor if value == "cursor" else {"mode": value}
            filtered = _resource_of(connector)[1].cursor if "resource" in source else None
            if value == "cursor" and filtered:  # the field the API filters on
                source["incremental"] = {"mode": "cursor", "cursor": filtered}
            if IncrementalMode(value) in CHANGE_MODES:
                sink["strategy"] = "cdc_apply"  # a change feed is applied by cdc_apply only
    elif kind == "chunk":
        source["incremental"] = {**cursor, "chunk": "1d"}
    elif kind == "window":
        source.pop("incremental", None)
        source["window"] = {"column": "d", "start": "1", "end": "2"}
    elif kind == "partitions":
        source.pop("incremental", None)
        sink["staging"] = {"files": {"uri": "s3://bucket/dpone"}}
        load["parallel"] = {"partitions": 4, "by": "id"}
    elif kind == "strategy":
        sink["strategy"] = value
        if Strategy(value) is Strategy.REPLACE:
            sink["replace"] = {"where": "true"}
        if Strategy(value) is Strategy.PARTITION_REPLACE:
            sink["partition_by"] = ["d"]
        if Strategy(value) is Strategy.SNAPSHOT_DIFF:
            load["reconciliation"] = {"deletes": "hard"}
        if Strategy(value) is Strategy.CDC_APPLY:  # SQL Server is the change-feed source
            load["source"] = {**_side("mssql", "source"), "incremental": {"mode": "change_tracking"}}
    elif kind == "on_duplicate_keys":
        sink["on_duplicate_keys"] = value
    elif kind == "deletes":
        load["reconciliation"] = {"deletes": value}
    elif kind == "deletes_incremental":
        source["incremental"] = cursor
        load["reconciliation"] = {"deletes": "hard"}
    elif kind == "hosts_state":
        state = {"backend": "table", "conn_id": sink["conn_id"], "connector": connector}
    elif kind == "from_target":
        source["incremental"] = {**cursor, "on_state_missing": "from_target"}
        sink["strategy"] = "incremental_append"
    return {"pipeline": "caps", "state": state, "loads": [load]}


# Sink features apply to connectors that are sinks at all (the others are sources only).
PAIRS = [
    (c, f)
    for c in sorted(CONNECTORS)
    for f in SOURCE_FEATURES + (SINK_FEATURES if CONNECTORS[c].sink_strategies else [])
]


@pytest.mark.parametrize(("connector", "feature"), PAIRS, ids=[f"{c}-{f}" for c, f in PAIRS])
def test_a_feature_is_either_shown_working_or_refused(connector: str, feature: str) -> None:
    info = CONNECTORS[connector]
    if supported(info, feature):
        evidence = EVIDENCE.get((connector, feature))
        assert evidence, f"{connector} declares {feature} but no run test is named as its evidence"
        ref = resolve_test(ROOT, evidence)
        assert ref is not None, f"{evidence} does not exist"
        assert ref.never_runs is None, f"{evidence} can never run here: {ref.never_runs}"
        parse_manifest(copy.deepcopy(manifest_using(connector, feature)))  # and it validates
        return
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest_using(connector, feature))
    field = {
        "mode": "source.incremental.mode",
        "chunk": "source.incremental.chunk",
        "window": "source.window",
        "partitions": "parallel",
    }
    kind = feature.partition(":")[0]
    expected = (
        field.get(kind)
        or {
            "strategy": "sink.strategy",
            "on_duplicate_keys": "sink.on_duplicate_keys",
            "deletes": "reconciliation.deletes",
            "deletes_incremental": "reconciliation.deletes",
            "hosts_state": "state.",
            "from_target": "source.incremental.on_state_missing",
        }[kind]
    )
    fields = [issue.field for issue in err.value.issues]
    assert any(f.startswith(expected) for f in fields), f"refused, but not at {expected}: {err.value}"
    assert connector in str(err.value)


def test_every_evidence_names_a_declared_feature() -> None:
    stale = [pair for pair in EVIDENCE if not supported(CONNECTORS[pair[0]], pair[1])]
    assert stale == [], f"evidence for features the connectors do not declare: {stale}"


def test_state_table_connection_must_match_its_loads() -> None:
    data = manifest_using("clickhouse", "strategy:incremental_merge")
    data["state"] = {"backend": "table", "conn_id": "clickhouse_sink"}  # connector defaults to postgres
    with pytest.raises(ManifestError, match=r"a 'clickhouse' connection, but state\.connector is 'postgres'"):
        parse_manifest(data)


def test_a_topic_defaults_to_keep_last_and_refuses_fail() -> None:
    data = manifest_using("kafka", "strategy:incremental_merge")
    assert parse_manifest(copy.deepcopy(data)).loads[0].sink.on_duplicate_keys == "keep_last"
    data["loads"][0]["sink"]["on_duplicate_keys"] = "fail"
    with pytest.raises(ManifestError, match="'fail' is not supported by connector 'kafka'"):
        parse_manifest(data)
    sql = manifest_using("clickhouse", "strategy:incremental_merge")
    assert parse_manifest(sql).loads[0].sink.on_duplicate_keys == "fail"
