"""Staged files in S3 (or any S3-compatible store), on the official amazon provider: its ``aws``
connection and ``S3Hook`` (credentials, role assumption, endpoint and region come from there)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from .store import CHUNK, BucketStore


class S3Store(BucketStore):
    """The objects under ``s3://bucket/prefix``. A PUT is atomic: a reader sees a whole object
    or none; a large file goes up as a multipart upload, read from the chunks as it goes (memory:
    the transfer's parts, not the file)."""

    hook = ("airflow.providers.amazon.aws.hooks.s3", "S3Hook", "s3")
    default_conn_id = "aws_default"

    def _connect(self, hook_class: Any, connection: Any) -> Any:
        return hook_class(aws_conn_id=self.conn_id).get_conn()

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        from boto3.s3.transfer import TransferConfig

        # a stream of unknown size: parts of 64 MiB (S3 takes 10,000 parts: 640 GiB a file, where
        # boto3's 8 MiB default stops at 78 GiB), four in flight (256 MiB of memory at most)
        config = TransferConfig(multipart_chunksize=PART_BYTES, max_concurrency=4)
        self.client.upload_fileobj(
            io.BufferedReader(_ChunkReader(chunks), CHUNK), self.bucket, self.key(name), Config=config
        )

    def read(self, name: str) -> Iterator[bytes] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
        except self.client.exceptions.NoSuchKey:
            return None
        return iter(body.iter_chunks(CHUNK))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.start)
        return self.relative(item["Key"] for page in pages for item in page.get("Contents", []))


PART_BYTES = 64 << 20


class _ChunkReader(io.RawIOBase):
    """Chunks of bytes as a forward-only file (what boto3's upload reads from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks, self._rest = iter(chunks), memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n
