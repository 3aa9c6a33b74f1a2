"""``dpone perf advise`` on reports of real ``dpone run``s against the local PostgreSQL: the
advice quotes the saved reports and the inspected target, its suggested SQL works (applied, the
next run's finalize skips its insert pass and the advice turns fine), an unreachable target is
said to be so without its password, and no reports is bad input naming where it looked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_OK, main

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null,
                     updated_at timestamptz not null);
insert into orders select g, g, timestamptz '2024-01-01' + g * interval '1 minute'
from generate_series(1, 5000) g;
"""
CHANGE = (
    "update orders set amount = amount + 1, updated_at = updated_at + interval '1 year' where id % 50 = 0"
)


def write_manifest(tmp_path: Path) -> Path:
    doc = {
        "pipeline": "perf",
        "state": {"backend": "table", "conn_id": "dst"},
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "src"},
            "sink": {"connector": "postgres", "conn_id": "dst"},
        },
        "loads": [
            {
                "name": "orders",
                "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
                "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
            }
        ],
    }
    path = tmp_path / "perf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def advise_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["perf", "advise", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def merge_target(out: dict) -> list[dict]:
    return [a for a in out["advice"] if a["topic"] == "merge_target"]


def test_advice_on_a_user_made_target_and_its_fix(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    # A target made by hand: no primary key, no unique index, default fillfactor.
    pg.execute(
        "dst",
        "create schema raw; create table raw.orders (id bigint, amount numeric(12,2), updated_at timestamptz)",
    )
    path, reports = write_manifest(tmp_path), tmp_path / "reports"
    assert main(["run", str(path), "--report-dir", str(reports)]) == EXIT_OK
    pg.execute("src", CHANGE)
    assert main(["run", str(path), "--report-dir", str(reports)]) == EXIT_OK
    capsys.readouterr()

    code, out = advise_json(capsys, str(path), "--load", "orders", "--dir", str(reports))
    assert code == EXIT_OK
    saved = [json.loads(f.read_text()) for f in sorted((reports / "perf" / "orders").glob("*.json"))]
    assert [r["run_id"] for r in out["reports"]] == [r["run_id"] for r in saved]
    newest = saved[-1]
    assert newest["sink"]["finalize"]["method"] == "update_insert"
    sink = next(i for i in out["inspected"] if i["role"] == "sink")
    assert (
        sink["error"] is None
        and sink["facts"]["unique_indexes"] == []
        and sink["facts"]["fillfactor"] is None
    )
    index, fill = merge_target(out)
    assert index["verdict"] == "suggest" and fill["verdict"] == "suggest"
    quoted = {(e["source"], e["field"]): e["value"] for e in index["evidence"]}
    assert quoted[(f"report {newest['run_id']}", "sink.finalize.rows_inserted")] == 0
    assert (
        quoted[(f"report {newest['run_id']}", "sink.finalize.rows_updated")]
        == newest["sink"]["finalize"]["rows_updated"]
    )

    # The suggested statements, applied as given, do what the advice says.
    for statement in (*index["change"]["sql"], *fill["change"]["sql"]):
        pg.execute("dst", statement)
    pg.execute("src", CHANGE)
    assert main(["run", str(path), "--report-dir", str(reports)]) == EXIT_OK
    capsys.readouterr()
    code, out = advise_json(capsys, str(path), "--load", "orders", "--dir", str(reports), "--last", "1")
    assert code == EXIT_OK and len(out["reports"]) == 1
    latest = sorted((reports / "perf" / "orders").glob("*.json"))[-1]
    assert json.loads(latest.read_text())["sink"]["finalize"]["method"] == "update"  # insert pass skipped
    assert [a["verdict"] for a in merge_target(out)] == ["fine", "fine"]

    # Human output: one block per advice, evidence with figures.
    assert main(["perf", "advise", str(path), "--load", "orders", "--dir", str(reports)]) == EXIT_OK
    human = capsys.readouterr().out
    assert human.startswith("perf advice for perf.orders: 3 report(s)")
    assert "[merge_target] fine: the target" in human and "[phases]" in human
    assert f"evidence (report {out['reports'][0]['run_id']}): seconds=" in human


def test_an_unreachable_target_is_reported_not_raised(clean_pg, tmp_path, capsys) -> None:
    pg = clean_pg
    pg.execute("src", ORDERS)
    path, reports = write_manifest(tmp_path), tmp_path / "reports"
    assert main(["run", str(path), "--report-dir", str(reports)]) == EXIT_OK
    capsys.readouterr()
    kept = os.environ["AIRFLOW_CONN_DST"]
    os.environ["AIRFLOW_CONN_DST"] = "postgres://someone:s3cret-pw@127.0.0.1:1/nowhere"
    try:
        code, out = advise_json(capsys, str(path), "--load", "orders", "--dir", str(reports))
        assert code == EXIT_OK
        sink = next(i for i in out["inspected"] if i["role"] == "sink")
        assert sink["facts"] is None and sink["error"].startswith("not reachable through 'dst'")
        assert "s3cret-pw" not in json.dumps(out)
        (target,) = merge_target(out)
        assert target["verdict"] == "not_known" and "not reachable" in target["finding"]
        assert (
            main(["perf", "advise", str(path), "--load", "orders", "--dir", str(reports), "--no-inspect"])
            == 0
        )
        assert "inspected: no table (--no-inspect" in capsys.readouterr().out
    finally:
        os.environ["AIRFLOW_CONN_DST"] = kept


def test_no_reports_and_bad_input_exit_2(tmp_path, capsys) -> None:
    path = write_manifest(tmp_path)
    empty = tmp_path / "none"
    assert main(["perf", "advise", str(path), "--load", "orders", "--dir", str(empty)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"no run reports of perf.orders under {empty}" in err
    assert f"dpone run {path} --load orders --report-dir {empty}" in err
    assert main(["perf", "advise", str(path), "--load", "nope", "--dir", str(empty)]) == EXIT_BAD_INPUT
    assert "no load 'nope'" in capsys.readouterr().err
    assert main(["perf", "advise", str(path), "--load", "orders", "--last", "0"]) == EXIT_BAD_INPUT
    with pytest.raises(SystemExit):  # --load is required
        main(["perf", "advise", str(path)])
