"""SQL Server reads, rendered: the extract statements ``extract_plan`` asks for (full, cursor
window with lookback, fixed window, backfill chunk, a query's key set) and the quality gates
measured on staging. Pure: strings and parameter orders, never a connection.

Values travel as ``?`` parameters in the order the PostgreSQL dialect takes them: a cursor
window is (lower, [lookback seconds,] upper), a fixed window (start, end). A bound is text, as
``text_of`` renders the cursor's max: ISO 8601 for date/time (datetimeoffset in UTC with
``Z``), ``0x``-hex for binary and rowversion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..contracts.errors import UnsupportedError
from ..contracts.table import Column, TableSchema
from .dialect import SAMPLE_LIMIT, TableRef
from .mssql_catalog import MsSqlCatalog
from .mssql_types import ROWVERSION, cast_type, split_native, text_of, value_of

JSON_PREFIX = "dpone_json"  # a result column named so holds JSON text the executor decodes
_READ_AS = {
    "xml": "nvarchar(max)",
    "text": "varchar(max)",
    "ntext": "nvarchar(max)",
    "image": "varbinary(max)",
}
_LEADING_WITH = re.compile(r"^[\s;]*with\b", re.IGNORECASE)


def decode_json_columns(names: Sequence[str | None], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows with every ``dpone_json*`` column parsed: SQL Server has no arrays, so a sample of
    keys (``null_keys``) comes back as JSON text. The executor applies this to each result, with
    the names from ``cursor.description``."""
    wanted = [i for i, n in enumerate(names) if n and n.startswith(JSON_PREFIX)]
    out = []
    for row in rows:
        values = list(row)
        for i in wanted:
            values[i] = None if values[i] is None else json.loads(values[i])
        out.append(tuple(values))
    return out


class MsSqlReads(MsSqlCatalog):
    """Extract statements and quality gates in T-SQL."""

    # --- extract -------------------------------------------------------------------------------

    def source_relation(self, table: TableRef | None, query: str | None) -> str:
        """A FROM item for a table or a user query (wrapped as a derived table). T-SQL cannot nest
        a query that starts with a CTE (WITH): such a query is refused, naming the fix."""
        if table is not None:
            return table.sql
        assert query is not None
        body = query.strip().rstrip(";").strip()
        if _LEADING_WITH.match(body):
            raise UnsupportedError(
                "source.query: SQL Server cannot use a query starting with WITH (a CTE) as a derived "
                "table; put the CTE in a view and select from the view, or write it as derived tables"
            )
        return f"({body}) as dpone_src"

    def read_casts(self, schema: TableSchema) -> dict[str, str]:
        """Columns read converted (same name): xml and the deprecated large types as their (max)
        equivalents, which every driver decodes."""
        casts = {}
        for c in schema.columns:
            if c.native_type and c.dialect == self.DIALECT:
                base = split_native(c.native_type)[0]
                if base in _READ_AS:
                    casts[c.name] = _READ_AS[base]
        return casts

    def select_rows(
        self, relation: str, columns: Sequence[str], where: str = "", casts: dict[str, str] | None = None
    ) -> str:
        """SELECT of ``columns``; ``casts`` maps a column to the type it is read as (same name)."""
        casts = casts or {}
        items = ", ".join(
            f"cast({self.quote_ident(c)} as {casts[c]}) as {self.quote_ident(c)}"
            if c in casts
            else self.quote_ident(c)
            for c in columns
        )
        sql = f"select {items} from {relation}"
        return f"{sql} where {where}" if where else sql

    def cursor_bounds(self, relation: str, cursor: str, native: str = "") -> str:
        """One row: the cursor's max, as text. On a rowversion cursor, only values below
        ``min_active_rowversion()``: a transaction still open may commit a smaller one, which a
        watermark past it would skip for ever."""
        col = self.quote_ident(cursor)
        if not native:
            return f"select convert(nvarchar(max), max({col})) from {relation}"
        sql = f"select {text_of(f'max({col})', native)} from {relation}"
        if split_native(native)[0] in ROWVERSION:
            sql += f" where {col} < min_active_rowversion()"
        return sql

    def _step(self, expr: str, native: str, temporal: bool) -> str:
        """``expr`` advanced by one chunk (``p.chunk``: seconds for date/time, else cursor units)."""
        typ = cast_type(native)
        if not temporal:
            return f"cast({expr} + cast(p.chunk as {typ}) as {typ})"
        calc = "datetimeoffset(7)" if split_native(native)[0] == "datetimeoffset" else "datetime2(7)"
        return f"cast(dateadd(second, cast(p.chunk as int), cast({expr} as {calc})) as {typ})"

    @staticmethod
    def _least(a: str, b: str) -> str:
        return f"case when {a} < {b} then {a} else {b} end"  # least() needs SQL Server 2022

    def chunk_bounds(self, relation: str, cursor: str, native: str, temporal: bool, has_lower: bool) -> str:
        """One row: (max cursor, upper bound of the next chunk) past the stored position, as text.

        Chunks are ``(lower, lower + chunk]``; the first one (no lower) is ``[min, min + chunk]``;
        past a gap the chunk restarts at the next existing value. Parameters, in order: the chunk
        (seconds for date/time cursors), then the lower bound when there is one
        (``chunk_params``).
        """
        col = self.quote_ident(cursor)
        if has_lower:
            params = f"(values (cast(? as float), {value_of('?', native)})) as p(chunk, lower)"
            where = f" where {col} > p.lower"
            aligned, nxt = self._step("p.lower", native, temporal), self._step("m.mn", native, temporal)
            upper = f"case when m.mn > {aligned} then {nxt} else {aligned} end"
        else:
            params, where = "(values (cast(? as float))) as p(chunk)", ""
            upper = self._step("m.mn", native, temporal)
        return (
            f"select {text_of('m.mx', native)}, {text_of(self._least('m.mx', 'n.chunk_end'), native)} "
            f"from {params} cross apply (select max({col}) as mx, min({col}) as mn from {relation}{where}) as m "
            f"cross apply (select {upper} as chunk_end) as n"
        )

    @staticmethod
    def chunk_params(chunk: float, lower: str | None) -> tuple[Any, ...]:
        return (chunk,) if lower is None else (chunk, lower)

    def _minus_lookback(self, native: str) -> str:
        """The lower bound minus the lookback (two parameters, in that order), as ``native``."""
        calc = "datetimeoffset(7)" if split_native(native)[0] == "datetimeoffset" else "datetime2(7)"
        shifted = (
            "dateadd(microsecond, -cast(round((p.s - floor(p.s)) * 1000000, 0) as int), "
            "dateadd(second, -cast(floor(p.s) as int), p.v))"
        )
        return (
            f"(select cast({shifted} as {cast_type(native)}) "
            f"from (values (cast(? as {calc}), cast(? as float))) as p(v, s))"
        )

    def cursor_predicate(self, cursor: str, native: str, has_lower: bool, lookback: bool) -> str:
        """``cursor > lower [- lookback] and cursor <= upper``; parameters (lower, [lookback
        seconds,] upper), as the PostgreSQL dialect takes them."""
        col = self.quote_ident(cursor)
        upper = f"{col} <= {value_of('?', native)}"
        if not has_lower:
            return upper
        lower = self._minus_lookback(native) if lookback else value_of("?", native)
        return f"{col} > {lower} and {upper}"

    def window_predicate(self, column: Column) -> str:
        """``start <= column < end``, both bounds parameters cast to the column's type."""
        return self.range_predicate(column, lower=True, upper=True, nulls=False)

    def bound_param(self, column: Column) -> str:
        return value_of("?", self.native_type(column))

    def key_bounds(self, relation: str, column: Column) -> str:
        col, native = self.quote_ident(column.name), self.native_type(column)
        return f"select {text_of(f'min({col})', native)}, {text_of(f'max({col})', native)} from {relation}"

    def key_set_query(self, query: str, keys: Sequence[str]) -> str:
        """The key columns of a user query, as a query (the key set reconciliation compares)."""
        return f"select {self.column_list(keys)} from {self.source_relation(None, query)}"

    # --- quality gates (read-only queries over staging) ----------------------------------------

    def sample_keys(
        self, staging: TableRef, keys: Sequence[str], predicate: str, limit: int = SAMPLE_LIMIT
    ) -> str:
        return f"select top ({int(limit)}) {self.column_list(keys)} from {staging.sql} where {predicate}"

    def null_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        """(rows with a NULL in any key column, up to ``limit`` of their keys as JSON text in a
        ``dpone_json`` column: see ``decode_json_columns``)."""
        cond = " or ".join(f"{self.quote_ident(k)} is null" for k in keys)
        sample = (
            f"select top ({int(limit)}) {self.column_list(keys)} from {staging.sql} where {cond} "
            "for json path, include_null_values"
        )
        return (
            f"select (select count_big(*) from {staging.sql} where {cond}) as [dpone_nulls], "
            f"({sample}) as [{JSON_PREFIX}_sample]"
        )

    def _all_not_null(self, columns: Sequence[str]) -> str:
        return " and ".join(f"{self.quote_ident(c)} is not null" for c in columns)

    def quality_not_null(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(counts query: any-NULL rows then one count per column, predicate of failing rows)."""
        failing = " or ".join(f"{self.quote_ident(c)} is null" for c in columns)
        per_column = ", ".join(
            f"count_big(case when {self.quote_ident(c)} is null then 1 end)" for c in columns
        )
        return f"select count_big(case when {failing} then 1 end), {per_column} from {staging.sql}", failing

    def quality_unique(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        """(query: duplicated values and the rows holding them, predicate of failing rows). T-SQL
        has no row-value IN: a failing row matches a duplicated group on every column."""
        cols = self.column_list(columns)
        grouped = (
            f"from {staging.sql} where {self._all_not_null(columns)} group by {cols} having count_big(*) > 1"
        )
        counts = f"select count_big(*), coalesce(sum(n), 0) from (select count_big(*) as n {grouped}) as d"
        aliases = [f"dpone_k{i}" for i in range(len(columns))]
        keys = ", ".join(f"{self.quote_ident(c)} as {a}" for c, a in zip(columns, aliases, strict=True))
        match = " and ".join(
            f"dpone_d.{a} = {self.quote_ident(c)}" for c, a in zip(columns, aliases, strict=True)
        )
        return counts, f"exists (select 1 from (select {keys} {grouped}) as dpone_d where {match})"

    def quality_accepted_values(
        self, staging: TableRef, column: Column, values: Sequence[object]
    ) -> tuple[str, str, tuple[Any, ...]]:
        """(count query, failing predicate, its parameter: the accepted values as one JSON array,
        read with ``openjson`` and cast to the column's type)."""
        col = self.quote_ident(column.name)
        accepted = f"select {value_of('[value]', self.native_type(column))} from openjson(?)"
        failing = f"{col} is not null and {col} not in ({accepted})"
        params = (json.dumps([str(v) for v in values]),)
        return f"select count_big(*) from {staging.sql} where {failing}", failing, params

    def quality_freshness(self, staging: TableRef, column: str) -> str:
        """Age in seconds of the newest value (a value without offset counts as UTC)."""
        newest = f"cast(max({self.quote_ident(column)}) as datetimeoffset(7))"
        return (
            f"select cast(datediff_big(microsecond, {newest}, sysdatetimeoffset()) as float) / 1000000.0 "
            f"from {staging.sql}"
        )
