"""Manifest contract v1: valid manifests parse; each malformed one names file, load and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.cli.main import main as dpone
from airflow_provider_dpone.contracts.api_catalog import RESOURCES
from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.dag_factory.files import load_manifest, validate_paths

VALID = {
    "pipeline": "shop",
    "schedule": "@hourly",
    "defaults": {
        "source": {"connector": "postgres", "conn_id": "shop_pg"},
        "sink": {"connector": "postgres", "conn_id": "dwh_pg"},
    },
    "loads": [
        {"name": "customers", "source": {"table": "public.customers"}, "sink": {"table": "raw.customers"}},
        {
            "name": "orders",
            "depends_on": ["customers"],
            "source": {
                "table": "public.orders",
                "incremental": {"mode": "cursor", "cursor": "updated_at", "lookback": "10m"},
            },
            "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
        },
    ],
}


def _with(path: str, value, base=None):
    """A copy of VALID with ``path`` (dotted, ints index lists) set, or deleted when value is DELETE."""
    import copy

    data = copy.deepcopy(base or VALID)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for p in parts[:-1]:
        node = node[p]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


DELETE = object()

# (id, data or raw text, expected field path, expected load, words the message must contain)
CASES = [
    (
        "unknown_top_key",
        _with("owner", "me"),
        "owner",
        None,
        ["unknown key 'owner'", "allowed keys", "pipeline"],
    ),
    (
        "unknown_source_key",
        _with("loads.1.source.tabel", "x"),
        "source.tabel",
        "orders",
        ["unknown key", "table"],
    ),
    (
        "unknown_sink_key",
        _with("loads.0.sink.mode", "x"),
        "sink.mode",
        "customers",
        ["unknown key", "strategy"],
    ),
    ("wrong_type_retries", _with("retries", "many"), "retries", None, ["integer"]),
    ("wrong_type_loads", _with("loads", {"a": 1}), "loads", None, ["list"]),
    ("wrong_type_tags", _with("tags", "shop"), "tags", None, ["list"]),
    (
        "unknown_connector",
        _with("loads.0.source.connector", "oracle"),
        "source.connector",
        "customers",
        ["oracle", "allowed: ", "postgres", "kafka"],
    ),
    (
        "unknown_strategy",
        _with("loads.0.sink.strategy", "upsert"),
        "sink.strategy",
        "customers",
        ["upsert", "incremental_merge"],
    ),
    (
        "strategy_not_supported_yet",
        _with(
            "loads.0.sink.strategy",
            "scd2",
        ),
        "sink",
        "customers",
        ["unique_key"],
    ),
    (
        "strategy_not_on_connector",
        _with(
            "loads.0.sink",
            {
                "connector": "clickhouse",
                "conn_id": "ch",
                "table": "raw.customers",
                "strategy": "scd2",
                "unique_key": ["id"],
            },
        ),
        "",
        "customers",
        ["'scd2' is not supported", "incremental_append", "partition_replace"],
    ),
    (
        "merge_without_unique_key",
        _with("loads.1.sink.unique_key", DELETE),
        "sink",
        "orders",
        ["needs 'unique_key"],
    ),
    (
        "cursor_without_cursor",
        _with("loads.1.source.incremental.cursor", DELETE),
        "source.incremental",
        "orders",
        ["needs 'cursor"],
    ),
    (
        "unknown_incremental_mode",
        _with("loads.1.source.incremental.mode", "lsn"),
        "source.incremental.mode",
        "orders",
        ["lsn", "cursor", "xmin"],
    ),
    ("duplicate_load_names", _with("loads.1.name", "customers"), "name", "customers", ["duplicate"]),
    (
        "unknown_dependency",
        _with("loads.1.depends_on", ["nope"]),
        "depends_on",
        "orders",
        ["unknown load 'nope'"],
    ),
    ("self_dependency", _with("loads.1.depends_on", ["orders"]), "depends_on", "orders", ["itself"]),
    ("dependency_cycle", _with("loads.0.depends_on", ["orders"]), "depends_on", None, ["cycle", "->"]),
    ("bad_cron", _with("schedule", "61 * * * *"), "schedule", None, ["minute", "0-59"]),
    ("bad_cron_fields", _with("schedule", "* * *"), "schedule", None, ["5 fields"]),
    ("bad_preset", _with("schedule", "@sometimes"), "schedule", None, ["@hourly"]),
    (
        "bad_lookback",
        _with("loads.1.source.incremental.lookback", "ten minutes"),
        "source.incremental.lookback",
        "orders",
        ["10m"],
    ),
    ("bad_retry_delay", _with("retry_delay", "soon"), "retry_delay", None, ["duration"]),
    (
        "bad_stale_after",
        _with("loads.1.sink.staging", {"stale_after": "a while"}),
        "sink.staging.stale_after",
        "orders",
        ["1h30m"],
    ),
    ("table_and_query", _with("loads.0.source.query", "select 1"), "source", "customers", ["exactly one"]),
    (
        "kafka_source_with_a_table",
        _with(
            "loads.0.source",
            {"connector": "kafka", "conn_id": "k", "table": "t", "incremental": {"mode": "offsets"}},
        ),
        "source",
        "customers",
        ["give 'topic'"],
    ),
    (
        "kafka_field_of_unknown_type",
        _with(
            "loads.0.source",
            {
                "connector": "kafka",
                "conn_id": "k",
                "topic": "t",
                "incremental": {"mode": "offsets"},
                "fields": {"id": "int"},
            },
        ),
        "source.fields",
        "customers",
        ["field 'id'", "int64"],
    ),
    (
        "full_refresh_into_a_topic",
        _with(
            "loads.0.sink", {"connector": "kafka", "conn_id": "k", "topic": "t", "strategy": "full_refresh"}
        ),
        "sink.strategy",
        "customers",
        ["refused by connector 'kafka'", "append-only log"],
    ),
    (
        "postgres_sink_with_a_topic",
        _with("loads.0.sink", {"connector": "postgres", "conn_id": "d", "topic": "t"}),
        "sink",
        "customers",
        ["works on tables, not topics", "give 'table'"],
    ),
    (
        "neither_table_nor_query",
        _with("loads.0.source.table", DELETE),
        "source",
        "customers",
        ["exactly one"],
    ),
    ("missing_sink_table", _with("loads.0.sink.table", DELETE), "sink", "customers", ["'table' or 'topic'"]),
    ("missing_pipeline", _with("pipeline", DELETE), "pipeline", None, ["required"]),
    ("bad_pipeline_name", _with("pipeline", "my pipeline!"), "pipeline", None, ["letters"]),
    ("bad_table_name", _with("loads.0.sink.table", "a.b.c"), "sink.table", "customers", ["schema.table"]),
    (
        "bad_staging_keep",
        _with("loads.0.sink.staging", {"keep": "sometimes"}),
        "sink.staging.keep",
        "customers",
        ["on_failure"],
    ),
    (
        "full_refresh_incremental",
        _with("loads.1.sink.strategy", "full_refresh"),
        "",
        "orders",
        ["full extract"],
    ),
    (
        "xmin_with_query",
        _with("loads.1.source", {"query": "select 1", "incremental": {"mode": "xmin"}}),
        "",
        "orders",
        ["needs 'table'"],
    ),
    (
        "cursor_on_xmin",
        _with("loads.1.source.incremental", {"mode": "xmin", "cursor": "x"}),
        "source.incremental",
        "orders",
        ["only applies"],
    ),
    ("state_table_without_conn", _with("state", {"backend": "table"}), "state", None, ["conn_id"]),
    (
        "unknown_state_backend",
        _with("state", {"backend": "redis"}),
        "state.backend",
        None,
        ["variable", "table"],
    ),
    ("defaults_unknown_key", _with("defaults.target", {}), "defaults.target", None, ["not a load key"]),
    (
        "zero_batch_size",
        _with("loads.0.source.batch_size", 0),
        "source.batch_size",
        "customers",
        ["greater than 0"],
    ),
    (
        "replace_without_range",
        _with("loads.0.sink.strategy", "replace"),
        "sink",
        "customers",
        ["needs 'replace: {where: ...}'"],
    ),
    (
        "replace_with_both_forms",
        _with(
            "loads.0.sink.replace",
            {"where": "x > 1", "window": {"column": "d", "start": "1", "end": "2"}},
            base=_with("loads.0.sink.strategy", "replace"),
        ),
        "sink.replace",
        "customers",
        ["exactly one of 'where'"],
    ),
    (
        "replace_window_missing_end",
        _with(
            "loads.0.sink.replace",
            {"window": {"column": "d", "start": "1"}},
            base=_with("loads.0.sink.strategy", "replace"),
        ),
        "sink.replace.window.end",
        "customers",
        ["required key is missing"],
    ),
    (
        "partition_replace_without_partition_by",
        _with("loads.0.sink.strategy", "partition_replace"),
        "sink",
        "customers",
        ["needs 'partition_by"],
    ),
    (
        "partition_by_on_merge",
        _with("loads.1.sink.partition_by", ["day"]),
        "sink",
        "orders",
        ["only applies to strategy 'partition_replace'"],
    ),
    (
        "snapshot_diff_incremental",
        _with("loads.1.sink.strategy", "snapshot_diff"),
        "",
        "orders",
        ["needs a full extract", "set it to 'hard' or 'soft'"],
    ),
    (
        "deletes_on_append",
        _with("loads.0.reconciliation", {"deletes": "hard"}),
        "",
        "customers",
        ["'full_refresh' cannot", "incremental_merge, scd2, snapshot_diff"],
    ),
    (
        "window_with_query",
        _with("loads.0.source", {"query": "select 1", "window": {"column": "d", "start": "1", "end": "2"}}),
        "source",
        "customers",
        ["'window' applies to 'table' sources"],
    ),
    (
        "chunk_on_xmin",
        _with("loads.1.source.incremental", {"mode": "xmin", "chunk": "1d"}),
        "source.incremental",
        "orders",
        ["does not apply to mode 'xmin'"],
    ),
    (
        "chunk_zero",
        _with("loads.1.source.incremental.chunk", 0),
        "source.incremental.chunk",
        "orders",
        ["greater than 0"],
    ),
    (
        "window_with_incremental",
        _with("loads.1.source.window", {"column": "d", "start": "1", "end": "2"}),
        "source",
        "orders",
        ["cannot be combined with 'incremental'"],
    ),
    (
        "bad_delete_fraction",
        _with("loads.0.reconciliation", {"max_delete_fraction": 2}),
        "reconciliation.max_delete_fraction",
        "customers",
        ["less than or equal"],
    ),
    (
        "from_target_needs_a_cursor",
        _with("loads.1.source.incremental", {"mode": "xmin", "on_state_missing": "from_target"}),
        "source.incremental",
        "orders",
        ["from_target", "no cursor"],
    ),
    (
        "bad_on_target_missing",
        _with("loads.1.source.incremental.on_target_missing", "rebuild"),
        "source.incremental.on_target_missing",
        "orders",
        ["'fail' or 'full_extract'"],
    ),
    (
        "bad_allow_empty",
        _with("loads.0.sink.allow_empty", "sometimes"),
        "sink.allow_empty",
        "customers",
        ["boolean"],
    ),
    (
        "negative_max_kept",
        _with("loads.0.sink.staging", {"max_kept": -1}),
        "sink.staging.max_kept",
        "customers",
        ["greater than or equal to 0"],
    ),
    (
        "unknown_evolution_mode",
        _with("loads.0.schema_evolution", {"mode": "lenient"}),
        "schema_evolution.mode",
        "customers",
        ["'strict'"],
    ),
    (
        "connector_not_a_string",
        _with("loads.0.sink", {"connector": ["kafka"], "conn_id": "k", "topic": "t"}),
        "sink.connector",
        "customers",
        ["string"],
    ),
    ("empty_loads", _with("loads", []), "loads", None, ["at least 1"]),
    ("load_not_mapping", _with("loads", ["orders"]), "loads[0]", None, ["dictionary"]),
]


@pytest.mark.parametrize(("case", "data", "field", "load", "words"), CASES, ids=[c[0] for c in CASES])
def test_malformed_manifest_names_file_load_and_field(tmp_path: Path, case, data, field, load, words) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    issues = err.value.issues
    assert all(i.file == str(path) for i in issues)
    matching = [i for i in issues if i.field.startswith(field) and (load is None or i.load == load)]
    assert matching, f"no issue at {field!r} for load {load!r}: {[str(i) for i in issues]}"
    text = " ".join(str(i) for i in matching)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    assert dpone(["validate", str(path)]) == 2


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("empty", "", ["empty"]),
        ("comment_only", "# nothing here\n", ["empty"]),
        ("broken_yaml", "pipeline: a\nloads: [\n", ["invalid YAML", "line"]),
        ("tabs", "pipeline: a\n\tloads: []\n", ["invalid YAML"]),
        ("scalar", "just a string\n", ["mapping"]),
        ("list", "- a\n- b\n", ["mapping"]),
    ],
)
def test_unparseable_files(tmp_path: Path, name: str, text: str, words: list[str]) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_valid_manifest_with_defaults_merged() -> None:
    m = parse_manifest(VALID)
    orders = m.load("orders")
    assert orders.source.conn_id == "shop_pg" and orders.sink.conn_id == "dwh_pg"
    assert orders.source.incremental.lookback == 600
    assert orders.sink.staging.schema_name == "dpone_staging"
    assert m.load("customers").sink.strategy.value == "full_refresh"


def test_duplicate_pipeline_across_files(tmp_path: Path) -> None:
    for n in ("a", "b"):
        (tmp_path / f"{n}.yaml").write_text(yaml.safe_dump(VALID))
    manifests, issues = validate_paths([tmp_path])
    assert len(manifests) == 1
    assert len(issues) == 1 and issues[0].field == "pipeline" and "already defined" in issues[0].message


def test_validate_json_output_and_exit_codes(tmp_path: Path, capsys) -> None:
    import json

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(VALID))
    assert dpone(["validate", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("loads.0.sink.strategy", "upsert")))
    capsys.readouterr()
    assert dpone(["validate", "--format", "json", str(tmp_path)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert [v["pipeline"] for v in out["valid"]] == ["shop"]
    assert out["errors"][0] | {"message": None} == {
        "file": str(bad),
        "load": "customers",
        "field": "sink.strategy",
        "message": None,
    }


def test_shipped_demo_manifests_are_valid() -> None:
    manifests, issues = validate_paths([Path(__file__).resolve().parents[2] / "dags" / "manifests"])
    assert not issues and manifests


# --- the source is a discriminated union: one kind per object it reads ----------------------


def _source(source: dict) -> object:
    strategy = "incremental_append" if source.get("incremental") else "full_refresh"
    body = {
        "name": "l",
        "source": source,
        "sink": {"connector": "postgres", "conn_id": "d", "table": "raw.t", "strategy": strategy},
    }
    return parse_manifest({"pipeline": "p", "loads": [body]}).loads[0].source


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ({"connector": "postgres", "conn_id": "s", "table": "t", "columns": ["a"]}, "TableSource"),
        ({"connector": "postgres", "conn_id": "s", "query": "select 1"}, "QuerySource"),
        ({"connector": "postgres", "conn_id": "s", "table": None, "query": "select 1"}, "QuerySource"),
        (
            {"connector": "kafka", "conn_id": "k", "topic": "events", "incremental": {"mode": "offsets"}},
            "TopicSource",
        ),
        ({"connector": "rest", "conn_id": "r", "endpoint": {"path": "items"}}, "EndpointSource"),
        ({"connector": "cbr", "conn_id": "c", "resource": "daily_rates"}, "ResourceSource"),
    ],
)
def test_each_source_validates_as_its_kind(source: dict, kind: str) -> None:
    assert type(_source(source)).__name__ == kind


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        (
            {"connector": "postgres", "conn_id": "s", "query": "select 1", "columns": ["a"]},
            "source.columns",
            "'columns' applies to 'table' sources (connectors: clickhouse, mssql, postgres); "
            "this is a 'query' source of connector 'postgres'",
        ),
        (
            {"connector": "kafka", "conn_id": "k", "topic": "t", "options": {"a": 1}},
            "source.options",
            "'options' applies to 'resource' sources",
        ),
        (
            {"connector": "postgres", "conn_id": "s", "table": "t", "query": "select 1"},
            "source",
            "give exactly one of 'table', 'query', 'topic', 'endpoint' or 'resource'",
        ),
        (
            {"connector": "postgres", "conn_id": "s"},
            "source",
            "give exactly one of 'table', 'query', 'topic', 'endpoint' or 'resource'",
        ),
        (
            {"connector": "postgres", "conn_id": "s", "table": "t", "bogus": None},
            "source.bogus",
            "unknown key 'bogus'",
        ),
        (
            {"connector": "postgres", "conn_id": "s", "table": "t", "bogus": 1},
            "source.bogus",
            "unknown key 'bogus'; allowed keys: batch_size, columns, conn_id, connector, incremental, table, window",
        ),
    ],
)
def test_a_key_of_another_kind_is_named_with_its_path(source: dict, field: str, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        _source(source)
    issue = err.value.issues[0]
    assert issue.field == field and message in issue.message, issue


def _api_load(connector: str, resource: str, sink: dict, **incremental: object):
    body = {
        "name": "l",
        "source": {
            "connector": connector,
            "conn_id": "c",
            "resource": resource,
            "options": {
                "app_id": "a",
                **{o.split("|")[0]: "x" for o in RESOURCES[connector][resource].required_options},
            },
            "incremental": {"mode": "cursor", "cursor": RESOURCES[connector][resource].cursor, **incremental},
        },
        "sink": {"connector": "postgres", "conn_id": "d", "table": "raw.t", **sink},
    }
    return parse_manifest({"pipeline": "p", "loads": [body]}).loads[0]


MERGE = {"strategy": "incremental_merge", "unique_key": ["id"]}


def test_a_merged_api_load_re_reads_the_vendors_default_lookback() -> None:
    day = 86400.0
    assert _api_load("appsflyer", "installs", MERGE).source.incremental.lookback == 10 * day
    assert _api_load("appsflyer", "uninstall_events", MERGE).source.incremental.lookback == 14 * day
    assert _api_load("omnidesk", "cases", MERGE).source.incremental.lookback == 3 * day
    assert _api_load("appsflyer", "installs", MERGE, lookback="1d").source.incremental.lookback == day
    assert _api_load("appsflyer", "installs", MERGE, lookback=0).source.incremental.lookback == 0
    append = {"strategy": "incremental_append"}
    assert _api_load("appsflyer", "in_app_events", append).source.incremental.lookback == 0  # no re-read
    assert _api_load("similarweb", "visits", MERGE).source.incremental.lookback == 0  # final data


def test_an_unkeyed_api_append_refuses_a_lookback() -> None:
    with pytest.raises(ManifestError) as err:
        _api_load("appsflyer", "in_app_events", {"strategy": "incremental_append"}, lookback="2d")
    issue = err.value.issues[0]
    assert (
        issue.field == "source.incremental.lookback"
        and "incremental_append without sink.unique_key would append them a second time" in issue.message
    )


def test_an_unkeyed_api_append_skips_the_watermark_and_refuses_to_read_it() -> None:
    append = {"strategy": "incremental_append"}
    assert _api_load("appsflyer", "in_app_events", append).source.incremental.at_watermark == "skip"
    assert _api_load("appsflyer", "installs", MERGE).source.incremental.at_watermark == "read"
    with pytest.raises(ManifestError) as err:
        _api_load("appsflyer", "in_app_events", append, at_watermark="read")
    assert err.value.issues[0].field == "source.incremental.at_watermark"


def test_quality_gates_on_a_topic_sink_are_refused_at_validate() -> None:
    body = {
        "name": "l",
        "source": {"connector": "postgres", "conn_id": "s", "table": "t"},
        "sink": {"connector": "kafka", "conn_id": "k", "topic": "t", "strategy": "incremental_append"},
        "quality": [{"check": "not_null", "columns": ["id"]}],
    }
    with pytest.raises(ManifestError) as err:
        parse_manifest({"pipeline": "p", "loads": [body]})
    [issue] = err.value.issues
    assert issue.field == "quality" and "connector 'kafka' has no queryable staging" in issue.message


def test_a_resources_required_options_are_checked_at_validate_with_their_aliases() -> None:
    def body(connector: str, resource: str, options: dict) -> dict:
        return {
            "name": "l",
            "source": {"connector": connector, "conn_id": "c", "resource": resource, "options": options},
            "sink": {"connector": "postgres", "conn_id": "d", "table": "raw.t"},
        }

    with pytest.raises(ManifestError) as err:
        parse_manifest({"pipeline": "p", "loads": [body("fasttrack", "chat_sessions", {})]})
    [issue] = err.value.issues
    assert (
        issue.field == "source.options"
        and "resource 'chat_sessions' of 'fasttrack' needs uuid" in issue.message
    )
    with pytest.raises(ManifestError, match=r"needs spreadsheet_id \(or spreadsheet_url\)"):
        parse_manifest({"pipeline": "p", "loads": [body("google_sheets", "values", {"range": "A1"})]})
    url = {"spreadsheet_url": "https://docs.google.com/spreadsheets/d/abc/edit"}  # stands for the id
    assert parse_manifest({"pipeline": "p", "loads": [body("google_sheets", "values", url)]}).loads
