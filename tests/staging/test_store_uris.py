"""Which staging directory URIs are accepted (contracts/staging_uri.py), how each maps to its
store, bucket (or container) and prefix, the same at ``dpone validate`` as at run time; a store
whose official provider is not installed names its extra. No service needed."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, ManifestError, MissingExtraError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.contracts.staging_uri import parse_staging_uri, shown
from airflow_provider_dpone.staging.store import LocalStore, store_for

pytestmark = pytest.mark.unit

ACCEPTED = {  # uri: (store, connection by default, bucket or container, prefix, account)
    "file:///data/staging/": ("LocalStore", None, "", "/data/staging", ""),
    "s3://dwh-staging/dpone/runs/": ("S3Store", "aws_default", "dwh-staging", "dpone/runs", ""),
    "s3://Legacy_Bucket": ("S3Store", "aws_default", "Legacy_Bucket", "", ""),
    "gs://dwh-staging/dpone": ("GCSStore", "google_cloud_default", "dwh-staging", "dpone", ""),
    "wasb://raw@acct1.blob.core.windows.net/dpone/x": ("AzureBlobStore", "wasb_default", "raw", "dpone/x", "acct1"),
    "wasbs://raw@acct1.blob.core.windows.net/": ("AzureBlobStore", "wasb_default", "raw", "", "acct1"),
    "abfs://lake-01@acct1.dfs.core.windows.net/dpone": ("AzureBlobStore", "wasb_default", "lake-01", "dpone", "acct1"),
    "abfss://lake-01@acct1.dfs.core.chinacloudapi.cn/a/b/": ("AzureBlobStore", "wasb_default", "lake-01", "a/b", "acct1"),
}  # fmt: skip
REFUSED = {  # uri: the form the message gives
    "gs:///prefix": "gs://bucket/prefix",
    "gs://user@bucket/x": "gs://bucket/prefix",
    "s3://bucket/x?versionId=1": "s3://bucket/prefix",
    "file://host/data": "file:///absolute/path",
    "wasb://acct1.blob.core.windows.net/x": "wasb://container@account.blob.core.windows.net/prefix",
    "wasbs://raw@acct1.dfs.core.windows.net/x": "wasbs://container@account.blob.core.windows.net/prefix",
    "abfss://raw@acct1.blob.core.windows.net/x": "abfss://container@account.dfs.core.windows.net/prefix",
    "abfs://Raw@acct1.dfs.core.windows.net/x": "abfs://container@account.dfs.core.windows.net/prefix",
    "wasb://raw@acct1.blob.core.windows.net:443/x": "wasb://container@account.blob.core.windows.net/prefix",
}


def test_each_accepted_uri_maps_to_its_store_bucket_and_prefix() -> None:
    for uri, (kind, conn_id, bucket, prefix, account) in ACCEPTED.items():
        store: Any = store_for(uri)
        assert type(store).__name__ == kind and store.uri == uri.rstrip("/")
        if isinstance(store, LocalStore):
            assert str(store.root) == prefix
            continue
        assert (store.conn_id, store.bucket, store.prefix, store.account) == (
            conn_id,
            bucket,
            prefix,
            account,
        )
        assert store_for(uri, "mine").conn_id == "mine"


def test_a_refused_uri_names_the_form_at_validate_and_at_run_time() -> None:
    for uri, form in {**REFUSED, "ftp://host/x": "file:///absolute/path, s3://bucket/prefix"}.items():
        message = f"staging uri '{re.escape(shown(uri))}': .*{re.escape(form)}"  # credentials never quoted
        with pytest.raises(BadInputError, match=message):
            store_for(uri)
        with pytest.raises(ManifestError, match=message):
            staged(uri)
    for uri in ACCEPTED:
        assert staged(uri).loads[0].sink.staging.files.uri == uri.rstrip("/")


def staged(uri: str) -> Any:
    sink = {"connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "full_refresh",
            "staging": {"files": {"uri": uri}}}  # fmt: skip
    load = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": sink,
    }
    return parse_manifest({"pipeline": "p", "loads": [load]})


@pytest.mark.parametrize(
    ("uri", "module", "extra"),
    [
        ("s3://bucket/x", "airflow.providers.amazon.aws.hooks.s3", "s3"),
        ("gs://bucket/x", "airflow.providers.google.cloud.hooks.gcs", "gcs"),
        ("abfss://raw@acct1.dfs.core.windows.net/x", "airflow.providers.microsoft.azure.hooks.wasb", "azure"),
    ],
)
def test_a_missing_provider_names_its_extra(
    uri: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"'{module}' .*airflow-provider-dpone\[{extra}\]"):
        store_for(uri).names()


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIADPONE:s3cret-key@bucket/p",
        "wasbs://c@acct.blob.core.windows.net/p?sv=2024&sig=s3cret-key",
        "gs://bucket/p?token=s3cret-key",
        "ftp://user:s3cret-key@host/x",
    ],
)
def test_a_refused_uri_is_quoted_without_its_credentials(uri: str) -> None:
    with pytest.raises(BadInputError) as refused:
        parse_staging_uri(uri)
    assert "s3cret-key" not in str(refused.value) and "staging uri" in str(refused.value)
