"""Staged files in Azure Blob Storage, on the official microsoft-azure provider: its ``wasb``
connection and ``WasbHook`` (connection string, account key, SAS token, service principal or
managed identity come from there; ``wasb_default`` by default).

``wasb[s]://container@account.blob.<suffix>/prefix`` and ``abfs[s]://container@account.dfs.<suffix>/prefix``
both name a container (an ADLS Gen2 file system is one) and a prefix in a storage account; both
go through the Blob API of the account the connection reaches, which must be the URI's account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..contracts.errors import BadInputError
from .store import CHUNK, BucketStore, pieces, ranges

_SECRET_PARTS = ("accountkey", "sharedaccesssignature")  # of a connection string


class AzureBlobStore(BucketStore):
    """The blobs under a container's prefix. A file goes up as staged blocks (the client's
    ``max_block_size``, 4 MiB unless the connection's extra says otherwise) committed at the end
    in one block list: the blob appears whole or not at all. A read takes ranges of the blob as
    its ETag was, so a file replaced meanwhile fails the read instead of mixing versions."""

    hook = ("airflow.providers.microsoft.azure.hooks.wasb", "WasbHook", "azure")
    default_conn_id = "wasb_default"

    def _connect(self, hook_class: Any, connection: Any) -> Any:
        from ..hooks.connection import known_credentials

        extra = connection.extra_dejson or {}
        conn_str = str(extra.get("connection_string") or extra.get("extra__wasb__connection_string") or "")
        for part in conn_str.split(";"):  # the key inside it is a secret of its own
            key, _, value = part.partition("=")
            if key.strip().lower() in _SECRET_PARTS:
                known_credentials().add_secret(value)
        service = hook_class(wasb_conn_id=self.conn_id).get_conn()
        if service.account_name and service.account_name != self.account:
            raise BadInputError(
                f"staging uri {self.uri!r} is in storage account {self.account!r}, but connection "
                f"{self.conn_id!r} reaches account {service.account_name!r}"
            )
        return service.get_container_client(self.bucket)

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        self.client.upload_blob(self.key(name), pieces(chunks, CHUNK), overwrite=True, max_concurrency=1)

    def read(self, name: str) -> Iterator[bytes] | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.client.get_blob_client(self.key(name))
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) != "BlobNotFound":  # a missing container is an error
                raise
            return None

        def fetch(offset: int, length: int) -> bytes:
            return bytes(
                blob.download_blob(
                    offset=offset,
                    length=length,
                    etag=properties.etag,
                    match_condition=MatchConditions.IfNotModified,
                    max_concurrency=1,
                ).readall()
            )

        return ranges(properties.size, fetch)

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.delete_blob(self.key(name), delete_snapshots="include")
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) != "BlobNotFound":
                raise

    def names(self) -> list[str]:
        blobs = self.client.list_blobs(name_starts_with=self.start or None, include=["metadata"])
        # a hierarchical-namespace account lists its directories as blobs marked hdi_isfolder
        return self.relative(b.name for b in blobs if (b.metadata or {}).get("hdi_isfolder") != "true")
