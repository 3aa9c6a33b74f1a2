"""Redaction of connection credentials from messages, reports and logs.

Two kinds of values are registered. *Secrets* (passwords, tokens, sensitive extras) are
replaced wherever they occur. *Identities* (a login, other extras) are ordinary words that a
driver echoes in quotes or in a connection string (``role "x"``, ``user=x``); they are
replaced in those positions only, so a login like ``postgres`` does not blank every mention
of the PostgreSQL connector.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***"
_SENSITIVE_KEY = re.compile(r"pass|secret|token|key|credential|private|auth|cert|signature", re.I)
_MIN_LENGTH = 3  # shorter values would blank unrelated text; they are not credentials anyway


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._identities: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add_secret(self, *values: Any) -> None:
        self._add(self._secrets, values)

    def add_identity(self, *values: Any) -> None:
        self._add(self._identities, values)

    def merge(self, other: Redactor) -> None:
        self._secrets |= other._secrets
        self._identities |= other._identities
        self._pattern = None

    @classmethod
    def of_connection(cls, read: Callable[[], Any]) -> Redactor:
        """A redactor knowing the credentials of the connection ``read()`` returns; empty when
        it cannot be read (an unknown conn_id fails later with Airflow's own clear error)."""
        redactor = cls()
        try:
            conn = read()
        except Exception:
            return redactor
        redactor.add_connection(conn.password, conn.login, conn.extra_dejson)
        return redactor

    def add_connection(self, password: Any, login: Any, extra: Mapping[str, Any] | None) -> None:
        """Register one connection's credential fields."""
        self.add_secret(password)
        self.add_identity(login)
        for key, value in _flatten(extra or {}):
            (self.add_secret if _SENSITIVE_KEY.search(key) else self.add_identity)(value)

    def _add(self, bucket: set[str], values: Iterable[Any]) -> None:
        for value in values:
            if (
                isinstance(value, str | int)
                and not isinstance(value, bool)
                and len(str(value)) >= _MIN_LENGTH
            ):
                bucket.add(str(value))
                self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and (self._secrets or self._identities):
            variants = sorted({v for s in self._secrets for v in _variants(s)}, key=len, reverse=True)
            parts = [re.escape(v) for v in variants]
            for identity in sorted(self._identities, key=len, reverse=True):
                for v in _variants(identity):
                    e = re.escape(v)
                    parts.append(rf"(?<=[\"'=/:]){e}(?=[\"'\s,;)@:/]|$)|{e}(?=@)")
            self._pattern = re.compile("|".join(parts))
        return self._pattern

    def redact(self, text: Any) -> Any:
        """``text`` with every registered value masked; non-strings are returned as they are."""
        pattern = self._compiled()
        if not isinstance(text, str) or pattern is None:
            return text
        return pattern.sub(MASK, text)

    def redact_data(self, data: Any) -> Any:
        """A copy of a JSON-like structure with every string redacted."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, Mapping):
            return {k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(v) for v in data]
        return data


def _variants(value: str) -> set[str]:
    """The value and its URL-encoded form (connection URIs percent-encode credentials)."""
    from urllib.parse import quote, quote_plus

    return {value, quote(value, safe=""), quote_plus(value)}


def _flatten(data: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list | tuple):
        for value in data:
            yield from _flatten(value, prefix)
    else:
        yield prefix, data
