"""What the browser tests of the Airflow UI share: finding chromium and playwright (skipping,
and saying why, without them), a free port, JSON from the REST API, the screenshot folder, and
stopping an Airflow process group (its workers outlive a plain TERM)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Requests to the local Airflow never go through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def skip(reason: str) -> None:
    print(f"SKIPPED: {reason}", file=sys.stderr)
    pytest.skip(reason)


def chromium_path() -> str:
    """Debian's chromium (``apt-get install chromium``), or ``DPONE_CHROMIUM``; skips without."""
    for candidate in (os.environ.get("DPONE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    skip("no chromium: apt-get install chromium (or set DPONE_CHROMIUM to its path)")
    raise AssertionError  # unreachable: skip raises


def require_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip("playwright is not installed: pip install 'airflow-provider-dpone[browser]'")


@contextlib.contextmanager
def launch_browser() -> Iterator[Any]:
    """Headless chromium driven by playwright (never ``playwright install``: the system browser)."""
    require_playwright()
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10) -> Any:
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def send_json(url: str, body: Any, method: str = "POST", timeout: float = 10) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``DPONE_UI_SCREENSHOTS`` when set, else a pytest temporary directory."""
    where = os.environ.get("DPONE_UI_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp(name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_exe() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def stop_process_group(process: subprocess.Popen, grace: float = 20) -> None:
    """TERM the process group ``process`` leads (started with ``start_new_session=True``), then
    KILL it after ``grace`` seconds; the group goes even when its leader has already exited."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return  # the whole group is gone
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):  # the scheduler's workers outlive a TERM
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
