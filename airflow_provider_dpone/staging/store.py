"""Where staged files live: a directory URI (``contracts.staging_uri``) and four operations on the
files under it. Local disk (``file://``) is here; S3, GCS and Azure Blob (``staging.s3``,
``staging.gcs``, ``staging.azure``) share ``BucketStore`` and take their credentials from the
official providers' hooks and connections, never new ones."""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..contracts.errors import BadInputError, MissingExtraError
from ..contracts.staging_uri import AZURE_SCHEMES, parse_staging_uri

CHUNK = 1 << 20
PART = 8 << 20  # bytes per ranged read (and per GCS upload request) of an object store


class ObjectStore(Protocol):
    """The files under one directory URI."""

    uri: str

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        """Store ``name`` whole: a reader never sees it half-written."""

    def read(self, name: str) -> Iterator[bytes] | None:
        """The file's bytes in chunks; None when it does not exist."""

    def delete(self, name: str) -> None:
        """Remove ``name`` (nothing when it is already gone)."""

    def names(self) -> list[str]:
        """Every file under the directory, relative to it, sorted."""


class LocalStore:
    """A directory on local disk (``file:///path``). Only for one machine: files that cross a
    task boundary on several workers belong in object storage."""

    def __init__(self, uri: str) -> None:
        location = parse_staging_uri(uri.rstrip("/"))
        if location.scheme != "file":
            raise BadInputError(f"staging uri {uri!r}: a local directory is file:///absolute/path")
        self.uri = uri.rstrip("/")
        self.root = Path(location.prefix)

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents:
            raise BadInputError(f"staged file name {name!r} leaves {self.uri}")
        return path

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)  # atomic: the name appears complete or not at all
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, name: str) -> Iterator[bytes] | None:
        path = self._path(name)
        if not path.is_file():
            return None

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return chunks()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class BucketStore:
    """What the object stores share: the bucket (or container) and key prefix of their URI, a file
    name's key under the prefix, and a client built once from the official provider's hook
    (``hook``: module, class, dpone extra) after the connection is found: a missing connection
    fails, never falls back to the environment's credentials."""

    hook: ClassVar[tuple[str, str, str]]
    default_conn_id: ClassVar[str]

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        location = parse_staging_uri(uri.rstrip("/"))
        self.uri, self.conn_id = uri.rstrip("/"), conn_id or self.default_conn_id
        self.bucket, self.prefix, self.account = location.bucket, location.prefix, location.account
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The provider's client (of the bucket or container, as the store needs it)."""
        if self._client is None:
            module, name, extra = self.hook
            try:
                hook_class = getattr(importlib.import_module(module), name)
            except ImportError as exc:
                raise MissingExtraError(exc.name or module, extra) from None
            from ..hooks.connection import resolve_connection

            self._client = self._connect(hook_class, resolve_connection(self.conn_id))
        return self._client

    def _connect(self, hook_class: Any, connection: Any) -> Any:
        raise NotImplementedError

    @property
    def start(self) -> str:
        """What every key under the directory starts with."""
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, name: str) -> str:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise BadInputError(f"staged file name {name!r} leaves {self.uri}")
        return self.start + name

    def relative(self, keys: Iterable[str]) -> list[str]:
        """Listed keys as sorted file names; folder markers (``dir/``) are not files."""
        return sorted(key[len(self.start) :] for key in keys if not key.endswith("/"))


def pieces(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` cut into pieces of at most ``size`` bytes: an upload buffers a piece, never a
    whole large chunk (the caller's file) once more."""
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])


def ranges(size: int, fetch: Callable[[int, int], bytes]) -> Iterator[bytes]:
    """An object of ``size`` bytes read as ``fetch(offset, length)`` ranges of at most ``PART``
    bytes: memory is one range, whatever the file's size."""
    for offset in range(0, size, PART):
        yield fetch(offset, min(PART, size - offset))


_STORES = {"s3": ("s3", "S3Store"), "gs": ("gcs", "GCSStore")} | dict.fromkeys(
    AZURE_SCHEMES, ("azure", "AzureBlobStore")
)


def store_for(uri: str, conn_id: str | None = None) -> ObjectStore:
    """The store of a staging directory URI (its forms: ``contracts.staging_uri``); ``conn_id``
    is the official provider's connection (``aws`` for s3://, ``google_cloud_platform`` for gs://,
    ``wasb`` for wasb(s):// and abfs(s)://), its default when None."""
    scheme = parse_staging_uri(uri.rstrip("/")).scheme
    if scheme == "file":
        return LocalStore(uri)
    module, name = _STORES[scheme]
    store: ObjectStore = getattr(importlib.import_module(f"{__package__}.{module}"), name)(uri, conn_id)
    return store
