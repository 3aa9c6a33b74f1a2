"""What every SQL dialect offers the shared core: quoting, table references, and the
fragments quality gates and finalize guards need. Pure: renders strings, never connects.

A dialect is an object (``SqlDialect`` subclass), so shared code is typed against this base
and a new database overrides what its SQL spells differently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..contracts.table import Column

SAMPLE_LIMIT = 5


@dataclass(frozen=True)
class TableRef:
    """A schema-qualified table (a database in ClickHouse), quoted by its dialect."""

    schema: str
    name: str
    quote: Callable[[str], str] = field(compare=False, repr=False, kw_only=True)

    @property
    def sql(self) -> str:
        return f"{self.quote(self.schema)}.{self.quote(self.name)}"

    def sibling(self, name: str) -> TableRef:
        """Another table in the same schema, quoted the same way."""
        return TableRef(self.schema, name, quote=self.quote)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


class SqlDialect(ABC):
    """Quoting, table references and the statements shared code renders for a database."""

    DIALECT: ClassVar[str]
    DEFAULT_SCHEMA: ClassVar[str]
    SAMPLE_LIMIT: ClassVar[int] = SAMPLE_LIMIT

    @abstractmethod
    def quote_ident(self, name: str) -> str:
        """An identifier, quoted; refuses names the database cannot hold."""

    @abstractmethod
    def quote_literal(self, text: str) -> str:
        """A string literal."""

    def table(self, schema: str, name: str) -> TableRef:
        return TableRef(schema, name, quote=self.quote_ident)

    def parse_table(self, ref: str, default_schema: str | None = None) -> TableRef:
        """``schema.name`` or ``name`` (in ``default_schema``, else the dialect's default)."""
        schema, _, name = ref.rpartition(".")
        return self.table(schema or default_schema or self.DEFAULT_SCHEMA, name)

    def column_list(self, names: Sequence[str]) -> str:
        return ", ".join(self.quote_ident(n) for n in names)

    def count_rows(self, table: TableRef) -> str:
        return f"select count(*) from {table.sql}"

    def bound_param(self, column: Column) -> str:
        """A text parameter read as a value of ``column``'s type (a window or range bound)."""
        raise NotImplementedError(f"{self.DIALECT} reads no bound parameters")

    def key_bounds(self, relation: str, column: Column) -> str:
        """One row: ``column``'s min and max in ``relation``, as text a bound parameter reads."""
        raise NotImplementedError(f"{self.DIALECT} measures no key bounds")

    def range_predicate(self, column: Column, lower: bool, upper: bool, nulls: bool) -> str:
        """``lower <= column < upper`` (each bound when asked for, as parameters in that order),
        or ``column is null`` too when ``nulls``: one partition of a partitioned load."""
        col = self.quote_ident(column.name)
        parts = [f"{col} >= {self.bound_param(column)}"] if lower else []
        parts += [f"{col} < {self.bound_param(column)}"] if upper else []
        where = " and ".join(parts)
        if nulls:
            return f"{where} or {col} is null" if where else f"{col} is null"
        return where

    def drop_table(self, table: TableRef) -> str:
        return f"drop table if exists {table.sql}"

    def sample_keys(
        self, staging: TableRef, keys: Sequence[str], predicate: str, limit: int = SAMPLE_LIMIT
    ) -> str:
        """Key values of a few rows matching ``predicate`` (never other columns)."""
        return f"select {self.column_list(keys)} from {staging.sql} where {predicate} limit {int(limit)}"

    def render_check_sql(self, query: str, staging: TableRef, target: TableRef) -> str:
        """A user's check query with ``{staging}`` / ``{target}`` replaced by quoted names."""
        return query.replace("{staging}", staging.sql).replace("{target}", target.sql)

    # --- fragments each database spells its own way ------------------------------------

    @abstractmethod
    def now_epoch(self) -> str:
        """One row: the server's clock as seconds since the epoch."""

    @abstractmethod
    def staging_tables(self, schema: str) -> tuple[str, Any]:
        """(query, parameters): ``(name, comment)`` of tables in ``schema`` labelled as staging."""

    @abstractmethod
    def table_comment(self, table: TableRef) -> tuple[str, Any]:
        """(query, parameters): one row holding the table's comment, no row when it is absent."""

    @abstractmethod
    def set_comment(self, table: TableRef, text: str) -> str:
        """Set the table's comment (the staging label lives there)."""

    @abstractmethod
    def null_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        """One row: (rows with a NULL in any key column, a sample of their keys)."""

    @abstractmethod
    def quality_not_null(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(one row: total failing, then per column; the predicate of a failing row)."""

    @abstractmethod
    def quality_unique(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(one row: rows in duplicated groups; the predicate of such a row)."""

    @abstractmethod
    def quality_accepted_values(
        self, staging: TableRef, column: Column, values: Sequence[object]
    ) -> tuple[str, str, Any]:
        """(one row: rows outside ``values``; their predicate; the parameters of both)."""

    @abstractmethod
    def quality_freshness(self, staging: TableRef, column: str) -> str:
        """One row: age in seconds of the newest value (NULL when the batch has none)."""
