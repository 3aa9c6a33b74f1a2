"""A stand-in for Microsoft's ``mssql-python`` driver, for tests that cannot have a SQL Server
(no image, no network here). It follows the driver's documented contract, not dpone's reading
of it: ``connect(connection_str, autocommit=..., timeout=...)``; ``Cursor.execute(sql, params)``
with ``?`` parameters as one tuple; ``description``, ``rowcount``, ``fetchall``, ``fetchmany``,
``nextset``; ``Cursor.bulkcopy(table_name, data, batch_size, timeout, column_mappings, ...)``
taking tuples only and answering ``{"rows_copied", "batch_count", "elapsed_time"}``.
``test_mssql_connector`` checks these signatures against the installed driver's.

Every statement must read as T-SQL (``tests/sql/tsql.py``) and carry as many parameters as it
has ``?`` markers. What a query answers comes from the test's ``answer(sql, params)``: rows and
column names, or None for a statement with no result set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.sql.tsql import check_tsql

Answer = Callable[[str, tuple[Any, ...]], "tuple[list[tuple[Any, ...]], list[str]] | int | None"]


def _markers(sql: str) -> int:
    text = re.sub(r"N?'(?:[^']|'')*'", "''", sql)
    text = re.sub(r"\[(?:[^\]]|\]\])*\]", "[]", text)
    return text.count("?")


@dataclass
class FakeServer:
    """What the fake driver saw, and how it answers."""

    answer: Answer = lambda sql, params: None
    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    bulk: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    fail_on: str | None = None  # a statement containing this raises the error below
    error: Exception | None = None
    acknowledge: Callable[[int], int] = lambda n: n  # rows bulk copy reports as copied

    def connect(
        self, connection_str: str = "", autocommit: bool = False, timeout: int = 0, **kwargs: Any
    ) -> FakeConnection:
        self.connections.append(
            {"connection_str": connection_str, "autocommit": autocommit, "timeout": timeout}
        )
        return FakeConnection(self, autocommit)

    def sql(self) -> list[str]:
        return [s for s, _ in self.statements]


class FakeConnection:
    def __init__(self, server: FakeServer, autocommit: bool) -> None:
        self.server, self.autocommit, self.closed = server, autocommit, False

    def setautocommit(self, value: bool = False) -> None:
        self.autocommit = value

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.server)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeCursor:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self.arraysize = 1
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, operation: str, *parameters: Any) -> FakeCursor:
        params = (
            tuple(parameters[0])
            if len(parameters) == 1 and isinstance(parameters[0], tuple | list)
            else parameters
        )
        check_tsql(operation)
        assert _markers(operation) == len(params), (
            f"{len(params)} parameters for {_markers(operation)} markers: {operation}"
        )
        self.server.statements.append((operation, tuple(params)))
        if self.server.fail_on and self.server.fail_on in operation and self.server.error:
            raise self.server.error
        found = self.server.answer(operation, tuple(params))
        self.description, self._rows, self.rowcount = None, [], -1
        if isinstance(found, int):
            self.rowcount = found
        elif found is not None:
            rows, names = found
            self.description = [(n, None, None, None, None, None, None) for n in names]
            self._rows, self.rowcount = list(rows), len(rows)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        n = size or self.arraysize
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    def nextset(self) -> bool | None:
        return None

    def close(self) -> None:
        self._rows, self.description = [], None

    def bulkcopy(
        self,
        table_name: str,
        data: Any,
        batch_size: int = 0,
        timeout: int = 30,
        column_mappings: Sequence[Any] | None = None,
        keep_identity: bool = False,
        check_constraints: bool = False,
        table_lock: bool = False,
        keep_nulls: bool = False,
        fire_triggers: bool = False,
        use_internal_transaction: bool = False,
    ) -> dict[str, Any]:
        rows = list(data)
        if rows and not all(isinstance(r, tuple) for r in rows):
            raise TypeError("bulkcopy data rows must be tuples or Row objects")
        self.server.bulk.append(
            {"table": table_name, "rows": rows, "batch_size": batch_size, "timeout": timeout,
             "column_mappings": column_mappings, "table_lock": table_lock, "keep_nulls": keep_nulls}
        )  # fmt: skip
        return {"rows_copied": self.server.acknowledge(len(rows)), "batch_count": 1, "elapsed_time": 0.0}
