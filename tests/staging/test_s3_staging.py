"""Staged files in S3 through the official amazon provider's ``aws`` connection, against a real
S3 server (moto's): the store contract (store_contract.py), and the keys come from the connection
only."""

from __future__ import annotations

import os

import pytest

from tests.staging.store_contract import Directory, RemoteStoreContract

pytestmark = pytest.mark.integration


class TestS3Store(RemoteStoreContract):
    @pytest.fixture
    def directory(self, s3_directory: Directory) -> Directory:
        return s3_directory


def test_the_keys_come_from_the_aws_connection_only(s3_directory: Directory) -> None:
    store = s3_directory.store()
    store.write("f.bin", [b"x"])
    assert store.names() == ["f.bin"] and os.environ.get("AWS_ACCESS_KEY_ID") is None
