"""Measure quality checks on a staging table, the same way for every SQL sink.

The dialect object renders each check's SQL; ``fetchone`` runs it read-only on the sink.
Samples carry key columns only, never other values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.quality import (
    AcceptedValuesCheck,
    FreshnessCheck,
    Measurement,
    NotNullCheck,
    RowCountCheck,
    SqlCheck,
    UniqueCheck,
)
from ..contracts.table import TableSchema
from .dialect import SqlDialect, TableRef

Fetch = Callable[[str, Any], "tuple | None"]
FetchAll = Callable[[str, Any], list]


def measure_checks(
    dialect: SqlDialect,
    fetchone: Fetch,
    fetchall: FetchAll,
    *,
    staging: TableRef,
    target: TableRef,
    schema: TableSchema,
    keys: list[str],
    staged_rows: int,
    checks: list[Any],
) -> list[Measurement]:
    """One measurement per check (failing rows, row count, age in seconds or the query result)."""

    def samples(predicate: str, params: Any = None) -> list[dict[str, Any]]:
        if not keys:
            return []
        rows = fetchall(dialect.sample_keys(staging, keys, predicate), params)
        return [{k: str(v) for k, v in zip(keys, r, strict=True)} for r in rows]

    out: list[Measurement] = []
    for i, check in enumerate(checks):
        named = [c for c in (getattr(check, "columns", None) or [getattr(check, "column", None)]) if c]
        missing = [c for c in named if not schema.has(c)]
        if missing:
            raise BadInputError(
                f"quality[{i}] ({check.label}): column(s) {missing} not in the batch; columns: {schema.names}"
            )
        if isinstance(check, NotNullCheck):
            query, failing = dialect.quality_not_null(staging, check.columns)
            total, *per = fetchone(query, None)  # type: ignore[misc]
            per_column = {"per_column": dict(zip(check.columns, per, strict=True))}
            out.append(Measurement(total, samples(failing) if total else [], per_column))
        elif isinstance(check, UniqueCheck):
            query, failing = dialect.quality_unique(staging, check.columns)
            values, rows = fetchone(query, None)  # type: ignore[misc]
            rows = int(rows or 0)
            out.append(Measurement(values, samples(failing) if values else [], {"rows": rows}))
        elif isinstance(check, RowCountCheck):
            out.append(Measurement(staged_rows))
        elif isinstance(check, FreshnessCheck):
            row = fetchone(dialect.quality_freshness(staging, check.column), None)
            out.append(Measurement(row[0] if row else None))
        elif isinstance(check, AcceptedValuesCheck):
            query, failing, params = dialect.quality_accepted_values(
                staging, schema.column(check.column), check.values
            )
            bad = fetchone(query, params)[0]  # type: ignore[index]
            out.append(Measurement(bad, samples(failing, params) if bad else []))
        elif isinstance(check, SqlCheck):
            row = fetchone(dialect.render_check_sql(check.sql, staging, target), None)
            if row is None or len(row) != 1:
                raise BadInputError(f"quality[{i}] (sql): the query must return one row with one number")
            out.append(Measurement(row[0]))
        else:  # pragma: no cover - the manifest union is closed
            raise BadInputError(f"quality[{i}]: unknown check {check!r}")
    return out
