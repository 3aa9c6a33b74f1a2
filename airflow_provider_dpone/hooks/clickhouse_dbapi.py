"""A small DB-API 2.0 connection over a clickhouse-connect client.

It is what ``DponeClickHouseHook.get_conn()`` returns, so that ``DbApiHook``'s ``run``,
``get_records`` and ``get_first`` (and through them ``SQLExecuteQueryOperator`` and
``SqlSensor``) work on ClickHouse. A statement that returns rows (SELECT, WITH, SHOW, DESCRIBE,
EXISTS, EXPLAIN) is sent as a query and its rows are held by the cursor; any other statement is
sent as a command. Parameters bind as clickhouse-connect binds them: ``%(name)s`` or ``%s``
client-side, ``{name:Type}`` server-side. ClickHouse has no transactions: a statement is final
when it returns, so ``commit`` has nothing to do and there is no ``rollback``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_ROW_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# the first word after leading blanks and comments, or an opening parenthesis
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*(\(|\w+)", re.DOTALL)

Parameters = Mapping[str, Any] | Sequence[Any] | None


def first_word(statement: str) -> str:
    """The statement's keyword (upper case), ``(`` for a parenthesised query, else ''."""
    match = _FIRST_WORD.match(statement)
    return match.group(1).upper() if match else ""


def returns_rows(statement: str) -> bool:
    """Whether ``statement`` is a query (rows back) rather than a command."""
    word = first_word(statement)
    return word == "(" or word in _ROW_KEYWORDS


class ClickHouseCursor:
    """A DB-API cursor: ``execute`` runs one statement; its rows are fetched from memory."""

    arraysize = 1

    def __init__(self, client: Any) -> None:
        self._client = client
        self._rows: list[tuple] = []
        self._next = 0
        self.description: list[tuple] | None = None
        self.rowcount = -1

    def execute(self, operation: str, parameters: Parameters = None) -> ClickHouseCursor:
        self._rows, self._next = [], 0
        if returns_rows(operation):
            result = self._client.query(operation, parameters=parameters or None)
            self._rows = [tuple(row) for row in result.result_rows]
            columns = [(n, t.name) for n, t in zip(result.column_names, result.column_types, strict=True)]
            if not columns and first_word(operation) in ("SELECT", "WITH", "("):
                # an empty result may carry no header (chDB): ask the server for the columns
                inner = operation.strip().rstrip(";")
                described = self._client.query(f"describe ({inner})", parameters=parameters or None)
                columns = [(r[0], r[1]) for r in described.result_rows]
            self.description = [(name, kind, None, None, None, None, None) for name, kind in columns]
            self.rowcount = len(self._rows)
        else:
            summary = self._client.command(operation, parameters=parameters or None)
            written = getattr(summary, "summary", {}).get("written_rows")
            self.description = None
            self.rowcount = int(written) if written is not None else -1
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Parameters]) -> None:
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)

    def fetchone(self) -> tuple | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        end = self._next + (self.arraysize if size is None else size)
        rows, self._next = self._rows[self._next : end], min(end, len(self._rows))
        return rows

    def fetchall(self) -> list[tuple]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def close(self) -> None:
        self._rows, self._next = [], 0


class ClickHouseConnection:
    """A DB-API connection over the hook's client. Closing it leaves the client (and its
    connection pool) to the hook, which keeps it for its next use."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def cursor(self) -> ClickHouseCursor:
        return ClickHouseCursor(self.client)

    def commit(self) -> None:
        """Nothing to commit: every ClickHouse statement is final when it returns."""

    def close(self) -> None:
        """The client stays open: the hook owns it."""
