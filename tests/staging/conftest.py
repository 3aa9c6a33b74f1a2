"""Object stores for the staging tests, each a real local server started by the project's own code
(demo/object_servers.py) once per session: moto's S3, the GCS emulator and Azurite. A test asks
for a fresh directory in one (``s3_directory``, ``gcs_directory``, ``azure_directory``): a new
bucket or container, and the official provider's connection to it in ``AIRFLOW_CONN_*``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from airflow_provider_dpone.demo import object_servers
from tests.staging.store_contract import Directory

S3_KEY, S3_SECRET = "AKIDPONETEST", "dpone-s3-secret"
AZURE_ACCOUNT, AZURE_KEY = "dponestaging", object_servers.new_azurite_key()


def _name() -> str:
    return f"dpone-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with object_servers.moto_s3() as url:
        yield url


@pytest.fixture
def s3_directory(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Directory:
    import boto3

    extra = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    conn = {"conn_type": "aws", "login": S3_KEY, "password": S3_SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_S3", json.dumps(conn))
    bucket = _name()
    boto3.client("s3", aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, **extra).create_bucket(
        Bucket=bucket
    )
    return Directory(f"s3://{bucket}/exports", "staging_s3", bucket, S3_SECRET)


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    with object_servers.gcs_emulator() as url:
        yield url


@pytest.fixture
def gcs_directory(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Directory:
    """The emulator has no credentials: the google_cloud_platform connection is anonymous and
    google-cloud-storage finds the emulator through STORAGE_EMULATOR_HOST."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "dpone-test"}}
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_GCS", json.dumps(conn))
    bucket = _name()
    storage.Client(project="dpone-test", credentials=AnonymousCredentials()).create_bucket(bucket)
    return Directory(f"gs://{bucket}/exports", "staging_gcs", bucket)


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    try:
        object_servers.azurite_script()
    except object_servers.Unavailable as exc:
        pytest.skip(f"Azure staging tests: {exc}")
    with object_servers.azurite(AZURE_ACCOUNT, AZURE_KEY) as connection_string:
        yield connection_string


@pytest.fixture
def azure_directory(azurite_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> Directory:
    from azure.storage.blob import BlobServiceClient

    conn = {"conn_type": "wasb", "extra": {"connection_string": azurite_connection_string}}
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_AZURE", json.dumps(conn))
    container = _name()
    BlobServiceClient.from_connection_string(azurite_connection_string).create_container(container)
    uri = f"wasbs://{container}@{AZURE_ACCOUNT}.blob.core.windows.net/exports"
    return Directory(uri, "staging_azure", container, AZURE_KEY)
