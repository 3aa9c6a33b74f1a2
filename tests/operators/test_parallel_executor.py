"""A 4-partition load under a real scheduler, on LocalExecutor (``airflow standalone``) and on
CeleryExecutor (the components and a Celery worker, Redis as the broker): the DAG factory's plan,
mapped extract and finalize tasks run four at a time. One partition's task process is SIGKILLed
after writing its files (before it could report them): Airflow retries that partition alone, the
finalize loads the retry's files, and the warehouse holds every source row exactly once; nothing
in the provider knows which executor ran it."""

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
from tests.operators.ui_helpers import airflow_exe, free_port, get_json, send_json, skip, stop_process_group

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "par_orders"


# Celery: Redis on this machine (services.md) as the broker, a database of its own; results in SQLite
CELERY_BROKER = "redis://127.0.0.1:6379/11"


def _components(executor: str) -> list[list[str]]:
    """The Airflow processes serving the DAG: ``standalone`` for LocalExecutor (it runs the
    scheduler, DAG processor and API server, and forces a local executor); for CeleryExecutor
    each component and a Celery worker with four slots, as a deployment runs them."""
    if executor == "LocalExecutor":
        return [[airflow_exe(), "standalone"]]
    return [
        [airflow_exe(), "api-server"],
        [airflow_exe(), "scheduler"],
        [airflow_exe(), "dag-processor"],
        [airflow_exe(), "celery", "worker", "--concurrency", "4"],
    ]


def _celery_ready(executor: str) -> None:
    """Skip, saying why, when the Celery executor cannot run here; empty its broker database."""
    if executor != "CeleryExecutor":
        return
    try:
        import airflow.providers.celery  # noqa: F401
        import redis
    except ImportError as exc:
        skip(f"CeleryExecutor test: {exc.name} is not installed (the dev extra installs it)")
    try:
        redis.Redis.from_url(CELERY_BROKER, socket_timeout=2).flushdb()
    except Exception as exc:
        skip(f"CeleryExecutor test: no Redis at {CELERY_BROKER} ({exc}); services.md starts it")


@pytest.fixture(params=["LocalExecutor", "CeleryExecutor"])
def scheduler(request: pytest.FixtureRequest, clean_pg: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real scheduler running the partitioned manifest on an executor with four slots; the
    first partition task to write its files is killed."""
    executor = request.param
    _celery_ready(executor)
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
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "dpone-test-jwt-secret",  # one secret for every component
        "AIRFLOW__CELERY__BROKER_URL": CELERY_BROKER,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+sqlite:///{home / 'celery.db'}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "DPONE_MANIFESTS_DIR": str(manifests),
        ENV: PARTITION_FILES,
        ONCE_ENV: str(tmp_path / "killed-once"),
    }
    env = ui_env(env, "127.0.0.1", port)
    if executor == "CeleryExecutor":  # standalone migrates by itself; separate components do not
        subprocess.run([airflow_exe(), "db", "migrate"], env=env, check=True, capture_output=True)
    log_path = tmp_path / "airflow.log"
    base = f"http://127.0.0.1:{port}"
    servers: list[subprocess.Popen] = []
    with log_path.open("wb") as log:
        try:
            for command in _components(executor):
                servers.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        cwd=tmp_path,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + 150
            while True:
                try:
                    if DAG_ID in {d["dag_id"] for d in get_json(f"{base}/api/v2/dags")["dags"]}:
                        break
                except OSError:
                    pass
                if any(p.poll() is not None for p in servers) or time.monotonic() > deadline:
                    raise AssertionError(
                        f"Airflow ({executor}) did not come up: {log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            get_json(f"{base}/execution/health", timeout=90)  # warm the tasks' API before they start
            yield base, tmp_path
        finally:
            for server in servers:
                stop_process_group(server, grace=5)
            print(f"airflow ({executor}) output: {log_path}")


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
