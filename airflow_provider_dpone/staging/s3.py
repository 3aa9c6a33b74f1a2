"""Staged files in S3 (or any S3-compatible store), on the official amazon provider: its ``aws``
connection and ``S3Hook`` (credentials, role assumption, endpoint and region come from there)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from ..contracts.errors import BadInputError, MissingExtraError
from .store import CHUNK


class S3Store:
    """The objects under ``s3://bucket/prefix``. A PUT is atomic: a reader sees a whole object
    or none; large files go up as a multipart upload."""

    def __init__(self, uri: str, conn_id: str = "aws_default") -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise BadInputError(f"staging uri {uri!r}: an S3 directory is s3://bucket/prefix")
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.conn_id = conn_id
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            except ImportError as exc:
                raise MissingExtraError(exc.name or "airflow.providers.amazon", "s3") from None
            from ..hooks.connection import resolve_connection

            resolve_connection(self.conn_id)  # it must exist: never fall back to the environment's keys
            self._client = S3Hook(aws_conn_id=self.conn_id).get_conn()
        return self._client

    def _key(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise BadInputError(f"staged file name {name!r} leaves {self.uri}")
        return f"{self.prefix}/{name}" if self.prefix else name

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        self.client.upload_fileobj(io.BytesIO(b"".join(chunks)), self.bucket, self._key(name))

    def read(self, name: str) -> Iterator[bytes] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except self.client.exceptions.NoSuchKey:
            return None
        return iter(body.iter_chunks(CHUNK))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def names(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            found += [item["Key"][len(start) :] for item in page.get("Contents", [])]
        return sorted(found)
