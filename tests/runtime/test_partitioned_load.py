"""Partitioned loads through the runtime (plan, one extract per range, finalize), PostgreSQL to
PostgreSQL through local files: every row exactly once, a cursor window every partition shares,
a retried partition or finalize that converges, and every way a finalize could load a partial
or foreign set refused before anything is loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, StagingEvidenceError, StateError
from airflow_provider_dpone.contracts.manifest import Manifest, parse_manifest
from airflow_provider_dpone.operators.wiring import assemble
from airflow_provider_dpone.runtime.partitioned import (
    extract_partition,
    finalize_partitions,
    plan_partitions,
    run_partitioned,
)
from airflow_provider_dpone.staging.files import MANIFEST

pytestmark = pytest.mark.integration

ORDERS = """
create table orders (id bigint primary key, amount numeric(12,2) not null, note text,
                     updated_at timestamptz not null);
insert into orders select g, g * 1.5, case when g % 5 = 0 then null else 'n' || g end,
                          timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
from generate_series(1, 5000) g;
"""
EVERY = "select count(*), sum(id), sum(amount), count(note), max(updated_at)"


def manifest(tmp_path: Path, partitions: int = 4, **load: Any) -> Manifest:
    body = {
        "name": "orders",
        "source": {"connector": "postgres", "conn_id": "src", "table": "orders"},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.orders",
                 "strategy": "full_refresh", "staging": {"files": {"uri": tmp_path.as_uri(), "rows_per_file": 700}}},
        "parallel": {"partitions": partitions, "by": "id"},
        **load,
    }  # fmt: skip
    return parse_manifest(
        {"pipeline": "par", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def incremental(tmp_path: Path) -> Manifest:
    return manifest(
        tmp_path,
        source={"connector": "postgres", "conn_id": "src", "table": "orders",
                "incremental": {"mode": "cursor", "cursor": "updated_at"}},
        sink={"connector": "postgres", "conn_id": "dst", "table": "raw.orders", "strategy": "incremental_merge",
              "unique_key": ["id"], "staging": {"files": {"uri": tmp_path.as_uri()}}},
    )  # fmt: skip


def steps(m: Manifest, run_id: str) -> tuple[Any, Any, list[Any]]:
    load = m.loads[0]
    parts = assemble(load, m.state)
    return load, parts, plan_partitions(m.pipeline, load, parts, run_id)


def test_four_partitions_load_every_row_once(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    m = manifest(tmp_path)
    report = run_partitioned(m.pipeline, m.loads[0], assemble(m.loads[0], m.state), "r1")
    assert report.status == "success" and report.rows == 5000
    assert report.source["window"]["partitions"] == 4
    assert clean_pg.query("dst", f"{EVERY} from raw.orders") == clean_pg.query("src", f"{EVERY} from orders")
    assert not [
        p for p in tmp_path.rglob("*") if p.is_file()
    ]  # retention delete: every file and manifest went


def test_the_ranges_cover_nulls_and_rows_inserted_after_the_plan(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    load, parts, tasks = steps(manifest(tmp_path), "r1")
    assert [t.range.describe() for t in tasks] == [
        "id in [-inf, 1251) or null",
        "id in [1251, 2501)",
        "id in [2501, 3751)",
        "id in [3751, +inf)",
    ]
    clean_pg.execute("src", "insert into orders values (0, 1, 'x', now()), (9000, 2, 'y', now())")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    assert [r.rows for r in results] == [1251, 1250, 1250, 1251]  # 0 and 9000 fall in the open ends
    report = finalize_partitions("par", load, parts, "r1", results)
    assert report.rows == 5002


def test_a_cursor_window_is_fixed_by_the_plan_and_a_retried_finalize_loads_nothing_twice(
    clean_pg: Any, tmp_path: Path
) -> None:
    clean_pg.execute("src", ORDERS)
    m = incremental(tmp_path)
    load, parts, tasks = steps(m, "r1")
    assert {t.cursor_upper for t in tasks} == {"2026-01-04 11:20:00+00"} and all(t.pinned for t in tasks)
    # a row past the plan's window, written while the partitions run, waits for the next run
    clean_pg.execute("src", "update orders set updated_at = '2026-02-01', amount = -1 where id = 4999")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    report = finalize_partitions("par", load, parts, "r1", results)
    assert report.rows == 4999 and report.state_after["value"] == "2026-01-04 11:20:00+00"
    again = finalize_partitions("par", load, parts, "r1", results)  # a retry after the commit
    assert again.status == "success" and "already loaded" in again.warnings[0]
    assert clean_pg.query("dst", "select count(*) from raw.orders") == [(4999,)]
    nxt = run_partitioned("par", load, parts, "r2")
    assert nxt.rows == 1 and clean_pg.query("dst", "select amount from raw.orders where id = 4999") == [(-1,)]


def test_a_retried_partition_replaces_its_failed_try(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    load, parts, tasks = steps(manifest(tmp_path), "r1")
    first_try = extract_partition("par", load, parts, tasks[2], "r1")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]  # partition 2 ran again
    assert results[2].manifest_uri != first_try.manifest_uri
    report = finalize_partitions("par", load, parts, "r1", results)
    assert report.rows == 5000 and clean_pg.query("dst", "select count(distinct id) from raw.orders") == [
        (5000,)
    ]


def test_a_partial_or_foreign_set_is_refused_before_loading(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    load, parts, tasks = steps(manifest(tmp_path), "r1")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    with pytest.raises(StagingEvidenceError, match=r"not one whole plan .*indexes \[0, 1, 3\] of 4"):
        finalize_partitions("par", load, parts, "r1", [results[0], results[1], results[3]])
    other = steps(manifest(tmp_path), "r1")[2]
    foreign = extract_partition("par", load, parts, other[1], "r1")
    with pytest.raises(StagingEvidenceError, match="not one whole plan"):
        finalize_partitions("par", load, parts, "r1", [results[0], foreign, results[2], results[3]])
    lying = dataclasses.replace(results[1], rows=results[1].rows + 1)
    with pytest.raises(StagingEvidenceError, match="is not what partition 1 reported"):
        finalize_partitions("par", load, parts, "r1", [results[0], lying, results[2], results[3]])
    next(Path(results[3].manifest_uri.removeprefix("file://")).glob("part-00000.*")).unlink()
    with pytest.raises(StagingEvidenceError, match="missing; nothing was loaded"):
        finalize_partitions("par", load, parts, "r1", results)
    assert clean_pg.query("dst", "select to_regclass('raw.orders') is null") == [(True,)]
    assert list(Path(tasks[0].directory.removeprefix("file://")).glob(f"p000/*/{MANIFEST}"))  # kept: evidence


def test_a_state_changed_since_the_plan_fails_the_finalize(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    m = incremental(tmp_path)
    load, parts, tasks = steps(m, "r1")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    from airflow_provider_dpone.contracts.state import CursorState

    later = CursorState("updated_at", "2026-03-01 00:00:00+00", "timestamptz")
    parts.state.commit("par", "orders", later, "manual")  # `dpone state set` while the ranges ran
    with pytest.raises(StateError, match="not None as when the partitions were planned"):
        finalize_partitions("par", load, parts, "r1", results)


def test_a_key_that_is_not_the_primary_key_is_refused(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    m = manifest(tmp_path)
    load = m.loads[0].model_copy(update={"parallel": m.loads[0].parallel.model_copy(update={"by": "amount"})})
    with pytest.raises(BadInputError, match="'amount' is not a primary-key column of orders"):
        plan_partitions("par", load, assemble(load, m.state), "r1")


def test_dpone_plan_shows_the_ranges_and_dpone_run_and_replay_load_them(
    clean_pg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import yaml

    from airflow_provider_dpone.cli.main import main

    clean_pg.execute("src", ORDERS)
    staging = tmp_path / "staging"
    body = manifest(staging).model_dump(mode="json", by_alias=True, exclude_none=True)
    body["loads"][0]["sink"]["staging"]["files"]["retention"] = "keep"
    path = tmp_path / "par.yaml"
    path.write_text(yaml.safe_dump(body))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "-- partitions (orders__plan >> orders__extract (mapped, 4) >> orders)" in out
    assert "--   3: id in [3751, +inf)" in out
    assert main(["plan", str(path), "--format", "json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["loads"]
    assert (
        planned["partitions"]["files"] == f"{staging.as_uri()}/par/orders/<run_id>/plan-<id>/p<index>/<try>"
    )
    assert main(["run", str(path), "--run-id", "cli1"]) == 0
    assert "load orders: success, 5,000 rows" in capsys.readouterr().out
    (plan_dir,) = (staging / "par" / "orders" / "cli1").iterdir()
    assert (plan_dir / MANIFEST).exists()  # kept: the gathered manifest replays as one export
    clean_pg.execute("dst", "delete from raw.orders where id > 100")
    assert main(["replay", str(path), "--load", "orders", "--uri", plan_dir.as_uri()]) == 0
    assert clean_pg.query("dst", "select count(*) from raw.orders") == [(5000,)]


def test_an_older_plan_never_loads_over_a_newer_one(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ORDERS)
    load, parts, old_tasks = steps(manifest(tmp_path), "r1")  # a full refresh: no state to compare
    old = [extract_partition("par", load, parts, t, "r1") for t in old_tasks]
    clean_pg.execute("src", "update orders set note = 'new'")
    run_partitioned("par", load, parts, "r2")  # the next run loads the newer rows
    with pytest.raises(StateError, match="loading it would put older rows over newer ones"):
        finalize_partitions("par", load, parts, "r1", old)  # run r1's finalize cleared and retried
    assert clean_pg.query("dst", "select count(*) from raw.orders where note is distinct from 'new'") == [
        (0,)
    ]


def test_a_finalize_retried_after_its_commit_loads_nothing_even_without_state(
    clean_pg: Any, tmp_path: Path
) -> None:
    clean_pg.execute("src", ORDERS)
    load, parts, tasks = steps(manifest(tmp_path), "r1")
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    assert finalize_partitions("par", load, parts, "r1", results).rows == 5000
    again = finalize_partitions("par", load, parts, "r1", results)  # the worker died before Airflow knew
    assert again.status == "success" and "already loaded" in again.warnings[0]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # every manifest went, empty ranges' too


def test_a_reload_that_failed_is_not_taken_as_loaded_by_a_later_run(clean_pg: Any, tmp_path: Path) -> None:
    from airflow_provider_dpone.contracts.run_request import run_request

    clean_pg.execute("src", ORDERS)
    m = incremental(tmp_path)
    load, parts = m.loads[0], assemble(m.loads[0], m.state)
    run_partitioned("par", load, parts, "r0")
    clean_pg.execute("dst", "delete from raw.orders where id > 100")  # damaged: a full reload is asked for
    reload = run_request({"dpone_mode": "full_reload"})
    tasks = plan_partitions("par", load, parts, "r1", reload)
    results = [extract_partition("par", load, parts, t, "r1") for t in tasks]
    clean_pg.execute("src", "update orders set updated_at = '2026-03-01' where id = 1")
    run_partitioned("par", load, parts, "r2")  # a scheduled run commits meanwhile
    with pytest.raises(StateError):  # never "already loaded": this reload's rows were not
        finalize_partitions("par", load, parts, "r1", results, reload)
