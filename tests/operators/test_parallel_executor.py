"""A 4-partition load under a real scheduler: ``airflow standalone`` runs the DAG factory's plan,
mapped extract and finalize tasks on its LocalExecutor, four task processes at a time. One
partition's task process is SIGKILLed after writing its files (before it could report them):
Airflow retries that partition alone, the finalize loads the retry's files, and the warehouse
holds every source row exactly once."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_dpone.demo.ui import ui_env
from airflow_provider_dpone.runtime.failpoints import ENV, ONCE_ENV, PARTITION_FILES
from tests.operators.test_airflow_parallel import parallel_manifest
from tests.operators.ui_helpers import airflow_exe, free_port, get_json, send_json, stop_process_group

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "par_orders"


@pytest.fixture
def scheduler(clean_pg: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``airflow standalone`` (scheduler, LocalExecutor with 4 slots, DAG processor, API server)
    serving the partitioned manifest; the first partition task to write its files is killed."""
    clean_pg.execute("src", "create table orders (id bigint primary key, amount numeric(10,2))")
    clean_pg.execute("src", "insert into orders select g, g from generate_series(1, 40000) g")
    home, manifests = tmp_path / "airflow", tmp_path / "manifests"
    (home / "dags").mkdir(parents=True)
    manifests.mkdir()
    shutil.copy(ROOT / "dags" / "dpone_manifests.py", home / "dags")
    (manifests / "par.yaml").write_text(yaml.safe_dump(parallel_manifest(tmp_path / "staging")))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}  # keeps AIRFLOW_CONN_*
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__WORKERS": "1",
        "DPONE_MANIFESTS_DIR": str(manifests),
        ENV: PARTITION_FILES,
        ONCE_ENV: str(tmp_path / "killed-once"),
    }
    log_path = tmp_path / "standalone.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [airflow_exe(), "standalone"],
            env=ui_env(env, "127.0.0.1", port),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 150
            while True:
                try:
                    if DAG_ID in {d["dag_id"] for d in get_json(f"{base}/api/v2/dags")["dags"]}:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"airflow standalone did not come up: {log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            get_json(f"{base}/execution/health", timeout=90)  # warm the tasks' API before they start
            yield base, tmp_path
        finally:
            stop_process_group(server, grace=5)
            print(f"airflow standalone output: {log_path}")


def test_a_killed_partition_retries_alone_and_the_load_converges(
    scheduler: tuple[str, Path], clean_pg: Any
) -> None:
    base, tmp_path = scheduler
    run = send_json(f"{base}/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None})
    run_id = run["dag_run_id"]
    deadline, state = time.monotonic() + 150, "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        try:
            state = get_json(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        except OSError:
            continue
    tis = get_json(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    seen = sorted((t["task_id"], t["map_index"], t["state"], t["try_number"]) for t in tis)
    assert state == "success", seen
    assert (tmp_path / "killed-once").exists()  # a partition task process was SIGKILLed
    extracts = [t for t in seen if t[0] == "orders__extract"]
    assert sorted(t[1] for t in extracts) == [0, 1, 2, 3] and all(t[2] == "success" for t in extracts)
    assert sorted(t[3] for t in extracts) == [1, 1, 1, 2]  # the killed one retried, alone
    assert [t[3] for t in seen if t[0] in ("orders__plan", "orders")] == [1, 1]
    spans = sorted(
        (dt.datetime.fromisoformat(t["start_date"]), dt.datetime.fromisoformat(t["end_date"]))
        for t in tis
        if t["task_id"] == "orders__extract"
    )
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), spans  # ranges ran side by side
    assert clean_pg.query("dst", "select count(*), count(distinct id), sum(id) from raw.orders") == [
        (40000, 40000, 40000 * 40001 // 2)
    ]
    # the killed try's files stay as its evidence; the loaded files and manifests are gone
    left = sorted(p.relative_to(tmp_path / "staging") for p in (tmp_path / "staging").rglob("*.json"))
    assert len(left) == 1 and left[0].parts[-1] == "manifest.json", left
