"""Staged files in Azure Blob Storage through the official microsoft-azure provider's ``wasb``
connection and ``WasbHook``, against a real Azurite (npm, installed by scripts/azurite.sh and
started here; the tests skip, saying why, without node or Azurite): the store contract
(store_contract.py), abfs and wasb URIs of one container, the account the connection reaches,
ADLS Gen2 directory markers, and a wrong key that never shows in an error."""

from __future__ import annotations

import json
import os

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError
from airflow_provider_dpone.hooks.connection import known_credentials
from airflow_provider_dpone.staging.store import store_for
from tests.staging.conftest import AZURE_ACCOUNT, AZURE_KEY
from tests.staging.store_contract import Directory, RemoteStoreContract, content

pytestmark = pytest.mark.integration


class TestAzureBlobStore(RemoteStoreContract):
    @pytest.fixture
    def directory(self, azure_directory: Directory) -> Directory:
        return azure_directory


def test_abfs_and_wasb_uris_reach_the_same_blobs(azure_directory: Directory) -> None:
    azure_directory.store().write("f.bin", [b"staged"])
    abfss = azure_directory.uri.replace("wasbs://", "abfss://").replace(".blob.", ".dfs.")
    assert content(store_for(abfss, "staging_azure"), "f.bin") == b"staged"


def test_the_uri_s_account_must_be_the_connection_s(azure_directory: Directory) -> None:
    other = azure_directory.uri.replace(f"@{AZURE_ACCOUNT}.", "@someoneelse.")
    with pytest.raises(
        BadInputError,
        match="is in storage account 'someoneelse', but connection 'staging_azure' reaches account 'dponestaging'",
    ):
        store_for(other, "staging_azure").names()


def test_directory_markers_of_a_hierarchical_namespace_are_not_files(azure_directory: Directory) -> None:
    from azure.storage.blob import BlobServiceClient

    conn = json.loads(os.environ["AIRFLOW_CONN_STAGING_AZURE"])["extra"]["connection_string"]
    container = BlobServiceClient.from_connection_string(conn).get_container_client(azure_directory.bucket)
    # how an ADLS Gen2 account lists a directory through the Blob API
    container.upload_blob("exports/sub", b"", metadata={"hdi_isfolder": "true"})
    azure_directory.store().write("sub/f.bin", [b"x"])
    assert azure_directory.store().names() == ["sub/f.bin"]


def test_a_wrong_key_fails_and_no_key_shows(
    azure_directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_dpone.demo.object_servers import new_azurite_key

    wrong = new_azurite_key()
    conn = json.loads(os.environ["AIRFLOW_CONN_STAGING_AZURE"])
    conn["extra"]["connection_string"] = conn["extra"]["connection_string"].replace(AZURE_KEY, wrong)
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_AZURE_WRONG", json.dumps(conn))
    with pytest.raises(
        Exception, match=r"AuthorizationFailure|AuthenticationFailed|Server failed to authenticate"
    ) as failed:
        azure_directory.store("staging_azure_wrong").names()
    message = f"{failed.value!s} {failed.value!r}"
    assert wrong not in message and AZURE_KEY not in message
    assert wrong not in known_credentials().redact(f"key: {wrong}")  # a log line that quoted it is masked
