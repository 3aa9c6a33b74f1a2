"""``dpone init`` from flags -> a manifest that ``dpone validate`` accepts, refusals with
validation's own messages (nothing written), overwrite and duplicate-pipeline guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.dag_factory import scaffold as sc
from airflow_provider_dpone.dag_factory.files import load_manifest
from tests.cli.init_helpers import PG_PG, REST, init, no_terminal  # noqa: F401  (no_terminal: autouse)

pytestmark = pytest.mark.unit

PAIRS = {
    "pg_to_pg": (
        [*PG_PG, "--table", "public.orders", "--cursor", "updated_at", "--unique-key", "id"],
        ("orders", "raw.orders", "incremental_merge", "cursor"),
    ),
    "pg_to_clickhouse": (
        [
            *[
                "--source",
                "postgres",
                "--source-conn",
                "shop_pg",
                "--sink",
                "clickhouse",
                "--sink-conn",
                "ch",
            ],
            *["--table", "public.orders", "--target", "dwh.orders", "--schedule", "@hourly"],
        ],
        ("orders", "dwh.orders", "full_refresh", None),
    ),
    "kafka_to_pg": (
        [
            *["--source", "kafka", "--source-conn", "broker", "--sink", "postgres", "--sink-conn", "dwh"],
            *["--topic", "shop.events", "--unique-key", "event_id", "--state", "table"],
        ],
        ("events", "raw.events", "incremental_merge", "offsets"),
    ),
    "pg_cdc_to_pg": (
        [*PG_PG, "--table", "public.customers", "--mode", "cdc", "--unique-key", "id"],
        ("customers", "raw.customers", "cdc_apply", "cdc"),
    ),
    "pg_to_kafka": (
        [
            *["--source", "postgres", "--source-conn", "shop_pg", "--sink", "kafka", "--sink-conn", "k"],
            *["--table", "public.orders", "--cursor", "updated_at"],
        ],
        ("orders", "orders", "incremental_append", "cursor"),
    ),
    "saas_to_pg": (
        [
            *["--source", "cbr", "--sink", "postgres", "--sink-conn", "dwh"],
            *["--resource", "daily_rates", "--pipeline", "rates"],
        ],
        ("daily_rates", "raw.daily_rates", "incremental_merge", "cursor"),
    ),
    "rest_to_pg": (
        [
            *["--source", "rest", "--source-conn", "api", "--sink", "postgres", "--sink-conn", "dwh"],
            *["--endpoint", "/v1/users"],
        ],
        ("users", "raw.users", "full_refresh", None),
    ),
    "rest_cursor_to_pg": (
        [
            *["--source", "rest", "--source-conn", "api", "--sink", "postgres", "--sink-conn", "dwh"],
            *["--endpoint", "/v1/users", "--mode", "cursor", "--cursor", "updated_at"],
            *["--filter-param", "updated_since", "--unique-key", "id"],
        ],
        ("users", "raw.users", "incremental_merge", "cursor"),
    ),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_flags_write_a_manifest_that_validates(pair: str, tmp_path: Path, capsys) -> None:
    argv, (load_name, target, strategy, mode) = PAIRS[pair]
    if "--pipeline" not in argv:
        argv = [*argv, "--pipeline", pair]
    out = tmp_path / "m.yaml"
    code, stdout, _ = init(capsys, out, *argv)
    assert code == EXIT_OK, stdout
    assert stdout.splitlines()[0].startswith(f"wrote {out}: ")
    assert f"  dpone doctor {out}" in stdout.splitlines() and f"  dpone plan {out}" in stdout.splitlines()
    assert [p.name for p in tmp_path.iterdir()] == ["m.yaml"]  # no temporary file left
    assert main(["validate", str(out)]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"ok    {out}")
    load = load_manifest(out).loads[0]
    assert (load.name, load.sink.target, load.sink.strategy.value) == (load_name, target, strategy)
    assert (load.source.incremental.mode.value if load.source.incremental else None) == mode


def test_written_yaml_reads_well(tmp_path: Path, capsys) -> None:
    out = tmp_path / "shop.yaml"
    argv = [*PG_PG, "--pipeline", "shop", "--table", "public.orders", "--cursor", "updated_at"]
    assert init(capsys, out, *argv, "--unique-key", "id,region")[0] == EXIT_OK
    text = out.read_text()
    assert text.startswith("# Written by `dpone init` on ") and "docs/manifest.md" in text.splitlines()[1]
    top = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert top == ["pipeline", "description", "schedule", "start_date", "tags", "state", "defaults", "loads"]
    assert "      unique_key: [id, region]" in text.splitlines()
    data = yaml.safe_load(text)
    assert data["defaults"] == {
        "source": {"connector": "postgres", "conn_id": "shop_pg"},
        "sink": {"connector": "postgres", "conn_id": "dwh_pg"},
    }
    assert data["loads"][0]["source"] == {
        "table": "public.orders",
        "incremental": {"mode": "cursor", "cursor": "updated_at"},
    }


def test_json_output(tmp_path: Path, capsys) -> None:
    out = tmp_path / "j.yaml"
    code, stdout, _ = init(capsys, out, *PG_PG, "--pipeline", "j", "--table", "t", "--format", "json")
    assert code == EXIT_OK
    data = json.loads(stdout)
    assert data["file"] == str(out)
    assert data["next"] == [f"dpone doctor {out}", f"dpone plan {out}"]
    assert data["manifest"]["loads"][0]["sink"] == {"table": "raw.t", "strategy": "full_refresh"}
    assert yaml.safe_load(out.read_text())["pipeline"] == data["manifest"]["pipeline"] == "j"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--sink", "kafka", "--strategy", "full_refresh"],
            "load 't': sink.strategy: 'full_refresh' is refused by connector 'kafka'",
        ),
        (
            ["--sink", "postgres", "--strategy", "incremental_merge"],
            "load 't': sink: strategy 'incremental_merge' needs 'unique_key: [<column>, ...]'",
        ),
        (
            ["--sink", "postgres", "--mode", "cursor"],
            "load 't': source.incremental: incremental mode 'cursor' needs 'cursor: <column>'",
        ),
        (
            ["--sink", "clickhouse", "--state", "table"],
            "state.connector: connector 'clickhouse' cannot host the state table",
        ),
    ],
)
def test_invalid_combinations_refused_as_validate_does(extra, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "bad.yaml"
    base = [
        "--pipeline",
        "bad",
        "--source",
        "postgres",
        "--source-conn",
        "a",
        "--sink-conn",
        "b",
        "--table",
        "t",
    ]
    code, stdout, _ = init(capsys, out, *base, *extra)
    assert code == EXIT_BAD_INPUT
    assert f"error {out}: {message}" in stdout
    assert not out.parent.exists()  # nothing written, not even the folder
    # The same manifest, written by hand, gets the same error from `dpone validate`.
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(_hand_written(extra)))
    assert main(["validate", str(out)]) == EXIT_BAD_INPUT
    assert f"error {out}: {message}" in capsys.readouterr().out


def _hand_written(extra: list[str]) -> dict:
    flags = dict(zip(extra[::2], extra[1::2], strict=True))
    source: dict = {"connector": "postgres", "conn_id": "a", "table": "t"}
    if "--mode" in flags:
        source["incremental"] = {"mode": flags["--mode"]}
    sink_key = "topic" if flags["--sink"] == "kafka" else "table"
    sink = {"connector": flags["--sink"], "conn_id": "b", sink_key: "x", "strategy": "full_refresh"}
    if "--strategy" in flags:
        sink["strategy"] = flags["--strategy"]
    elif "--mode" in flags:
        sink["strategy"] = "incremental_append"
    state = {"backend": "table", "conn_id": "b", "connector": flags["--sink"]} if "--state" in flags else {}
    return {
        "pipeline": "bad",
        "state": state or {"backend": "variable"},
        "loads": [{"name": "t", "source": source, "sink": sink}],
    }


def test_experimental_connector_noted(tmp_path: Path, capsys) -> None:
    argv = [
        "--pipeline",
        "m",
        "--source",
        "postgres",
        "--source-conn",
        "a",
        "--sink",
        "mssql",
        "--sink-conn",
        "b",
    ]
    code, stdout, _ = init(capsys, tmp_path / "m.yaml", *argv, "--table", "t")
    assert code == EXIT_OK
    assert "note: connector 'mssql' is experimental" in stdout and "'postgres' is" not in stdout


def test_missing_flags_without_a_terminal_are_named(tmp_path: Path, capsys) -> None:
    code, _, err = init(capsys, tmp_path / "x.yaml", "--source", "kafka", "--sink", "postgres")
    assert code == EXIT_BAD_INPUT
    assert "missing --pipeline, --source-conn, --sink-conn, --topic" in err
    assert not (tmp_path / "x.yaml").exists()
    code, _, err = init(capsys, tmp_path / "x.yaml")
    assert "missing --pipeline, --source, --source-conn, --sink, --sink-conn, --table/--topic/" in err


def test_unknown_or_wrong_side_connector(tmp_path: Path, capsys) -> None:
    base = ["--pipeline", "p", "--source-conn", "a", "--sink-conn", "b", "--table", "t"]
    code, _, err = init(capsys, tmp_path / "x.yaml", *base, "--source", "oracle", "--sink", "postgres")
    assert code == EXIT_BAD_INPUT and "--source: unknown connector 'oracle'" in err
    code, _, err = init(capsys, tmp_path / "x.yaml", *base, "--source", "bigquery", "--sink", "postgres")
    assert code == EXIT_BAD_INPUT and "--source: connector 'bigquery' is not a source" in err
    code, _, err = init(capsys, tmp_path / "x.yaml", *base, "--source", "postgres", "--sink", "rest")
    assert code == EXIT_BAD_INPUT and "--sink: connector 'rest' is not a sink" in err


def test_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.yaml"
    argv = [*PG_PG, "--pipeline", "o", "--table", "t"]
    assert init(capsys, out, *argv)[0] == EXIT_OK
    before = out.read_text()
    code, _, err = init(capsys, out, *argv, "--target", "other.t")
    assert code == EXIT_BAD_INPUT and f"{out} already exists; give --force" in err
    assert out.read_text() == before
    assert init(capsys, out, *argv, "--target", "other.t", "--force")[0] == EXIT_OK
    assert yaml.safe_load(out.read_text())["loads"][0]["sink"]["table"] == "other.t"


def test_refuses_a_second_file_of_the_same_pipeline(tmp_path: Path, capsys) -> None:
    argv = [*PG_PG, "--pipeline", "dup", "--table", "t"]
    assert init(capsys, tmp_path / "a.yaml", *argv)[0] == EXIT_OK
    code, _, err = init(capsys, tmp_path / "b.yaml", *argv, "--force")
    assert code == EXIT_BAD_INPUT and f"pipeline 'dup' is already defined in {tmp_path / 'a.yaml'}" in err
    assert not (tmp_path / "b.yaml").exists()


def test_default_output_is_the_dag_factory_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", *PG_PG, "--pipeline", "here", "--table", "t"]) == EXIT_OK
    assert "wrote dags/manifests/here.yaml" in capsys.readouterr().out
    assert (tmp_path / "dags" / "manifests" / "here.yaml").is_file()
    monkeypatch.setenv("DPONE_MANIFESTS_DIR", str(tmp_path / "elsewhere"))
    assert main(["init", *PG_PG, "--pipeline", "there", "--table", "t"]) == EXIT_OK
    assert (tmp_path / "elsewhere" / "there.yaml").is_file()


def test_api_catalogue_checks(tmp_path: Path, capsys) -> None:
    base = ["--pipeline", "r", "--source", "cbr", "--sink", "postgres", "--sink-conn", "dwh"]
    code, _, err = init(capsys, tmp_path / "r.yaml", *base, "--resource", "nope")
    assert (
        code == EXIT_BAD_INPUT
        and "'nope' is not a resource of 'cbr'; allowed: currencies, daily_rates" in err
    )
    code, _, err = init(capsys, tmp_path / "r.yaml", *base, "--resource", "dynamics")
    assert code == EXIT_BAD_INPUT and "resource 'dynamics' needs currency_id" in err
    code, _, err = init(capsys, tmp_path / "r.yaml", *base, "--resource", "daily_rates", "--cursor", "x")
    assert code == EXIT_BAD_INPUT and "resource 'daily_rates' filters on 'date', not 'x'" in err
    code, _, err = init(capsys, tmp_path / "r.yaml", *base, "--resource", "currencies", "--mode", "cursor")
    assert code == EXIT_BAD_INPUT and "resource 'currencies' has no server-side filter" in err
    assert not (tmp_path / "r.yaml").exists()
    argv = [*base, "--resource", "dynamics", "--option", "currency_id=R01235", "--mode", "full"]
    assert init(capsys, tmp_path / "r.yaml", *argv)[0] == EXIT_OK
    source = load_manifest(tmp_path / "r.yaml").loads[0].source
    assert source.options == {"currency_id": "R01235"} and source.incremental is None  # type: ignore[union-attr]


def test_rest_cursor_writes_the_server_filter_or_is_refused_naming_the_flag(tmp_path: Path, capsys) -> None:
    out = tmp_path / "api.yaml"
    argv = [*REST, "--sink-conn", "dwh", "--endpoint", "/v1/users", "--cursor", "updated_at"]
    code, _, err = init(capsys, out, *argv)  # --cursor alone means mode cursor
    assert code == EXIT_BAD_INPUT and not out.exists()
    assert "--mode cursor: an endpoint is read incrementally only through the API's own filter; give " in err
    assert "--filter-param PARAM" in err
    code, _, err = init(capsys, out, *argv, "--filter-param", "since", "--filter-format", "%Y-%m-%d")
    assert code == EXIT_OK, err
    source = load_manifest(out).loads[0].source
    assert source.endpoint.server_filter is not None  # type: ignore[union-attr]
    assert source.endpoint.server_filter.model_dump() == {  # type: ignore[union-attr]
        "param": "since",
        "field": "updated_at",
        "format": "%Y-%m-%d",
    }
    assert source.incremental is not None and source.incremental.cursor == "updated_at"
    code, stdout, _ = init(
        capsys, tmp_path / "b" / "b.yaml", *argv, "--filter-param", "since", "--filter-format", "Y"
    )
    assert code == EXIT_BAD_INPUT and "'Y' is not iso, date, unix, unix_ms or a strftime pattern" in stdout
    full = [*REST, "--sink-conn", "dwh", "--endpoint", "/v1/users", "--filter-param", "since"]
    code, _, err = init(capsys, tmp_path / "c" / "c.yaml", *full)
    assert code == EXIT_BAD_INPUT
    assert "--filter-param: only for an --endpoint source read with --mode cursor" in err
    code, _, err = init(capsys, tmp_path / "d.yaml", *PG_PG, "--pipeline", "d", "--table", "t",
                        "--cursor", "u", "--filter-format", "iso")  # fmt: skip
    assert code == EXIT_BAD_INPUT and "--filter-format: only for an --endpoint source" in err


# The pure rules (dag_factory.scaffold), each against the real validation.


def _choices(**kw: object) -> sc.Choices:
    base: dict = dict(
        pipeline="p", source="postgres", source_conn="a", sink="postgres", sink_conn="b", object="s.t"
    )
    return sc.Choices(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "strategy"),
    [
        ({}, "full_refresh"),
        ({"cursor": "u"}, "incremental_append"),
        ({"cursor": "u", "unique_key": ["id"]}, "incremental_merge"),
        ({"mode": "cdc", "unique_key": ["id"]}, "cdc_apply"),
        ({"sink": "kafka"}, "incremental_append"),
        ({"source": "kafka", "object": "ev", "unique_key": ["k"]}, "incremental_merge"),
        (
            {"source": "fasttrack", "object": "cascade_transactions", "options": {"uuid": "u"}},
            "incremental_merge",
        ),
    ],
)
def test_default_strategy_validates(kw: dict, strategy: str) -> None:
    manifest = sc.build_manifest(_choices(**kw))
    assert manifest["loads"][0]["sink"]["strategy"] == strategy
    parse_manifest(yaml.safe_load(sc.render_yaml(manifest, manifest["start_date"])))


def test_every_offered_strategy_of_every_pair_validates() -> None:
    """What the prompts offer never fails validation (keys given where a strategy needs them)."""
    checked = 0
    for source in ("postgres", "mssql", "clickhouse", "kafka", "rest"):
        for mode in sc.mode_choices(source):
            for sink in sc.sink_choices(source, mode):
                for strategy in sc.strategy_choices(sink, mode):
                    obj = {"kafka": "ev", "rest": "/v1/x"}.get(source, "s.t")
                    cursor = "u" if mode == "cursor" else None
                    c = _choices(
                        source=source,
                        sink=sink,
                        object=obj,
                        mode=mode,
                        cursor=cursor,
                        strategy=strategy,
                        unique_key=["id"],
                        # what init asks for (or refuses without) when an endpoint is read by cursor
                        filter_param="since" if source == "rest" and cursor else None,
                    )
                    assert sc.endpoint_problems(c) == [], (source, mode)
                    try:
                        parse_manifest(sc.build_manifest(c))
                    except ManifestError as exc:  # pragma: no cover - the failure message
                        pytest.fail(f"{source} {mode} -> {sink} {strategy}: {exc}")
                    checked += 1
    assert checked > 40


def test_names_and_targets() -> None:
    assert sc.object_name("public.Orders") == "Orders" and sc.object_name("/v1/users/") == "users"
    assert sc.object_name("shop-events.v2") == "v2" and sc.object_name("a-b") == "a_b"
    assert sc.default_target("public.orders", "bigquery") == "raw.orders"
    assert sc.default_target("shop.orders", "kafka") == "orders"
    assert sc.mode_choices("kafka") == ["offsets"] and sc.default_mode("kafka", None) == "offsets"
    assert sc.default_mode("postgres", "u") == "cursor" and sc.default_mode("postgres", None) == "full"
