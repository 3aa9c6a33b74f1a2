"""``bash scripts/demo.sh --ui``: the demo pipeline served by ``airflow standalone``.

The unit tests cover the pieces (where the password is, the URLs, the port check that fails
before any set-up). ``test_ui_serves_runs_and_stops`` is the whole thing and is in the
``nightly`` tier, deselected by scripts/test.sh (``-m "not integration_live and not nightly"``)
because it takes 2-3 minutes: Airflow's four components take 60-100 s to start on a 2-core
machine, a triggered run about 20 s, the clean stop about 20 s. Run it with
``.venv/bin/pytest -m nightly tests/demo/test_ui.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from airflow_provider_dpone.demo import __main__ as demo
from airflow_provider_dpone.demo import ui

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_password_file_and_login_user() -> None:
    env = {"AIRFLOW_HOME": "/x/home"}
    assert ui.password_file(env) == Path("/x/home/simple_auth_manager_passwords.json.generated")
    assert ui.login_user(env) == "admin"
    env |= {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "/y/pw.json"}
    assert ui.password_file(env) == Path("/y/pw.json")
    assert ui.login_user({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ann:admin,bob:viewer"}) == "ann"
    assert ui.login_user({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}) is None


def test_urls_and_environment_follow_the_port() -> None:
    assert ui.browser_url("127.0.0.1", 8080, "demo_orders") == "http://localhost:8080/dags/demo_orders"
    assert ui.browser_url("10.0.0.5", 9000, "d") == "http://10.0.0.5:9000/dags/d"
    env = ui.ui_env({"AIRFLOW_HOME": "/h", "PATH": "/usr/bin"}, "0.0.0.0", 18080)
    assert env["AIRFLOW__API__PORT"] == "18080" and env["AIRFLOW__API__HOST"] == "0.0.0.0"
    # the task processes must reach the execution API on the same port, not the default 8080
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_a_busy_port_fails_before_any_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_postgres(*_: object) -> None:
        raise AssertionError("set-up started although the port is taken")

    monkeypatch.setattr(demo, "resolve_postgres_uri", no_postgres)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            demo.main(["--ui", "--port", str(port)])
    assert f"Port {port}" in str(exc.value) and f"--port {port + 1}" in str(exc.value)


def test_port_and_host_default_to_airflows_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__API__PORT", raising=False)
    monkeypatch.delenv("AIRFLOW__API__HOST", raising=False)
    args = demo._parse(["--ui"])
    assert (args.port, args.host) == (8080, "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__API__PORT", "9090")
    assert demo._parse([]).port == 9090 and not demo._parse([]).ui


def _api(method: str, url: str, token: str | None = None, body: object = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    data = None if body is None else json.dumps(body).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=30) as r:
        return json.loads(r.read())


def _processes_with(home: Path) -> list[str]:
    """Live processes whose environment has AIRFLOW_HOME=home (what --ui started)."""
    found = []
    marker = f"AIRFLOW_HOME={home}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            live = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if live and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.mark.nightly
@pytest.mark.timeout(900)
def test_ui_serves_runs_and_stops(pg, tmp_path: Path) -> None:
    import psycopg

    home = tmp_path / "airflow"
    prefix = f"dpone_t_ui_{uuid.uuid4().hex[:6]}"
    port = _free_port()
    env = {
        **os.environ,
        "DPONE_POSTGRES_URI": pg.admin,
        "DPONE_DEMO_AIRFLOW_HOME": str(home),
        "DPONE_DEMO_DB_PREFIX": prefix,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
    }
    out_path = tmp_path / "demo-ui.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_dpone.demo", "--ui", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, as a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 600
        while "Ctrl-C stops Airflow." not in (text := out_path.read_text()):
            assert proc.poll() is None, text + (home / "standalone.log").read_text()[-4000:]
            assert time.monotonic() < deadline, text
            time.sleep(2)
        assert f"http://localhost:{port}/dags/demo_orders" in text
        user, password = re.search(r"login: (\S+) / (\S+)", text).groups()  # type: ignore[union-attr]
        generated = home / "simple_auth_manager_passwords.json.generated"
        assert str(generated) in text or "simple_auth_manager_passwords.json.generated" in text
        assert json.loads(generated.read_text()) == {user: password}

        base = f"http://127.0.0.1:{port}"
        token = _api("POST", f"{base}/auth/token", body={"username": user, "password": password})[
            "access_token"
        ]
        dags = {d["dag_id"]: d for d in _api("GET", f"{base}/api/v2/dags", token)["dags"]}
        assert {"demo_orders", "demo_orders_python"} <= set(dags)
        assert not dags["demo_orders"]["is_paused"]

        # The pipeline runs under the scheduler with the demo's connections.
        run = _api("POST", f"{base}/api/v2/dags/demo_orders/dagRuns", token, {"logical_date": None})
        state, deadline = run["state"], time.monotonic() + 300
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(3)
            state = _api("GET", f"{base}/api/v2/dags/demo_orders/dagRuns/{run['dag_run_id']}", token)["state"]
        assert state == "success", (home / "standalone.log").read_text()[-4000:]
        shop, dwh = (demo.database_uri(pg.admin, name) for name in demo.database_names_for(prefix))
        with psycopg.connect(shop) as s, psycopg.connect(dwh) as d:
            assert (
                s.execute("select count(*) from orders").fetchone()
                == d.execute("select count(*) from raw.orders").fetchone()
            )
    finally:
        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        with psycopg.connect(pg.admin, autocommit=True) as conn:
            for name in demo.database_names_for(prefix):
                conn.execute(f'drop database if exists "{name}" with (force)')
    text = out_path.read_text()
    assert code == 0 and "Airflow stopped." in text, text
    assert "Shutting down components" in (home / "standalone.log").read_text()  # its clean shutdown
    assert _processes_with(home) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_printed_command_carries_what_moved_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPONE_DEMO_AIRFLOW_HOME", raising=False)
    monkeypatch.delenv("DPONE_DEMO_DB_PREFIX", raising=False)
    assert demo.ui_command() == "bash scripts/demo.sh --ui"
    monkeypatch.setenv("DPONE_DEMO_AIRFLOW_HOME", "/tmp/a b")
    monkeypatch.setenv("DPONE_POSTGRES_URI", "postgresql://u:secret@h/db")
    assert demo.ui_command() == "DPONE_DEMO_AIRFLOW_HOME='/tmp/a b' bash scripts/demo.sh --ui"
