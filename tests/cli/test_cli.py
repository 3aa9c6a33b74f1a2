"""``dpone`` against the real PostgreSQL: plan touches nothing, run, state show|set|reset, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null,
                     updated_at timestamptz not null);
insert into orders select g, g, timestamptz '2024-01-01' + g * interval '1 minute'
from generate_series(1, 100) g;
"""


def write_manifest(tmp_path: Path, state: dict | None = None) -> Path:
    doc = {
        "pipeline": "cli",
        "state": state or {"backend": "table", "conn_id": "dst"},
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "src"},
            "sink": {"connector": "postgres", "conn_id": "dst"},
        },
        "loads": [
            {
                "name": "orders",
                "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
                "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
            },
            {"name": "orders_copy", "source": {"table": "orders"}, "sink": {"table": "raw.orders_copy"}},
        ],
    }
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_plan_shows_sql_and_touches_nothing(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    code, plan = run_json(capsys, "plan", str(path))
    assert code == EXIT_OK
    orders = plan["loads"][0]
    assert orders["extract"]["sql"].startswith("copy (select")
    assert orders["extract"]["window"]["mode"] == "cursor"
    statements = orders["load_sql"]["statements"]
    # A new target: the plan creates it and inserts (a run against it merges nothing).
    assert any(s.startswith('create table "raw"."orders"') for s in statements)
    assert not any(s.startswith("update ") for s in statements)
    assert [s["sql"] for s in orders["load_sql"]["steps"]][-1].startswith('insert into "raw"."orders"')
    assert orders["schema_plan"]["target_exists"] is False and orders["schema_plan"]["changes"] == []
    # Nothing was created in the sink: no schemas, no state table, no staging.
    schemas = pg.query(
        "dst", "select nspname from pg_namespace where nspname in ('raw','dpone','dpone_staging')"
    )
    assert schemas == []
    assert main(["plan", str(path), "--load", "orders"]) == EXIT_OK
    human = capsys.readouterr().out
    assert "== load orders (incremental_merge)" in human and "-- extract" in human
    assert "-- schema plan (safe): no changes" in human


def test_run_then_state_show_set_reset(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    code, out = run_json(capsys, "run", str(path))
    assert code == EXIT_OK
    assert [r["status"] for r in out["reports"]] == ["success", "success"]
    assert pg.query("dst", "select count(*) from raw.orders")[0][0] == 100

    code, shown = run_json(capsys, "state", "show", str(path))
    states = {s["load"]: s["state"] for s in shown["states"]}
    assert code == EXIT_OK and states["orders_copy"] is None  # a full refresh keeps no state
    assert states["orders"]["cursor"] == "updated_at" and states["orders"]["value"]

    # Rewind the watermark to reload the last 10 rows; the merge converges to the same table.
    code, done = run_json(
        capsys, "state", "set", str(path), "--load", "orders", "--value", "2024-01-01T01:30:00Z"
    )
    assert code == EXIT_OK and done["after"]["value"] == "2024-01-01T01:30:00Z"
    pg.execute("src", "update orders set amount = -1 where id = 95")
    code, out = run_json(capsys, "run", str(path), "--load", "orders")
    assert code == EXIT_OK and out["reports"][0]["rows"] == 10
    assert pg.query("dst", "select amount from raw.orders where id = 95")[0][0] == -1

    # A whole record as JSON works too; a record for another cursor column is refused.
    record = json.dumps({"kind": "cursor", "cursor": "updated_at", "value": "2024-01-01 01:39:00+00"})
    assert main(["state", "set", str(path), "--load", "orders", "--value", record]) == EXIT_OK
    capsys.readouterr()
    wrong = json.dumps({"kind": "cursor", "cursor": "id", "value": "5"})
    assert main(["state", "set", str(path), "--load", "orders", "--value", wrong]) == EXIT_BAD_INPUT
    assert "uses cursor 'updated_at'" in capsys.readouterr().err
    assert main(
        ["state", "set", str(path), "--load", "orders", "--value", '{"kind": "xmin", "xmin": 1}']
    ) == (EXIT_BAD_INPUT)
    assert "uses cursor mode" in capsys.readouterr().err
    # A full-refresh load keeps no state.
    assert main(["state", "set", str(path), "--load", "orders_copy", "--value", "1"]) == EXIT_BAD_INPUT
    assert "no source.incremental" in capsys.readouterr().err

    code, reset = run_json(capsys, "state", "reset", str(path), "--load", "orders")
    assert code == EXIT_OK and reset["existed"] is True
    code, shown = run_json(capsys, "state", "show", str(path), "--load", "orders")
    assert shown["states"] == [
        {
            "pipeline": "cli",
            "load": "orders",
            "state": None,
            "run_id": None,
            "updated_at": None,
            "kept_staging": [],
        }
    ]


def test_bad_inputs_exit_2_and_failures_exit_1(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    path = write_manifest(tmp_path)
    assert main(["run", str(path), "--load", "nope"]) == EXIT_BAD_INPUT
    assert "no load 'nope'" in capsys.readouterr().err
    assert main(["state", "reset", str(path)]) == EXIT_BAD_INPUT
    assert "needs --load" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("pipeline: x\nloads: [\n")
    assert main(["validate", str(broken)]) == EXIT_BAD_INPUT
    assert "broken.yaml: <root>: invalid YAML" in capsys.readouterr().out
    # The source table does not exist: the load fails (exit 1) and the sink is untouched.
    code, out = run_json(capsys, "run", str(path), "--load", "orders")
    assert code == EXIT_FAILED and "orders" in out["reports"][0]["error"]
    assert pg.query("dst", "select to_regclass('raw.orders')")[0][0] is None


def test_console_script_is_installed(tmp_path) -> None:
    path = write_manifest(tmp_path)
    dpone = str(Path(sys.executable).with_name("dpone"))
    done = subprocess.run(
        [dpone, "validate", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"][0]["loads"] == ["orders", "orders_copy"]


def test_reports_are_saved_and_shown_as_markdown_and_json(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    reports = tmp_path / "reports"
    assert main(["run", str(path), "--report-dir", str(reports)]) == EXIT_OK
    capsys.readouterr()
    assert main(["report", "--dir", str(reports), "--load", "orders", "--format", "markdown"]) == EXIT_OK
    markdown = capsys.readouterr().out
    assert "## dpone run report: `cli.orders`" in markdown
    assert "| status | **success** |" in markdown
    assert "| stage |" in markdown and "### State" in markdown
    assert "- output: `postgres://" in markdown
    code, shown = run_json(capsys, "report", "--dir", str(reports))
    assert code == EXIT_OK and [r["load"] for r in shown] == ["orders", "orders_copy"]
    lineage = shown[0]["lineage"]
    assert lineage["inputs"][0]["name"].endswith(".public.orders")
    assert lineage["outputs"][0]["rows"] == 100
    assert [f["name"] for f in lineage["outputs"][0]["schema"]] == ["id", "amount", "updated_at"]
    # A failed run is saved too, and --fail-on-failed turns it into exit 1.
    pg.execute("src", "drop table orders")
    assert main(["run", str(path), "--load", "orders", "--report-dir", str(reports)]) == EXIT_FAILED
    capsys.readouterr()
    assert main(["report", "--dir", str(reports), "--load", "orders", "--fail-on-failed"]) == EXIT_FAILED
    assert "[failed]" in capsys.readouterr().out
    files = sorted((reports / "cli" / "orders").glob("*.json"))
    assert len(files) == 2
    assert main(["report", str(files[0]), "--format", "markdown"]) == EXIT_OK
    assert "**success**" in capsys.readouterr().out


def test_openlineage_facets_from_the_report(clean_pg, tmp_path, capsys) -> None:
    from airflow_provider_dpone.runtime.openlineage import operator_lineage

    pg = clean_pg
    pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    code, out = run_json(capsys, "run", str(path), "--load", "orders")
    assert code == EXIT_OK
    lineage = operator_lineage(out["reports"][0]["lineage"])
    (source,), (target,) = lineage.inputs, lineage.outputs
    assert source.namespace.startswith("postgres://") and source.name.endswith(".public.orders")
    assert target.name.endswith(".raw.orders")
    assert [f.name for f in target.facets["schema"].fields] == ["id", "amount", "updated_at"]
    assert target.outputFacets["outputStatistics"].rowCount == 100


def test_plan_for_clickhouse_kafka_and_rest_loads_touches_nothing(
    clean_pg, clean_ch, kafka, tmp_path, capsys
) -> None:
    """``dpone plan`` on the other connectors: their plans print and nothing is created."""
    from tests.fake_api import TOKEN, FakeApi

    pg, ch = clean_pg, clean_ch
    pg.execute("src", ORDERS)
    kafka.create_topic("plan_topic", 2)
    api = FakeApi([])
    os.environ["AIRFLOW_CONN_PLANAPI"] = json.dumps(
        {"conn_type": "http", "host": api.url, "password": TOKEN, "extra": {"auth": "bearer"}}
    )
    doc = {
        "pipeline": "plans",
        "state": {"backend": "table", "conn_id": "dst"},
        "loads": [
            {
                "name": "to_ch",
                "source": {"connector": "postgres", "conn_id": "src", "table": "orders"},
                "sink": {
                    "connector": "clickhouse",
                    "conn_id": "ch",
                    "table": "raw.orders",
                    "strategy": "incremental_merge",
                    "unique_key": ["id"],
                },
            },
            {
                "name": "from_kafka",
                "source": {
                    "connector": "kafka",
                    "conn_id": "kafka",
                    "topic": "plan_topic",
                    "incremental": {"mode": "offsets"},
                    "fields": {"id": "int64"},
                },
                "sink": {
                    "connector": "postgres",
                    "conn_id": "dst",
                    "table": "raw.msgs",
                    "strategy": "incremental_append",
                },
            },
            {
                "name": "to_kafka",
                "source": {"connector": "postgres", "conn_id": "src", "table": "orders"},
                "sink": {
                    "connector": "kafka",
                    "conn_id": "kafka",
                    "topic": "plan_topic",
                    "strategy": "incremental_append",
                },
            },
            {
                "name": "from_api",
                "source": {
                    "connector": "rest",
                    "conn_id": "planapi",
                    "endpoint": {"path": "/offset", "record_selector": "data"},
                },
                "sink": {
                    "connector": "postgres",
                    "conn_id": "dst",
                    "table": "raw.api",
                    "strategy": "full_refresh",
                },
            },
        ],
    }
    path = tmp_path / "plans.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        code, plan = run_json(capsys, "plan", str(path))
        assert code == EXIT_OK
        by_load = {p["load"]: p for p in plan["loads"]}
        assert any("create table `dpone_staging`" in s for s in by_load["to_ch"]["load_sql"]["statements"])
        assert by_load["to_ch"]["load_sql"]["target"] == "raw.orders"
        assert by_load["from_kafka"]["extract"]["partitions"] == {
            "0": {"from": 0, "to": 0},
            "1": {"from": 0, "to": 0},
        }
        assert by_load["to_kafka"]["load_sql"]["target"] == "plan_topic"
        assert by_load["from_api"]["extract"]["request"].endswith("/offset")
        assert main(["plan", str(path)]) == EXIT_OK  # the human form prints every kind of extract
        human = capsys.readouterr().out
        assert "-- extract: {" in human and "load into plan_topic via transaction" in human
        assert ch.query("select count() from system.databases where name in ('raw', 'dpone_staging')") == [
            (0,)
        ]
        assert pg.query("dst", "select to_regclass('raw.msgs'), to_regclass('raw.api')") == [(None, None)]
        assert api.log == []  # planning a REST load sends no request
    finally:
        api.close()


def test_state_show_lists_the_staging_failed_runs_kept(clean_pg, tmp_path, capsys) -> None:
    clean_pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    assert main(["run", str(path), "--load", "orders"]) == EXIT_OK
    clean_pg.execute("src", "update orders set amount = -1, updated_at = now() where id = 5")
    doc = yaml.safe_load(path.read_text())
    doc["loads"][0]["quality"] = [{"check": "sql", "sql": "select count(*) from {staging} where amount < 0"}]
    path.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    code, ran = run_json(capsys, "run", str(path), "--load", "orders", "--run-id", "bad_run")
    (failed,) = ran["reports"]  # the failed run's whole report, as XCom and the saved file have it
    assert code == EXIT_FAILED and failed["status"] == "failed" and failed["run_id"] == "bad_run"
    assert "quality" in failed["error"] and failed["state_committed"] == "no"
    assert {p["name"] for p in failed["phases"]} >= {"extract", "stage"}
    code, shown = run_json(capsys, "state", "show", str(path), "--load", "orders")
    assert code == EXIT_OK
    (kept,) = shown["states"][0]["kept_staging"]
    assert kept["run_id"] == "bad_run" and kept["table"].startswith("dpone_staging.orders__")
    assert kept["failed"] is True
    assert main(["state", "show", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"kept staging: {kept['table']} (run bad_run," in out and "old, failed)" in out


def test_plan_says_when_the_run_would_refuse_its_state(clean_pg, tmp_path, capsys) -> None:
    clean_pg.execute("src", ORDERS)
    path = write_manifest(tmp_path)
    assert main(["run", str(path), "--load", "orders"]) == EXIT_OK
    clean_pg.execute("dst", "drop table raw.orders")
    capsys.readouterr()
    assert main(["plan", str(path), "--load", "orders"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "-- the run would fail before extracting: [DPONE308]" in out
    doc = yaml.safe_load(path.read_text())
    doc["loads"][0]["source"]["incremental"]["on_target_missing"] = "full_extract"
    path.write_text(yaml.safe_dump(doc))
    code, plan = run_json(capsys, "plan", str(path), "--load", "orders")
    (entry,) = plan["loads"]
    assert code == EXIT_OK and "reading the source in full" in entry["warning"]
    assert entry["extract"]["window"]["lower"] is None  # the plan reads everything, as the run would


def test_validate_notes_an_experimental_connector(tmp_path, capsys) -> None:
    path = tmp_path / "ms.yaml"
    path.write_text(
        "pipeline: ms\n"
        "loads:\n"
        "  - name: orders\n"
        "    source: {connector: mssql, conn_id: shop, table: dbo.orders}\n"
        "    sink: {connector: postgres, conn_id: dwh, table: raw.orders}\n"
    )
    assert main(["validate", str(path)]) == 0
    assert "connector 'mssql' is experimental" in capsys.readouterr().out
    assert main(["validate", "--format", "json", str(path)]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert notes == [{"file": str(path), "connector": "mssql", "certification": "experimental"}]
    path.write_text(path.read_text().replace("connector: mssql", "connector: postgres"))
    assert main(["validate", str(path)]) == 0 and "experimental" not in capsys.readouterr().out


def test_a_failed_load_skips_only_its_dependents(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", "create table items (id int primary key, v text); insert into items values (1, 'a')")
    doc = {
        "pipeline": "deps",
        "state": {"backend": "table", "conn_id": "dst"},
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "src"},
            "sink": {"connector": "postgres", "conn_id": "dst"},
        },
        "loads": [
            {"name": "missing", "source": {"table": "no_such_table"}, "sink": {"table": "raw.missing"}},
            {
                "name": "after",
                "depends_on": ["missing"],
                "source": {"table": "items"},
                "sink": {"table": "raw.a"},
            },
            {
                "name": "after_after",
                "depends_on": ["after"],
                "source": {"table": "items"},
                "sink": {"table": "raw.b"},
            },
            {"name": "independent", "source": {"table": "items"}, "sink": {"table": "raw.items"}},
        ],
    }
    path = tmp_path / "deps.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out = run_json(capsys, "run", str(path))
    statuses = {r["load"]: r["status"] for r in out["reports"]}
    assert code == EXIT_FAILED and statuses == {
        "missing": "failed",
        "after": "upstream_failed",
        "after_after": "upstream_failed",
        "independent": "success",
    }
    blocked = next(r for r in out["reports"] if r["load"] == "after_after")
    assert blocked["error"] == "not run: it depends on load 'missing', which failed"
    assert pg.query("dst", "select count(*) from raw.items") == [(1,)]
    assert pg.query("dst", "select to_regclass('raw.a'), to_regclass('raw.b')") == [(None, None)]
    assert main(["run", str(path)]) == EXIT_FAILED
    assert "load after NOT RUN: it depends on load 'missing', which failed" in capsys.readouterr().err
