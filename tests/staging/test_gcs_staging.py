"""Staged files in Google Cloud Storage through the official google provider's
``google_cloud_platform`` connection and ``GCSHook``, against a real GCS emulator
(gcp-storage-emulator, started here): the store contract (store_contract.py), and a
service-account connection whose key never shows in an error."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dpone.staging.store import ObjectStore
from tests.staging.store_contract import Directory, RemoteStoreContract

pytestmark = pytest.mark.integration


class TestGCSStore(RemoteStoreContract):
    @pytest.fixture
    def directory(self, gcs_directory: Directory) -> Directory:
        return gcs_directory

    @pytest.mark.xfail(
        strict=True,
        reason="gcp-storage-emulator ignores ?generation= and ifGenerationMatch on a download; "
        "GCS answers 404 or 412 to a range of a replaced object",
    )
    def test_a_file_replaced_during_a_read_never_mixes_versions(self, store: ObjectStore) -> None:
        super().test_a_file_replaced_during_a_read_never_mixes_versions(store)


def test_a_service_account_key_never_shows_in_the_error(
    gcs_directory: Directory, gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyfile connection, as in production: the hook signs a token request with the key; the
    token endpoint (the emulator, which has none) refuses it; the error carries no key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    keyfile = {"type": "service_account", "project_id": "dpone-test", "private_key_id": "k1", "private_key": pem,
               "client_email": "dpone@dpone-test.iam.gserviceaccount.com", "client_id": "1",
               "token_uri": f"{gcs_endpoint}/token"}  # fmt: skip
    conn = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(keyfile)}}
    monkeypatch.setenv("AIRFLOW_CONN_STAGING_GCS_SA", json.dumps(conn))
    with pytest.raises(Exception) as failed:
        gcs_directory.store("staging_gcs_sa").names()
    assert type(failed.value).__name__ == "RefreshError"  # the hook signed a token request with the key
    error: BaseException | None = failed.value
    while error is not None:  # the whole chain
        assert pem.splitlines()[1] not in f"{error!s} {error!r} {error.args!r}"
        error = error.__cause__ or error.__context__
