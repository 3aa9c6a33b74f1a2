"""Where staged files may live: the directory URIs a staging store accepts, parsed in one place
for ``dpone validate`` (``sink.staging.files.uri``) and for the stores. Pure: no I/O, no drivers.

- ``file:///absolute/path``: local disk.
- ``s3://bucket/prefix``, ``gs://bucket/prefix``: a bucket and a key prefix.
- ``wasb[s]://container@account.blob.<suffix>/prefix``: a container of an Azure storage account.
- ``abfs[s]://container@account.dfs.<suffix>/prefix``: an ADLS Gen2 file system (a container),
  reached through the same account's Blob API.

``<suffix>`` is the cloud's endpoint suffix (``core.windows.net``, ``core.chinacloudapi.cn``...);
which endpoint is reached, and how, is the connection's business, not the URI's. The prefix may
be empty; no query, fragment, port or credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import BadInputError

FORMS = {
    "file": "file:///absolute/path",
    "s3": "s3://bucket/prefix",
    "gs": "gs://bucket/prefix",
    "abfs": "abfs://container@account.dfs.core.windows.net/prefix",
    "abfss": "abfss://container@account.dfs.core.windows.net/prefix",
    "wasb": "wasb://container@account.blob.core.windows.net/prefix",
    "wasbs": "wasbs://container@account.blob.core.windows.net/prefix",
}
SCHEMES = tuple(FORMS)
AZURE_SCHEMES = ("abfs", "abfss", "wasb", "wasbs")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,221}")
_AZURE = re.compile(
    r"(?P<container>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])@(?P<account>[a-z0-9]{3,24})"
    r"\.(?P<service>blob|dfs)(?:\.[a-z0-9-]+){2,}"
)


@dataclass(frozen=True)
class StagingLocation:
    """A parsed staging directory URI."""

    scheme: str
    bucket: str  # the bucket or container; "" for file://
    prefix: str  # the key prefix, no slash at either end; the absolute path for file://
    account: str = ""  # the Azure storage account


def shown(uri: str) -> str:
    """``uri`` as an error may quote it: without user info (``key:secret@``, but an Azure
    ``container@account``'s container is kept) nor query (a SAS token) or fragment."""
    head, sep, rest = uri.partition("://")
    if not sep:
        return uri.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user}@{host}" if head in AZURE_SCHEMES and ":" not in user else f"***@{host}"
    path = path.split("?", 1)[0].split("#", 1)[0]
    netloc = netloc.split("?", 1)[0].split("#", 1)[0]
    return f"{head}://{netloc}{slash}{path}" + ("?…" if "?" in rest else "")


def parse_staging_uri(uri: str) -> StagingLocation:
    """``uri`` as a staging location; ``BadInputError`` naming the accepted form when it is not one."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    form = FORMS.get(scheme)
    if form is None:
        raise BadInputError(f"staging uri {shown(uri)!r}: give one of {', '.join(FORMS.values())}")
    parts = urlsplit(uri)
    wrong = BadInputError(f"staging uri {shown(uri)!r}: a {scheme}:// directory is {form}")
    if "?" in uri or "#" in uri:
        raise wrong
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise wrong
        return StagingLocation(scheme, "", unquote(parts.path).rstrip("/") or "/")
    prefix = parts.path.strip("/")
    if scheme in AZURE_SCHEMES:
        match = _AZURE.fullmatch(parts.netloc)
        if match is None or match["service"] != ("blob" if scheme.startswith("wasb") else "dfs"):
            raise wrong
        return StagingLocation(scheme, match["container"], prefix, match["account"])
    if not _BUCKET.fullmatch(parts.netloc):
        raise wrong
    return StagingLocation(scheme, parts.netloc, prefix)
