"""The live BigQuery profile: a real project named by ``DPONE_BIGQUERY_PROJECT``, credentials from
``DPONE_BIGQUERY_KEYFILE`` (a service account's JSON key file) or the machine's application
default credentials, and a scratch dataset per test, dropped afterwards. The tests that use it
are marked ``integration_live`` and skip, saying so, when the project is not set."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

CONN_ID = "bq_live"


@contextmanager
def live_dataset(location: str = "US") -> Iterator[str]:
    """A new dataset in the live project, with the ``bq_live`` connection set to reach it."""
    from google.cloud import bigquery

    project = os.environ["DPONE_BIGQUERY_PROJECT"]
    extra: dict[str, object] = {"project": project, "location": location}
    if keyfile := os.environ.get("DPONE_BIGQUERY_KEYFILE"):
        extra["key_path"] = keyfile
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "google_cloud_platform", "extra": extra}
    )
    client = (
        bigquery.Client.from_service_account_json(keyfile, project=project)
        if keyfile
        else bigquery.Client(project=project)
    )
    name = f"dpone_live_{uuid.uuid4().hex[:8]}"
    client.create_dataset(bigquery.Dataset(f"{project}.{name}"), exists_ok=False)
    try:
        yield name
    finally:
        client.delete_dataset(f"{project}.{name}", delete_contents=True, not_found_ok=True)
