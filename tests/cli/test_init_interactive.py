"""``dpone init`` asking at a terminal: only what the flags left out, only the choices the pair
supports, the API catalogue offered; input ending early writes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from airflow_provider_dpone.dag_factory.files import load_manifest
from tests.cli.init_helpers import REST, Terminal, init, no_terminal  # noqa: F401  (no_terminal: autouse)

pytestmark = pytest.mark.unit


def test_interactive_asks_for_what_is_missing(tmp_path: Path, capsys, monkeypatch) -> None:
    answers = [
        "inter",  # pipeline
        "postgres",  # source connector
        "shop_pg",  # source connection
        "public.customers",  # table
        "xmin",  # mode (not offered by ClickHouse as a source; PostgreSQL offers it)
        "clickhouse",  # sink
        "ch",  # sink connection
        "",  # target: the default raw.customers
        "full_refresh",  # not offered for an incremental read: asked again
        "",  # strategy: the default incremental_merge
        "id",  # unique key
        "@daily",  # schedule
        # no state question: ClickHouse cannot host the state table, variable is the one choice
    ]
    monkeypatch.setattr("sys.stdin", Terminal("\n".join(answers) + "\n"))
    out = tmp_path / "inter.yaml"
    code, stdout, err = init(capsys, out)
    assert code == EXIT_OK, err
    assert "read mode (full|cursor|xmin|cdc) [full]" in err
    assert "sink connector (bigquery|clickhouse|kafka|mssql|postgres)" in err
    assert "strategy (incremental_append|incremental_merge) [incremental_merge]" in err
    assert "give one of: incremental_append, incremental_merge" in err
    assert "state backend: variable (the only choice)" in err
    assert main(["validate", str(out)]) == EXIT_OK
    manifest = load_manifest(out)
    load = manifest.loads[0]
    assert (manifest.pipeline, manifest.schedule, load.sink.target) == ("inter", "@daily", "raw.customers")
    assert (load.sink.strategy.value, load.sink.unique_key) == ("incremental_merge", ["id"])
    assert load.source.incremental is not None and load.source.incremental.mode.value == "xmin"
    assert f"wrote {out}" in stdout


def test_interactive_offers_only_what_the_pair_supports(tmp_path: Path, capsys, monkeypatch) -> None:
    """A PostgreSQL change feed: only the sinks it loads into, only cdc_apply, a key asked for."""
    answers = ["public.t", "cdc", "kafka", "postgres", "", "id", "", "table"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(answers) + "\n"))
    out = tmp_path / "feed.yaml"
    argv = [
        "--interactive",
        "--pipeline",
        "feed",
        "--source",
        "postgres",
        "--source-conn",
        "src",
        "--sink-conn",
        "dst",
    ]
    code, _, err = init(capsys, out, *argv)
    assert code == EXIT_OK, err
    assert "sink connector (bigquery|clickhouse|mssql|postgres)" in err  # no kafka for a change feed
    assert "strategy: cdc_apply (the only choice)" in err
    assert "state backend (variable|table) [variable]" in err
    manifest = load_manifest(out)
    assert manifest.loads[0].sink.strategy.value == "cdc_apply" and manifest.loads[0].sink.unique_key == [
        "id"
    ]
    assert (manifest.state.backend, manifest.state.conn_id, manifest.state.connector) == (
        "table",
        "dst",
        "postgres",
    )
    assert main(["validate", str(out)]) == EXIT_OK


def test_interactive_input_ending_early_writes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("p\npostgres\n"))
    code, _, err = init(capsys, tmp_path / "p.yaml")
    assert code == EXIT_BAD_INPUT and "input ended before 'source connection id'" in err
    assert not (tmp_path / "p.yaml").exists()


def test_interactive_rest_cursor_asks_for_the_server_filter(tmp_path: Path, capsys, monkeypatch) -> None:
    answers = ["/v1/orders", "cursor", "updated_at", "updated_since", "", "dwh", "", "", "id", "", ""]
    monkeypatch.setattr("sys.stdin", Terminal("\n".join(answers) + "\n"))
    out = tmp_path / "api.yaml"
    code, _, err = init(capsys, out, *REST)
    assert code == EXIT_OK, err
    assert "read mode (full|cursor) [full]" in err
    assert "the API's query parameter filtering on 'updated_at' (endpoint.server_filter)" in err
    assert main(["validate", str(out)]) == EXIT_OK
    load = load_manifest(out).loads[0]
    assert load.source.endpoint.server_filter.model_dump() == {  # type: ignore[union-attr]
        "param": "updated_since",
        "field": "updated_at",
        "format": "iso",
    }
    assert (load.sink.strategy.value, load.sink.unique_key) == ("incremental_merge", ["id"])


def test_interactive_api_resource_offers_the_catalogue(tmp_path: Path, capsys, monkeypatch) -> None:
    answers = ["", "dynamics", "R01235", "", "", "postgres", "dwh", "", "", "", "", "variable"]
    monkeypatch.setattr("sys.stdin", Terminal("\n".join(answers) + "\n"))
    out = tmp_path / "fx.yaml"
    code, _, err = init(capsys, out, "--pipeline", "fx", "--source", "cbr")
    assert code == EXIT_OK, err
    assert "source resource (currencies|daily_rates|dynamics)" in err
    assert "source connection id [cbr]" in err and "cursor column (grows with every change) [date]" in err
    load = load_manifest(out).loads[0]
    assert load.source.options == {"currency_id": "R01235"}  # type: ignore[union-attr]
    assert (load.sink.strategy.value, load.sink.unique_key) == ("incremental_merge", ["date", "id"])
