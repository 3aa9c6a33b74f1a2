"""BigQuery emulator fixtures (demo/bigquery_server.py): one ``bqemulator`` with an on-disk GCS
emulator per session, and per test the environment clients need, an anonymous
``google_cloud_platform`` connection ``bq`` (``AIRFLOW_CONN_BQ``) and a fresh dataset name.

A test module takes them with ``pytest_plugins = ("tests.bigquery_fixtures",)``;
without ``.bqemu/`` (``scripts/bqemulator.sh``) the tests skip, saying why."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.operators.ui_helpers import skip

if TYPE_CHECKING:
    from airflow_provider_dpone.demo.bigquery_server import BigQueryEmulator

CONN_ID = "bq"


@dataclass(frozen=True)
class BigQueryTarget:
    """One test's view of the emulator: the running pair, the connection id and a dataset name
    nobody has used (not created: the test creates it, e.g. ``client.create_dataset``)."""

    emulator: BigQueryEmulator
    conn_id: str
    dataset: str

    @property
    def project(self) -> str:
        return self.emulator.project


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[BigQueryEmulator]:
    """The session's emulator pair; skips (printing why) when ``.bqemu/`` is not installed."""
    from airflow_provider_dpone.demo import bigquery_server
    from airflow_provider_dpone.demo.object_servers import Unavailable

    try:
        bigquery_server.bqemulator_executable()
    except Unavailable as exc:
        skip(f"BigQuery emulator tests: {exc}")
    with bigquery_server.bigquery_emulator() as emulator:
        yield emulator


@pytest.fixture
def bigquery_target(bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch) -> BigQueryTarget:
    """``BIGQUERY_EMULATOR_HOST``, ``STORAGE_EMULATOR_HOST`` and ``AIRFLOW_CONN_BQ`` set for this
    test, and a fresh dataset name."""
    for name, value in bigquery_emulator.env.items():
        monkeypatch.setenv(name, value)
    extra = {"is_anonymous": True, "project": bigquery_emulator.project}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    return BigQueryTarget(bigquery_emulator, CONN_ID, f"dpone_t_{uuid.uuid4().hex[:8]}")


class BigQueryEnv:
    """The emulator's datasets as a sink test sees them: ``query`` runs standard SQL."""

    DATASETS = ("raw", "dpone_staging", "dpone", "stg", "meta")

    def __init__(self, target: BigQueryTarget) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        self.target = target
        self.client = bigquery.Client(project=target.project, credentials=AnonymousCredentials())
        self._retry = bigquery.DEFAULT_RETRY.with_timeout(20)

    def query(self, statement: str) -> list[tuple]:
        job = self.client.query(statement, retry=self._retry, job_retry=None)
        return [tuple(r.values()) for r in job.result(timeout=60)]

    def empty(self) -> None:
        """Drop the datasets the tests write: every run starts as in a fresh project."""
        for name in self.DATASETS:
            self.client.delete_dataset(name, delete_contents=True, not_found_ok=True, retry=self._retry)


@pytest.fixture
def clean_bq(bigquery_target: BigQueryTarget) -> BigQueryEnv:
    """The emulator with the sink tests' datasets dropped, and the ``bq`` connection set."""
    env = BigQueryEnv(bigquery_target)
    env.empty()
    return env
