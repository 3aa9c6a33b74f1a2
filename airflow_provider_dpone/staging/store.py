"""Where staged files live: a directory URI and four operations on the files under it. Local
disk (``file://``) is here, S3 in ``staging.s3``; GCS and Azure Blob come on the official
providers' hooks too (their connections, never new ones)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from ..contracts.errors import BadInputError

CHUNK = 1 << 20


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
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise BadInputError(f"staging uri {uri!r}: a local directory is file:///absolute/path")
        self.uri = uri.rstrip("/")
        self.root = Path(unquote(parsed.path))

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


def store_for(uri: str, conn_id: str | None = None) -> ObjectStore:
    """The store of a staging directory URI; ``conn_id`` is the official provider's connection
    (``aws`` for s3://), its default when None."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "file":
        return LocalStore(uri)
    if scheme == "s3":
        from .s3 import S3Store

        return S3Store(uri, conn_id or "aws_default")
    raise BadInputError(
        f"staging uri {uri!r}: file:// and s3:// are implemented; gs:// and abfs:// come with the "
        "official google and microsoft-azure providers' hooks"
    )
