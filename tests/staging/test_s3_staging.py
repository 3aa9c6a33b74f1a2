"""Staged files in S3 through the official amazon provider's ``aws`` connection, against a real
S3 server (moto's, started here): the same contract as on local disk, evidence checked."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from airflow_provider_dpone.contracts.errors import StagingEvidenceError
from airflow_provider_dpone.demo.s3_server import moto_s3
from airflow_provider_dpone.staging.files import (
    MANIFEST,
    clean_up,
    load_manifest,
    read_parquet,
    stage_parquet,
)
from airflow_provider_dpone.staging.store import store_for
from tests.staging.test_parquet_staging import SCHEMA, rows

pytestmark = pytest.mark.integration
KEY, SECRET = "AKIDPONETEST", "dpone-s3-secret"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    extra = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_STAGING_S3",
        json.dumps({"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra}),
    )
    name = f"dpone-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


def test_an_export_staged_in_s3_reads_back_as_the_manifest_vouches(bucket: str) -> None:
    store = store_for(f"s3://{bucket}/shop/orders/run-1", "staging_s3")
    manifest = stage_parquet(store, SCHEMA, [rows(1, 120)], rows_per_file=50, window={"mode": "full"})
    assert store.names() == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    again = load_manifest(store)
    assert again == manifest and again.uri == f"s3://{bucket}/shop/orders/run-1"
    assert [tuple(r.values()) for t in read_parquet(store, again) for r in t.to_pylist()] == rows(1, 120)
    store.write("part-00001.parquet", [b"not the staged bytes"])
    with pytest.raises(
        StagingEvidenceError, match=r"s3://.*/part-00001.parquet differs from the staging manifest"
    ):
        list(read_parquet(store, again))
    store.delete("part-00002.parquet")
    assert store.read("part-00002.parquet") is None
    assert clean_up(store, again, succeeded=True) and store.names() == []
    assert os.environ.get("AWS_ACCESS_KEY_ID") is None  # the key came from the aws connection only
