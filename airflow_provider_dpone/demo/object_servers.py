"""Local object-storage servers for the tests and benchmarks, each started by the project's own
code on a free port, waited for, and stopped when its block ends:

- ``moto_s3``: moto's S3 server (``moto_server``, the ``dev`` extra);
- ``gcs_emulator``: ``gcp-storage-emulator`` (the ``dev`` extra), in memory;
- ``azurite``: Azurite's Blob service (npm; ``scripts/azurite.sh`` installs it into ``.azurite/``,
  or ``DPONE_AZURITE_DIR``), in memory.

A server that cannot run here raises ``Unavailable`` with what to install. ``free_port``,
``serve`` (run, wait until ready, stop the process group) and ``http_ready`` serve the other
starters too (``bigquery_server``).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

HOST = "127.0.0.1"
AZURITE_ACCOUNT = "devstoreaccount1"  # Azurite's default account and its published development key
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Unavailable(RuntimeError):
    """The server cannot be started here; the message says what is missing."""


def free_port() -> int:
    """A TCP port on ``HOST`` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_ready(url: str) -> Callable[[], bool]:
    """A readiness probe for ``serve``: true once a GET of ``url`` answers 2xx (no proxy)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def probe() -> bool:
        try:
            with opener.open(url, timeout=2) as response:
                return 200 <= int(response.status) < 300
        except OSError:  # refused, reset, or an HTTP error status
            return False

    return probe


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def stop_group(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """TERM the process group ``process`` leads, KILL what is left after ``grace`` seconds."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    with suppress(ProcessLookupError):  # the leader's children, or a leader that ignored TERM
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def serve(
    command: list[str],
    port: int,
    env: Mapping[str, str | None] | None = None,
    ready: Callable[[], bool] | None = None,
    timeout: float = 30,
) -> Iterator[None]:
    """Run ``command`` in its own process group until the block ends, once it accepts connections
    on ``port`` and ``ready()`` (when given) is true. ``env`` adds to the environment; a ``None``
    value removes that variable. The group is stopped on exit (``stop_group``)."""
    environ = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in environ.items() if v is not None},
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (_accepts(port) and (ready is None or ready())):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"{command[0]} did not start on port {port}:\n{output}")
                time.sleep(0.1)
            yield
        finally:
            stop_group(process)


def venv_tool(name: str) -> str:
    """A console script installed beside this Python (``.venv/bin``)."""
    return str(Path(sys.executable).with_name(name))


@contextmanager
def moto_s3() -> Iterator[str]:
    """The endpoint URL of a running moto S3 server (an ``aws`` connection's ``endpoint_url``)."""
    port = free_port()
    with serve([venv_tool("moto_server"), "-H", HOST, "-p", str(port)], port):
        yield f"http://{HOST}:{port}"


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """The URL of a running GCS emulator: set ``STORAGE_EMULATOR_HOST`` to it, and give the
    ``google_cloud_platform`` connection ``{"is_anonymous": true}``."""
    port = free_port()
    command = [venv_tool("gcp-storage-emulator"), "start", f"--host={HOST}", f"--port={port}", "--in-memory"]
    with serve(command, port):
        yield f"http://{HOST}:{port}"


def azurite_script(directory: str | Path | None = None) -> Path:
    """Azurite's Blob service entry point, installed by ``scripts/azurite.sh``."""
    root = Path(directory or os.environ.get("DPONE_AZURITE_DIR") or Path(__file__).parents[2] / ".azurite")
    script = root / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if shutil.which("node") is None:
        raise Unavailable("Azurite needs Node.js: no `node` on PATH (Debian: apt-get install nodejs npm)")
    if not script.is_file():
        raise Unavailable(f"Azurite is not installed in {root}: run scripts/azurite.sh (needs npm)")
    return script


@contextmanager
def azurite(account: str = AZURITE_ACCOUNT, key: str = AZURITE_KEY) -> Iterator[str]:
    """A connection string (a ``wasb`` connection's ``connection_string`` extra) to a running
    Azurite Blob service holding ``account`` (its ``key``: base64, e.g. ``new_azurite_key()``)."""
    script = azurite_script()
    port = free_port()
    command = ["node", str(script), "--blobHost", HOST, "--blobPort", str(port), "--inMemoryPersistence",
               "--skipApiVersionCheck", "--loose", "--disableTelemetry"]  # fmt: skip
    with serve(command, port, {"AZURITE_ACCOUNTS": f"{account}:{key}"}):
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint=http://{HOST}:{port}/{account};"
        )


def new_azurite_key() -> str:
    """A fresh account key for Azurite (the SDK and Azurite take it as base64)."""
    return base64.b64encode(os.urandom(64)).decode()
