"""A local BigQuery for the tests: ``bqemulator`` (BigQuery's REST API over DuckDB) beside a GCS
emulator that keeps its objects on disk, so that a load job's ``gs://bucket/path`` source is the
file the GCS emulator wrote.

``scripts/bqemulator.sh`` installs the emulator into its own virtualenv ``.bqemu/`` (or
``DPONE_BQEMU_DIR``; it pins an sqlglot that ``.venv`` cannot share), with DuckDB's spatial and
avro extensions preinstalled under ``.bqemu/duckdb-home``, which is the emulator's ``HOME`` here:
it would download them otherwise. ``gcp-storage-emulator`` comes from ``.venv`` (the ``dev``
extra). Clients reach the two through ``BIGQUERY_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST``
(``BigQueryEmulator.env``) with anonymous credentials.

What the emulator does and does not do: /work/shared/services.md, the BigQuery row.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_dpone.demo.object_servers import (
    HOST,
    Unavailable,
    free_port,
    http_ready,
    serve,
    venv_tool,
)

PROJECT = "test-proj"
_ROOT = Path(__file__).resolve().parents[2]
_MARKER = ".dpone-bqemu"  # written by scripts/bqemulator.sh once the install is complete
_GCS_DIR = ".cloudstorage"  # where gcp-storage-emulator keeps objects under its STORAGE_BASE


@dataclass(frozen=True)
class BigQueryEmulator:
    """A running emulator pair: the BigQuery REST endpoint, the GCS endpoint sharing ``root``."""

    url: str  # BIGQUERY_EMULATOR_HOST
    storage_url: str  # STORAGE_EMULATOR_HOST
    project: str
    root: Path  # the GCS emulator's STORAGE_BASE: gs://b/p is the file root/.cloudstorage/b/p

    @property
    def env(self) -> dict[str, str]:
        """What google-cloud-bigquery, google-cloud-storage and Airflow's hooks need to find us."""
        return {"BIGQUERY_EMULATOR_HOST": self.url, "STORAGE_EMULATOR_HOST": self.storage_url}


def bqemulator_dir() -> Path:
    """Where ``scripts/bqemulator.sh`` installs: ``DPONE_BQEMU_DIR`` (relative to the project
    root) or ``.bqemu``."""
    return _ROOT / os.environ.get("DPONE_BQEMU_DIR", ".bqemu")


def bqemulator_executable() -> Path:
    """The installed ``bqemulator`` command; ``Unavailable`` (naming the installer) without it."""
    directory = bqemulator_dir()
    executable = directory / "bin" / "bqemulator"
    if not executable.is_file() or not (directory / _MARKER).is_file():
        raise Unavailable(
            f"bqemulator is not installed in {directory}: run scripts/bqemulator.sh (it needs PyPI)"
        )
    return executable


@contextmanager
def bigquery_emulator(project: str = PROJECT, root: str | Path | None = None) -> Iterator[BigQueryEmulator]:
    """Start gcp-storage-emulator on disk (in ``root``, else a temporary directory removed at the
    end) and bqemulator (``project``, ephemeral) reading ``gs://`` sources from it; yield both
    once they answer, stop both when the block ends."""
    executable = bqemulator_executable()
    with ExitStack() as stack:
        if root is None:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="dpone-bqemu-"))
        base = Path(root).resolve()
        (base / _GCS_DIR).mkdir(parents=True, exist_ok=True)

        gcs_port = free_port()
        gcs = [venv_tool("gcp-storage-emulator"), "start", f"--host={HOST}", f"--port={gcs_port}"]
        stack.enter_context(serve(gcs, gcs_port, {"STORAGE_BASE": str(base), "STORAGE_DIR": _GCS_DIR}))

        rest_port, grpc_port = free_port(), free_port()
        url = f"http://{HOST}:{rest_port}"
        bq = [str(executable), "start", "--rest-host", HOST, "--rest-port", str(rest_port),
              "--grpc-host", HOST, "--grpc-port", str(grpc_port), "--project", project, "--ephemeral",
              "--log-level", "warning"]  # fmt: skip
        env: dict[str, str | None] = {
            "HOME": str(bqemulator_dir() / "duckdb-home"),  # the preinstalled DuckDB extensions
            "BQEMU_GCS_LOCAL_ROOT": str(base / _GCS_DIR),
            # .venv's Python settings must not reach .bqemu's interpreter
            "PYTHONPATH": None,
            "PYTHONHOME": None,
            "VIRTUAL_ENV": None,
        }
        stack.enter_context(serve(bq, rest_port, env, ready=http_ready(f"{url}/readyz"), timeout=90))
        yield BigQueryEmulator(url, f"http://{HOST}:{gcs_port}", project, base)
