"""Pages of the REST source: one extract's read (:class:`Read`), the records in a page, and the
guards that stop a page series that answers outside the manifest (a selector that matches
nothing, a pagination that loops). The next position is the paginators' (``rest_paginators``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..contracts.errors import SourceContractError
from ..contracts.sources import EndpointSource, EndpointSpec

_MISSING = object()
_SHOWN_KEYS, _KEY_WIDTH = 20, 40


def dig(body: Any, path: str | None, default: Any = None) -> Any:
    """The value at dotted ``path`` in a JSON body ("" or None: the body itself); ``default``
    when the path is not there."""
    if not path:
        return body
    node = body
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return default
    return node


@dataclass(frozen=True, eq=False)
class Read:
    """One extract's read, handed down the REST hook's methods (the hook keeps no per-extract
    state, so one hook serves extracts in a row or interleaved): the source spec as read and its
    endpoint. API catalogs subclass it with their resource (``apis/base.py``)."""

    spec: EndpointSource
    endpoint: EndpointSpec

    def records(self, payload: Any, selector: str) -> Any:
        """The records in a decoded page (None: the key is absent or null)."""
        return dig(payload, selector)


def has_path(body: Any, path: str | None) -> bool:
    """Whether dotted ``path`` is in ``body`` (its value may be null or empty)."""
    return dig(body, path, _MISSING) is not _MISSING


def describe_keys(body: Any) -> str:
    """What a body holds, for an error: its top-level keys (at most 20, each cut at 40
    characters), or its kind."""
    if isinstance(body, dict):
        if not body:
            return "the body is an empty object"
        names = [k if len(k) <= _KEY_WIDTH else k[: _KEY_WIDTH - 3] + "..." for k in map(str, body)]
        more = f" (+{len(names) - _SHOWN_KEYS} more)" if len(names) > _SHOWN_KEYS else ""
        return f"top-level keys: {', '.join(names[:_SHOWN_KEYS])}{more}"
    if isinstance(body, list):
        return f"the body is a list of {len(body)} items"
    if body is None:
        return "the body is empty"
    return f"the body is a {type(body).__name__}"


def missing_selector(
    path: str, selector: str, body: Any, redact: Callable[[str], str], where: str = "the first page"
) -> SourceContractError:
    """The error for a ``selector`` absent from a page of ``path`` (``where``: which one)."""
    return SourceContractError(
        f"{path}: record_selector '{selector}' matches nothing in {where} "
        f"({redact(describe_keys(body))}); point record_selector at the list of records"
    )


class MissingKey(SourceContractError):
    """A key an API's record function reads is not in the body (the vendor renamed it?)."""

    def __init__(self, key: str, body: Any) -> None:
        self.key, self.keys = key, describe_keys(body)
        super().__init__(
            f"the response has no '{key}' ({self.keys}): the API no longer answers what this "
            "source reads, so the load stops instead of reading 0 rows"
        )


def require(body: Any, key: str) -> Any:
    """The value at dotted ``key`` in a decoded body, for an API's record function: an empty
    list, object or null there is 0 records; an absent key raises :class:`MissingKey`."""
    value = dig(body, key, _MISSING)
    if value is _MISSING:
        raise MissingKey(key, body)
    return value


class LoopGuard:
    """The positions (full request URLs) and page bodies of one page series; a position asked
    for twice, or a body read twice, means the API's next link, cursor or page number does not
    advance (a server that ignores the page parameter answers the same page under new URLs)."""

    def __init__(self, path: str, kind: str, first: str) -> None:
        self.path, self.kind = path, kind
        self.seen = {first}
        self.bodies: dict[bytes, int] = {}  # a digest of each page's raw body -> its page number

    def check(self, position: str, page: int, shown: str) -> None:
        """Record the position after page ``page``; ``SourceContractError`` naming it (as
        ``shown``, redacted) when it was requested before."""
        if position in self.seen:
            raise SourceContractError(
                f"{self.path}: the pagination loops: after page {page} it asks again for {shown}, "
                f"already requested in this run; the API's {self.kind} pagination does not advance"
            )
        self.seen.add(position)

    def check_body(self, digest: bytes, page: int) -> None:
        """Record the body digest (:func:`body_digest`) of page ``page``, a page with records;
        ``SourceContractError`` naming both pages when an earlier page had the same bytes."""
        first = self.bodies.setdefault(digest, page)
        if first != page:
            raise SourceContractError(
                f"{self.path}: the pagination loops: page {page} repeats page {first} byte for byte; "
                f"the API's {self.kind} pagination does not advance (does it ignore the page, offset "
                "or cursor parameter?)"
            )


def body_digest(body: bytes) -> bytes:
    """A short hash of a page's raw body, for :meth:`LoopGuard.check_body`."""
    return hashlib.blake2b(body, digest_size=16).digest()
