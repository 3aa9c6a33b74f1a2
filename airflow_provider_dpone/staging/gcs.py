"""Staged files in Google Cloud Storage, on the official google provider: its
``google_cloud_platform`` connection and ``GCSHook`` (key file, keyfile JSON, impersonation,
workload identity or ``is_anonymous`` come from there; ``google_cloud_default`` by default).

For a local emulator (``demo.object_servers.gcs_emulator``) set ``STORAGE_EMULATOR_HOST`` to its
URL in the worker's environment and give the connection ``{"is_anonymous": true}``: the hook
has no per-connection endpoint, google-cloud-storage reads that variable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..contracts.errors import BadInputError
from .store import PART, BucketStore, pieces, ranges


class GCSStore(BucketStore):
    """The objects under ``gs://bucket/prefix``. A file goes up as one resumable upload in parts
    of ``PART`` bytes (a multiple of 256 KiB); the object appears whole when the last part lands,
    or not at all (a failed write cancels the upload). A read takes ranges of that one generation
    of the object, so a file replaced meanwhile fails the read instead of mixing versions."""

    hook = ("airflow.providers.google.cloud.hooks.gcs", "GCSHook", "gcs")
    default_conn_id = "google_cloud_default"

    def _connect(self, hook_class: Any, connection: Any) -> Any:
        return hook_class(gcp_conn_id=self.conn_id).get_conn().bucket(self.bucket)

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        blob = self.client.blob(self.key(name), chunk_size=PART)
        with blob.open("wb") as out:  # an exception in the block cancels the upload
            for piece in pieces(chunks, PART):
                out.write(piece)

    def read(self, name: str) -> Iterator[bytes] | None:
        from google.api_core.exceptions import NotFound

        blob = self.client.blob(self.key(name))
        try:
            blob.reload()
        except NotFound:
            self._bucket_exists()  # GCS answers a missing bucket with the same 404
            return None

        def fetch(offset: int, length: int) -> bytes:  # the manifest's SHA-256 checks the whole file
            return bytes(
                blob.download_as_bytes(
                    start=offset, end=offset + length - 1, if_generation_match=blob.generation, checksum=None
                )
            )

        return ranges(blob.size, fetch)

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.client.delete_blob(self.key(name))
        except NotFound:
            self._bucket_exists()

    def _bucket_exists(self) -> None:
        """Raise when the bucket itself is missing: a file in it cannot be 'just missing'."""
        if not self.client.exists():
            raise BadInputError(f"staging uri {self.uri}: bucket '{self.bucket}' does not exist")

    def names(self) -> list[str]:
        return self.relative(blob.name for blob in self.client.list_blobs(prefix=self.start or None))
