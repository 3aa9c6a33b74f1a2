"""Statements on any DB-API cursor (psycopg, mssql-python), whatever the batch returns: the row
count of its first part and its first result set, every later result set drained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def results(
    cursor: Any, statement: str, params: Sequence[Any] = ()
) -> tuple[int, list[str], list[tuple[Any, ...]]]:
    """Run ``statement``: the row count of its first part, and the column names and rows of its
    first result set. Every later result set is read too, so an error in a later part of a batch
    is raised here, not lost."""
    cursor.execute(statement, tuple(params)) if params else cursor.execute(statement)
    count = int(cursor.rowcount)
    names: list[str] = []
    rows: list[tuple[Any, ...]] | None = None
    while True:
        if rows is None and cursor.description:
            names = [d[0] for d in cursor.description]
            rows = [tuple(r) for r in cursor.fetchall()]
        if not cursor.nextset():
            break
    return count, names, rows or []


def fetch(cursor: Any, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of the first result set ``statement`` returns (see ``results``)."""
    return results(cursor, statement, params)[2]


def run(cursor: Any, statement: str, params: Sequence[Any] = ()) -> int:
    """Run ``statement``: the row count of its first part (see ``results``)."""
    return results(cursor, statement, params)[0]
