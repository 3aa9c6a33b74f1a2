"""The staging manifest: one typed record of an export staged as files in object storage (or on
local disk), the evidence a sink checks before it loads anything. Pure: no I/O, no drivers.

A manifest names where the files live (``uri``, a directory URI: ``s3://``, ``gs://``,
``abfs://``, ``wasbs://``, ``file://``), their format, the batch's schema, the source window they
came from, and each file with its size, row count and SHA-256. It serialises to JSON with a
``version``; reading one back validates every field and names the first one that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import BadInputError, StagingEvidenceError
from .staging_uri import SCHEMES
from .table import CanonicalType, Column, TableSchema

VERSION = 1
FORMATS = ("parquet", "csv", "postgres_binary")
Retention = Literal["delete", "keep"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9._=-][A-Za-z0-9._=/-]*$")  # relative, no "..", no scheme


@dataclass(frozen=True)
class StagedFile:
    """One staged file: its name under the manifest's ``uri``, size, rows and SHA-256 (hex)."""

    name: str
    bytes: int
    rows: int
    sha256: str


@dataclass(frozen=True)
class StagingManifest:
    """An export staged as files: what a sink loads, and the evidence it checks first."""

    uri: str
    format: str
    schema: TableSchema
    files: tuple[StagedFile, ...]
    window: Mapping[str, Any] = field(default_factory=dict)  # the source's window (JSON-safe)
    retention: Retention = "delete"  # after a successful load: delete the files, or keep them for replay
    origin: Mapping[str, str] = field(default_factory=dict)  # pipeline, load and run that staged it

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def location(self, staged: StagedFile) -> str:
        """The full URI of one file."""
        return f"{self.uri.rstrip('/')}/{staged.name}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": VERSION,
                "uri": self.uri,
                "format": self.format,
                "retention": self.retention,
                "origin": dict(self.origin),
                "window": dict(self.window),
                "schema": {
                    "columns": [_column_dict(c) for c in self.schema.columns],
                    "primary_key": list(self.schema.primary_key),
                },
                "files": [f.__dict__ for f in self.files],
            },
            sort_keys=True,
            default=str,
        )


def _column_dict(column: Column) -> dict[str, Any]:
    data: dict[str, Any] = {"name": column.name, "type": column.type.value, "nullable": column.nullable}
    for key in ("precision", "scale", "length", "native_type", "dialect"):
        value = getattr(column, key)
        if value is not None:
            data[key] = value
    if column.element is not None:
        data["element"] = column.element.value
    return data


def _problem(where: str, message: str) -> BadInputError:
    return BadInputError(f"staging manifest: {where}: {message}")


def _uri(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise _problem("uri", f"{value!r} is not a URI (scheme://...)")
    scheme = value.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise _problem("uri", f"scheme '{scheme}' is not one of {', '.join(SCHEMES)}")
    return value


def _staged_file(i: int, data: Any) -> StagedFile:
    where = f"files[{i}]"
    if not isinstance(data, dict) or set(data) != {"name", "bytes", "rows", "sha256"}:
        raise _problem(where, "needs exactly name, bytes, rows and sha256")
    name, size, rows, digest = data["name"], data["bytes"], data["rows"], data["sha256"]
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name.split("/"):
        raise _problem(f"{where}.name", f"{name!r} is not a relative file name")
    for key, value in (("bytes", size), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _problem(f"{where}.{key}", f"{value!r} is not a non-negative integer")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise _problem(f"{where}.sha256", f"{digest!r} is not a SHA-256 in lower-case hex")
    return StagedFile(name, size, rows, digest)


def _column(i: int, data: Any) -> Column:
    where = f"schema.columns[{i}]"
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise _problem(where, "needs a name")
    try:
        ctype = CanonicalType(data.get("type"))
        element = CanonicalType(data["element"]) if data.get("element") else None
    except ValueError:
        raise _problem(f"{where}.type", f"{data.get('type')!r} is not a canonical type") from None
    known = {"name", "type", "nullable", "precision", "scale", "length", "native_type", "dialect", "element"}
    unexpected = sorted(set(data) - known)
    if unexpected:
        raise _problem(where, f"unexpected key {unexpected[0]!r}")
    return Column(
        name=data["name"],
        type=ctype,
        nullable=bool(data.get("nullable", True)),
        precision=data.get("precision"),
        scale=data.get("scale"),
        length=data.get("length"),
        element=element,
        native_type=data.get("native_type"),
        dialect=data.get("dialect"),
    )


def manifest_from_json(text: str) -> StagingManifest:
    """A manifest read back from ``to_json``; ``BadInputError`` names the first wrong field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _problem("<root>", f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _problem("<root>", "not a JSON object")
    if data.get("version") != VERSION:
        raise _problem("version", f"{data.get('version')!r}; this dpone reads version {VERSION}")
    fmt = data.get("format")
    if fmt not in FORMATS:
        raise _problem("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    retention = data.get("retention", "delete")
    if retention not in ("delete", "keep"):
        raise _problem("retention", f"{retention!r} is not delete or keep")
    schema = data.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), list) or not schema["columns"]:
        raise _problem("schema.columns", "needs at least one column")
    columns = tuple(_column(i, c) for i, c in enumerate(schema["columns"]))
    names = [c.name for c in columns]
    key = schema.get("primary_key", [])
    if not isinstance(key, list) or any(k not in names for k in key):
        raise _problem("schema.primary_key", f"{key!r} is not a list of the columns {names}")
    files = data.get("files")
    if not isinstance(files, list):
        raise _problem("files", "needs a list (empty for an empty export)")
    staged = tuple(_staged_file(i, f) for i, f in enumerate(files))
    duplicated = sorted({f.name for f in staged if [g.name for g in staged].count(f.name) > 1})
    if duplicated:
        raise _problem("files", f"{duplicated[0]!r} is listed twice")
    window = data.get("window", {})
    if not isinstance(window, dict):
        raise _problem("window", "needs an object")
    origin = data.get("origin", {})
    if not isinstance(origin, dict) or any(not isinstance(v, str) for v in origin.values()):
        raise _problem("origin", "needs an object of texts (pipeline, load, run_id)")
    return StagingManifest(
        uri=_uri(data.get("uri")),
        format=fmt,
        schema=TableSchema(columns, tuple(key)),
        files=staged,
        window=window,
        retention=retention,
        origin=origin,
    )


class Digest:
    """Size and SHA-256 of a file, fed its bytes as they stream by."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.bytes = 0

    def update(self, chunk: bytes) -> bytes:
        self._hash.update(chunk)
        self.bytes += len(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def verify_file(manifest: StagingManifest, staged: StagedFile, chunks: Iterable[bytes] | None) -> None:
    """Fail unless ``chunks`` (the file as read back; None when it is missing) have exactly the
    manifest's size and SHA-256."""
    where = manifest.location(staged)
    if chunks is None:
        raise StagingEvidenceError(
            f"{where} is listed in the staging manifest but missing; nothing was loaded"
        )
    digest = Digest()
    for chunk in chunks:
        digest.update(chunk)
    if digest.bytes != staged.bytes or digest.sha256 != staged.sha256:
        raise StagingEvidenceError(
            f"{where} differs from the staging manifest ({digest.bytes:,} bytes, sha256 {digest.sha256[:12]}…; "
            f"the manifest says {staged.bytes:,} bytes, sha256 {staged.sha256[:12]}…); nothing was loaded"
        )
