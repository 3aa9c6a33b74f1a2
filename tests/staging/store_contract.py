"""The contract of a staging store (``staging.store.ObjectStore``), one suite for every store:
a test module subclasses ``StoreContract`` (``RemoteStoreContract`` for a store behind a
connection) and gives the ``directory`` fixture, a fresh ``Directory`` (conftest.py makes them)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, StagingEvidenceError
from airflow_provider_dpone.staging.files import (
    MANIFEST,
    clean_up,
    load_manifest,
    read_parquet,
    stage_parquet,
)
from airflow_provider_dpone.staging.store import PART, ObjectStore, store_for
from tests.staging.test_parquet_staging import SCHEMA, rows


@dataclass(frozen=True)
class Directory:
    """A fresh staging directory: its URI, connection, bucket (or container) and the secret the
    connection carries (never to be seen in a message)."""

    uri: str
    conn_id: str | None = None
    bucket: str = ""
    secret: str = ""

    def store(self, conn_id: str | None = None) -> ObjectStore:
        return store_for(self.uri, conn_id or self.conn_id)


PARTS = ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


def content(store: ObjectStore, name: str) -> bytes | None:
    chunks = store.read(name)
    return None if chunks is None else b"".join(chunks)


class StoreContract:
    @pytest.fixture
    def directory(self) -> Directory:
        raise NotImplementedError

    @pytest.fixture
    def store(self, directory: Directory) -> ObjectStore:
        return directory.store()

    def test_an_export_reads_back_as_its_manifest_vouches(
        self, store: ObjectStore, directory: Directory
    ) -> None:
        manifest = stage_parquet(store, SCHEMA, [rows(1, 120)], rows_per_file=50, window={"mode": "full"})
        assert store.names() == [MANIFEST, *PARTS]
        again = load_manifest(store)
        assert again == manifest and again.uri == directory.uri
        assert [tuple(r.values()) for t in read_parquet(store, again) for r in t.to_pylist()] == rows(1, 120)
        assert clean_up(store, again, succeeded=True) == [MANIFEST, *PARTS] and store.names() == []

    def test_a_changed_or_missing_file_fails_the_read(self, store: ObjectStore) -> None:
        manifest = stage_parquet(store, SCHEMA, [rows(1, 120)], rows_per_file=50)
        store.write(PARTS[1], [b"not the staged bytes"])
        with pytest.raises(
            StagingEvidenceError, match=rf"://.*/{PARTS[1]} differs from the staging manifest"
        ):
            list(read_parquet(store, manifest))
        store.delete(PARTS[1])
        with pytest.raises(
            StagingEvidenceError, match=rf"{PARTS[1]} is listed in the staging manifest but missing"
        ):
            list(read_parquet(store, manifest))
        store.delete(MANIFEST)
        with pytest.raises(StagingEvidenceError, match=r"has no manifest\.json"):
            load_manifest(store)

    def test_files_are_replaced_whole_and_deleted_idempotently(self, store: ObjectStore) -> None:
        store.write("f.bin", [b"old"])
        store.write("f.bin", [b"new ", b"", b"bytes"])
        store.write("empty.bin", [])
        assert content(store, "f.bin") == b"new bytes" and content(store, "empty.bin") == b""
        store.delete("f.bin")
        store.delete("f.bin")  # already gone: nothing happens
        assert store.read("f.bin") is None and store.names() == ["empty.bin"]

    def test_a_large_file_goes_up_and_comes_back_in_bounded_pieces(self, store: ObjectStore) -> None:
        data = os.urandom(2 * PART + 12345)
        store.write("big.bin", [data[: PART // 2], data[PART // 2 :]])  # one chunk larger than a part
        chunks = list(store.read("big.bin") or [])
        assert len(chunks) > 2 and max(map(len, chunks)) <= PART
        assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()

    def test_a_file_replaced_during_a_read_never_mixes_versions(self, store: ObjectStore) -> None:
        old, new = os.urandom(2 * PART), os.urandom(2 * PART)
        store.write("f.bin", [old])
        chunks = store.read("f.bin") or iter([])
        first = next(chunks)
        store.write("f.bin", [new])
        try:
            rest = b"".join(chunks)
        except Exception:
            return  # the read fails (a precondition on the version it began with)
        assert first + rest == old  # or it gives that version whole

    def test_a_failed_write_leaves_the_file_as_it_was(self, store: ObjectStore) -> None:
        store.write("f.bin", [b"before"])

        def failing() -> Iterator[bytes]:
            yield os.urandom(PART + 1)  # past the first part: an upload is under way
            raise OSError("the source broke off")

        for name in ("f.bin", "new.bin"):
            with pytest.raises(OSError, match="broke off"):
                store.write(name, failing())
        assert content(store, "f.bin") == b"before" and store.read("new.bin") is None
        assert store.names() == ["f.bin"]

    def test_names_are_the_directory_s_own_sorted_and_nested(
        self, store: ObjectStore, directory: Directory
    ) -> None:
        sibling = Directory(directory.uri + "-sibling", directory.conn_id).store()
        sibling.write("other.bin", [b"x"])  # a prefix of its name is the directory's: not listed
        for name in ("b.bin", "a/z.bin", "a/c.bin"):
            store.write(name, [name.encode()])
        assert store.names() == ["a/c.bin", "a/z.bin", "b.bin"] and sibling.names() == ["other.bin"]
        assert content(store, "a/z.bin") == b"a/z.bin"
        with pytest.raises(BadInputError, match="leaves"):
            store.write("../escape.bin", [b"x"])


class RemoteStoreContract(StoreContract):
    """A store behind the official provider's connection."""

    def test_a_missing_connection_fails_and_names_it(self, directory: Directory) -> None:
        with pytest.raises(Exception, match="dpone_no_such_conn") as failed:
            directory.store("dpone_no_such_conn").names()
        assert not isinstance(failed.value, StagingEvidenceError)

    def test_a_missing_bucket_fails_without_the_secret(self, directory: Directory) -> None:
        missing = Directory(directory.uri.replace(directory.bucket, "dpone-missing", 1), directory.conn_id)
        store = missing.store()
        attempts = (store.names, lambda: store.write("f.bin", [b"x"]), lambda: store.read("f.bin"))
        for attempt in attempts:  # a read too: a file in a missing bucket is not "just missing"
            with pytest.raises(Exception) as failed:
                attempt()
            assert directory.secret == "" or directory.secret not in f"{failed.value!s} {failed.value!r}"
