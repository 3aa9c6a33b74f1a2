"""The demo pipeline in the Airflow UI: ``airflow standalone`` with the demo's environment.

``airflow standalone`` starts the API server (which serves the UI), the scheduler, the DAG
processor and the triggerer, with the LocalExecutor and the simple auth manager, which writes
the generated admin password to ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``.
This module starts it in its own process group with its output in
``$AIRFLOW_HOME/standalone.log``, waits until the API server answers and the scheduler and the
DAG processor are healthy and the demo DAGs are parsed, unpauses them (their schedule is
``None``, so nothing runs until someone presses Trigger), prints the URL and the login, and
on Ctrl-C (or SIGTERM/SIGHUP) stops Airflow: SIGINT to ``standalone`` (its own clean
shutdown), then SIGTERM and, failing that, SIGKILL to whatever is left in its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
READY_TIMEOUT = 600.0  # seconds; Airflow's four components take 30-90 s to start on 2 cores
STOP_TIMEOUT = 60.0

# Requests to the local API server never go through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def password_file(env: dict[str, str]) -> Path:
    """Where the simple auth manager keeps the generated passwords (``[core]
    simple_auth_manager_passwords_file``, by default in AIRFLOW_HOME)."""
    configured = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if configured:
        return Path(configured)
    return Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"


def login_user(env: dict[str, str]) -> str | None:
    """The user to log in as; None when the simple auth manager lets everyone in as admin."""
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() == "true":
        return None
    users = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or "admin:admin"
    return users.split(",")[0].split(":")[0].strip()


def _client_host(host: str) -> str:
    """The address this machine reaches the API server at (a wildcard bind answers on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "", "localhost") else host


def browser_url(host: str, port: int, dag_id: str) -> str:
    shown = "localhost" if host in ("0.0.0.0", "::", "", "localhost", "127.0.0.1") else host
    return f"http://{shown}:{port}/dags/{dag_id}"


def check_port_free(host: str, port: int) -> None:
    """Fail before any set-up when another process (an Airflow already running?) has the port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"Port {port} on {host} is not free ({exc.strerror}): is another Airflow running? "
                f"Stop it, or choose another port: bash scripts/demo.sh --ui --port {port + 1}"
            ) from None


def ui_env(env: dict[str, str], host: str, port: int) -> dict[str, str]:
    """The demo's environment plus what standalone's components need to find each other."""
    bin_dir = str(Path(sys.executable).parent)  # standalone starts its components as `airflow ...`
    return {
        **env,
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        # the task processes report to the API server; the default assumes port 8080
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{_client_host(host)}:{port}/execution/",
    }


def _request(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=15) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _reset_sigint() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A shell that starts a job in the background sets SIGINT to "ignore", which the child
    # inherits; standalone needs it to shut down cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the wait like Ctrl-C does."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _probe(api: str, env: dict[str, str], dag_ids: list[str]) -> tuple[bool, str | None, str]:
    """(ready, the login password, what is still awaited). Ready: the API answers, the
    scheduler and the DAG processor are healthy, the login works and the DAGs are parsed and
    unpaused (a paused one is unpaused here and checked on the next round)."""
    try:
        status, health = _request("GET", f"{api}/api/v2/monitor/health")
    except (OSError, ValueError):  # not listening yet, or a half-started server
        return False, None, "the API server"
    if status != 200 or not health:
        return False, None, f"the API server (health: HTTP {status})"
    sick = [
        name
        for name in ("metadatabase", "scheduler", "dag_processor")
        if (health.get(name) or {}).get("status") != "healthy"
    ]
    if sick:
        return False, None, " and ".join(sick).replace("_", " ")
    user, password, token = login_user(env), None, None
    if user is not None:
        try:
            password = json.loads(password_file(env).read_text())[user]
        except (OSError, ValueError, KeyError):
            return False, None, f"the password of {user} in {password_file(env)}"
        status, answer = _request("POST", f"{api}/auth/token", body={"username": user, "password": password})
        if status not in (200, 201) or not answer:
            return False, None, f"a login as {user} (HTTP {status})"
        token = answer["access_token"]
    missing = []
    for dag_id in dag_ids:
        status, dag = _request("GET", f"{api}/api/v2/dags/{dag_id}", token)
        if status != 200 or not dag:
            missing.append(dag_id)
        elif dag.get("is_paused"):
            _request("PATCH", f"{api}/api/v2/dags/{dag_id}", token, {"is_paused": False})
            missing.append(dag_id)
    if missing:
        return False, None, "the DAG processor to parse " + ", ".join(missing)
    return True, password, ""


def _wait_ready(
    proc: subprocess.Popen[bytes], api: str, env: dict[str, str], dag_ids: list[str], log_path: Path
) -> str | None:
    """Wait until ``_probe`` says ready; the login password (None: no login needed)."""
    started = last_note = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise _Stop(f"airflow standalone exited with code {proc.returncode} while starting")
        try:
            ready, password, waiting_for = _probe(api, env, dag_ids)
        except (OSError, ValueError) as exc:
            ready, password, waiting_for = False, None, f"the API server ({exc})"
        if ready:
            return password
        now = time.monotonic()
        if now - started > READY_TIMEOUT:
            raise _Stop(f"Airflow was not ready after {READY_TIMEOUT:.0f}s (waiting for {waiting_for})")
        if now - last_note >= 30:
            print(f"  ... {now - started:.0f}s, waiting for {waiting_for}", flush=True)
            last_note = now
        time.sleep(1)


def _group_alive(group: int) -> bool:
    """Whether a live (not zombie) process is left in the process group."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    proc_fs = Path("/proc")
    if not proc_fs.is_dir():
        return True
    for stat in proc_fs.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except (OSError, IndexError):
            continue
        if fields[2] == str(group) and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """standalone's own shutdown first (SIGINT), then whatever is left in its process group:
    SIGTERM, then SIGKILL."""
    group = proc.pid  # start_new_session: the group id is its pid
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(
                    f"airflow standalone did not stop within {STOP_TIMEOUT:.0f}s; terminating it", flush=True
                )
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            if not _group_alive(group):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            deadline = time.monotonic() + grace
            while _group_alive(group) and time.monotonic() < deadline:
                proc.poll()  # reap standalone itself
                time.sleep(0.2)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def serve(env: dict[str, str], *, host: str, port: int, dag_ids: list[str]) -> int:
    """Start ``airflow standalone`` with ``env``, print the URL and login, wait for Ctrl-C."""
    env = ui_env(env, host, port)
    home = Path(env["AIRFLOW_HOME"])
    log_path = home / "standalone.log"
    api = f"http://{_client_host(host)}:{port}"
    airflow = str(Path(sys.executable).with_name("airflow"))
    print(
        "Starting Airflow (airflow standalone: API server and UI, scheduler, DAG processor, "
        f"triggerer); its log: {_shown(log_path)}",
        flush=True,
    )
    with _stop_on_signals(), log_path.open("ab") as log:
        proc = subprocess.Popen(
            [airflow, "standalone"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it and all it started
            preexec_fn=_reset_sigint,
        )
        try:
            password = _wait_ready(proc, api, env, dag_ids, log_path)
            user = login_user(env)
            print()
            print(f"Airflow is up with the demo pipeline (pid {proc.pid}). Open it in a browser:")
            print(f"  {browser_url(host, port, dag_ids[0])}")
            if user is None:
                print("  no login: simple_auth_manager_all_admins is on")
            else:
                print(f"  login: {user} / {password}")
                print(f"  (Airflow generated the password into {_shown(password_file(env))})")
            print(
                f"  {', '.join(dag_ids)}: unpaused, scheduled never; the Trigger button runs one. "
                "The connections dpone_demo_shop and dpone_demo_dwh come from AIRFLOW_CONN_* variables."
            )
            print("Ctrl-C stops Airflow.", flush=True)
            code = proc.wait()
            print(f"airflow standalone exited by itself (code {code}); the end of {_shown(log_path)}:")
            print(_log_tail(log_path))
            return 1
        except KeyboardInterrupt:
            print("\nStopping Airflow ...", flush=True)
            _stop(proc)
            print("Airflow stopped.", flush=True)
            return 0
        except _Stop as exc:
            print(f"{exc}; the end of {_shown(log_path)}:\n{_log_tail(log_path)}", flush=True)
            _stop(proc)
            return 1
        finally:
            if proc.poll() is None:
                _stop(proc)
