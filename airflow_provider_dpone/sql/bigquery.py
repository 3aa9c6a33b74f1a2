"""The BigQuery (GoogleSQL) dialect: the finalize statements of every strategy the BigQuery
sink supports, the one transaction script they commit in, and partition decorators, on top of
the names, DDL, catalog and quality fragments of ``sql.bigquery_catalog``. Pure: renders
strings, never connects; ``sql.bigquery_finalize`` plans with it.

How BigQuery differs from the other set-based databases, and what that changes here:

* No locks. A multi-statement transaction (``begin transaction; ...; commit transaction;``
  in one query job) has snapshot isolation; a concurrent mutation of the same table makes one of
  them fail, and the failed one changed nothing. ``advisory_lock`` / ``lock_table`` have no
  BigQuery form and refuse.
* Only DML (and TEMP tables) inside a transaction: no CREATE / ALTER / DROP of a permanent
  table. Schema changes and target creation run before it, each atomic on its own and additive.
* A script takes no query parameters on every backend (the emulator rejects them), so values a
  script needs (a replaced window, the state row) are rendered as typed literals (``inline``).
* One MERGE does an upsert (and reconciliation's deletes, when the batch is the whole source).
  BigQuery fails a MERGE whose target row matches two source rows; dpone's key guards run first.
* No planner statistics (``analyze``) and no partition exchange (``replace_partition``): a
  partition is rewritten by a query job into ``table$partition`` with WRITE_TRUNCATE.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..contracts.errors import BadInputError, UnsupportedError
from ..contracts.table import Column, TableSchema
from .bigquery_catalog import BigQueryCatalog, Partitioning
from .bigquery_types import from_staging, literal
from .dialect import TableRef

LOAD_SEQ = "_dpone_seq"  # a staged row's position: a load job keeps no row order, keep_last needs it
# Expressions the shared planner writes in PostgreSQL, as GoogleSQL (inside a transaction,
# current_timestamp() is the transaction's start: one instant for the whole finalize).
_EXPRESSIONS = {"now()": "current_timestamp()"}
_PARTITION_FORMATS = {"HOUR": "%Y%m%d%H", "DAY": "%Y%m%d", "MONTH": "%Y%m", "YEAR": "%Y"}
# a positional placeholder outside string literals, quoted identifiers and comments
_TOKENS = re.compile(
    r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|`(?:\\.|[^`\\])*`|--[^\n]*|#[^\n]*|/\*.*?\*/|(\?)""", re.S
)


@dataclass(frozen=True)
class Relation(TableRef):
    """Staging read through casts to the target's types (a subquery, aliased where it is used)."""

    query: str = field(default="", kw_only=True)

    @property
    def sql(self) -> str:
        return f"({self.query})"


class BigQueryDialect(BigQueryCatalog):
    """GoogleSQL finalize statements; identifiers quoted, script values typed literals.

    ``truncate_in_transaction``: a full refresh empties the target with TRUNCATE TABLE, which
    BigQuery allows in a transaction and bills nothing for; bqemulator 1.4 does not roll a
    TRUNCATE back with its transaction, so tests against it empty by ``delete ... where true``.
    """

    def __init__(self, *, truncate_in_transaction: bool = True) -> None:
        self.truncate_in_transaction = truncate_in_transaction

    def truncate(self, table: TableRef) -> str:
        if self.truncate_in_transaction:
            return f"truncate table {table.sql}"
        return f"delete from {table.sql} where true"

    # --- scripts ---------------------------------------------------------------------------------

    def inline(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> str:
        """``sql`` with each positional ``?`` replaced by its parameter as a typed literal."""
        if isinstance(params, Mapping):
            raise ValueError("named parameters cannot be inlined; use positional ones")
        values = iter(params)

        def one(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return match.group(0)
            try:
                return literal(next(values))
            except StopIteration:
                raise ValueError(f"fewer parameters than placeholders in: {sql}") from None

        out = _TOKENS.sub(one, sql)
        if next(values, _END) is not _END:
            raise ValueError(f"more parameters than placeholders in: {sql}")
        return out

    def script(self, statements: Sequence[str], extra: Sequence[tuple[str, Any]] = ()) -> str:
        """``statements`` and ``extra`` (the state or journal row, with its parameters) as one
        transaction: one query job that commits all of it or, on any error, none of it."""
        body = [*statements, *(self.inline(sql, params) for sql, params in extra)]
        return ";\n".join(["begin transaction", *body, "commit transaction"]) + ";"

    def assert_rows(self, table: TableRef, rows: int | None) -> str:
        """A statement that fails the script unless ``table`` holds exactly ``rows`` rows (inside
        the transaction, so what it counts is what the script then reads); ``None`` renders the
        count a plan does not know yet."""
        count = "<rows staged>" if rows is None else str(int(rows))
        message = self.quote_literal(
            f"dpone: {table} no longer holds the {count} rows staged; nothing was changed"
        )
        return (
            f"select case when (select count(*) from {table.sql}) <> {count} then error({message}) else 1 end"
        )

    # --- staging as the target's types -----------------------------------------------------------

    def typed_staging(self, staging: TableRef, schema: TableSchema | None) -> TableRef:
        """Staging as a relation of the target's types: itself when no column needs a cast."""
        if schema is None:
            return staging
        items = [from_staging(c, self.quote_ident(c.name)) for c in schema.columns]
        if all(i == self.quote_ident(c.name) for i, c in zip(items, schema.columns, strict=True)):
            return staging
        cols = ", ".join(
            i if i == self.quote_ident(c.name) else f"{i} as {self.quote_ident(c.name)}"
            for i, c in zip(items, schema.columns, strict=True)
        )
        return Relation(
            staging.schema, staging.name, quote=staging.quote, query=f"select {cols} from {staging.sql}"
        )

    # --- what BigQuery has no form of --------------------------------------------------------------

    def advisory_lock(self) -> str:
        raise UnsupportedError(
            "BigQuery has no locks: a finalize is one transaction with snapshot isolation, and a "
            "concurrent change to the same table makes one of them fail without changing anything"
        )

    def lock_table(self, table: TableRef, mode: str = "access exclusive") -> str:
        return self.advisory_lock()

    def analyze(self, table: TableRef, columns: Sequence[str] = ()) -> str:
        raise UnsupportedError("BigQuery keeps no planner statistics to refresh")

    def replace_partition(
        self, parent: TableRef, old: TableRef, new: TableRef, bound: str, constraint: str
    ) -> tuple[list[str], list[str]]:
        raise UnsupportedError(
            "BigQuery has no partition exchange: write table$partition with WRITE_TRUNCATE"
        )

    def swap_in(self, staging: TableRef, target: TableRef, primary_key_constraint: str | None) -> list[str]:
        """Replace ``target`` by a copy of ``staging``: atomic and free (a copy), but DDL, so never
        inside a transaction, and it drops what the old table carried (partitioning, clustering,
        policy tags, descriptions): used only to create a target that does not exist."""
        return [f"create table {target.sql} copy {staging.sql}"]

    # --- keys and reconciliation -------------------------------------------------------------------

    def _key_match(self, keys: Sequence[str], column_map: Mapping[str, str] | None) -> str:
        return " and ".join(
            f"t.{self.quote_ident(self._target_name(column_map, k))} = s.{self.quote_ident(k)}" for k in keys
        )

    def keep_last_per_key(self, staging: TableRef, keys: Sequence[str]) -> str:
        """Delete every staged row a later row (by ``LOAD_SEQ``) of the same key supersedes."""
        same = " and ".join(f"n.{k} is not distinct from s.{k}" for k in map(self.quote_ident, keys))
        seq = self.quote_ident(LOAD_SEQ)
        return (
            f"delete from {staging.sql} as s where exists (select 1 from {staging.sql} as n "
            f"where {same} and n.{seq} > s.{seq})"
        )

    def count_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        active: str = "",
    ) -> str:
        missing = self._missing_from(keyset, keys, column_map)
        gone = f"{active} and {missing}" if active else missing
        every = f" where {active}" if active else ""
        return (
            f"select (select count(*) from {target.sql} as t where {gone}), "
            f"(select count(*) from {target.sql} as t{every})"
        )

    def delete_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
    ) -> str:
        return f"{self._delete_target(target)} where {self._missing_from(keyset, keys, column_map)}"

    def close_missing_keys(
        self,
        target: TableRef,
        keyset: TableRef,
        keys: Sequence[str],
        assignments: Mapping[str, str],
        active: str,
        column_map: Mapping[str, str] | None = None,
        picked: str | None = None,
    ) -> str:
        sets = ", ".join(f"{self.quote_ident(c)} = {_EXPRESSIONS.get(e, e)}" for c, e in assignments.items())
        cond = f"{active} and " if active else ""
        return f"update {target.sql} as t set {sets} where {cond}{picked or self._missing_from(keyset, keys, column_map)}"

    # --- merge, append, scd2 -----------------------------------------------------------------------

    def _changed(self, values: Sequence[str], column_map: Mapping[str, str] | None) -> str:
        """Whether the target row differs from the staged one, NULL-safe and for every type
        (arrays and JSON have no equality): the JSON texts of the two rows differ."""
        t_cols = ", ".join(
            f"t.{self.quote_ident(self._target_name(column_map, c))} as c{i}" for i, c in enumerate(values)
        )
        s_cols = ", ".join(f"s.{self.quote_ident(c)} as c{i}" for i, c in enumerate(values))
        return f"to_json_string(struct({t_cols})) != to_json_string(struct({s_cols}))"

    def merge(
        self,
        target: TableRef,
        source: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        *,
        only_changed: bool = False,
        undelete: str | None = None,
        by_source: str | None = None,
        active: str = "",
    ) -> str:
        """One MERGE: matched keys updated (``only_changed``: when a value differs; ``undelete``
        clears a soft-delete column), new keys inserted; ``by_source`` ("delete", or a SET list)
        applies to ``active`` target rows whose key the source lacks (the source must be the
        whole key set then)."""
        values = [c for c in columns if c not in keys]
        into = self.column_list([self._target_name(column_map, c) for c in columns])
        scols = ", ".join(f"s.{self.quote_ident(c)}" for c in columns)
        sql = f"merge into {target.sql} as t using {source.sql} as s on {self._key_match(keys, column_map)}"
        sets = self._merge_sets(values, column_map, undelete)
        if sets:
            when = []
            if only_changed and values:
                when.append(f"({self._changed(values, column_map)})")
            if only_changed and undelete:
                when.append(f"t.{self.quote_ident(undelete)} is not null")
            cond = f" and ({' or '.join(when)})" if when else ""
            sql += f" when matched{cond} then update set {', '.join(sets)}"
        sql += f" when not matched by target then insert ({into}) values ({scols})"
        if by_source:
            cond = f" and {active}" if active else ""
            action = "delete" if by_source == "delete" else f"update set {by_source}"
            sql += f" when not matched by source{cond} then {action}"
        return sql

    def merge_update(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None = None,
        *,
        only_changed: bool = False,
        undelete: str | None = None,
    ) -> str | None:
        """UPDATE ... FROM of matched rows (the planner here uses ``merge``; kept for the shared one)."""
        values = [c for c in columns if c not in keys]
        if not values and not undelete:
            return None
        sets = self._merge_sets(values, column_map, undelete)
        sql = f"update {target.sql} as t set {', '.join(sets)} from {staging.sql} as s where {self._key_match(keys, column_map)}"
        if only_changed and values:
            sql += f" and ({self._changed(values, column_map)})"
        return sql

    def append_rows(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        mapping: dict[str, str],
        keys: Sequence[str],
    ) -> str:
        """Insert the batch; with a target key, keys already there are skipped (one row per key)."""
        if not keys:
            return self.insert_select(target, staging, names, mapping)
        staged = {self._target_name(mapping, n): n for n in names}
        missing = [k for k in keys if k not in staged]
        if missing:  # never dedupe on part of the key
            raise BadInputError(
                f"append key column(s) {missing} are not in the batch's columns {sorted(staged)}"
            )
        skeys = [staged[k] for k in keys]
        into = self.column_list([self._target_name(mapping, n) for n in names])
        scols = ", ".join(f"s.{self.quote_ident(n)}" for n in names)
        first = f"(select * from {staging.sql} where true qualify row_number() over (partition by {self.column_list(skeys)}) = 1)"
        return (
            f"insert into {target.sql} ({into}) select {scols} from {first} as s where not exists "
            f"(select 1 from {target.sql} as t where {self._key_match(skeys, mapping)})"
        )

    def count_new_keys(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        mapping: dict[str, str],
        keys: Sequence[str],
    ) -> str:
        """How many distinct batch keys the target does not hold (the rows ``append_rows`` adds)."""
        staged = {self._target_name(mapping, n): n for n in names}
        skeys = [staged[k] for k in keys]
        return (
            f"select count(*) from (select distinct {self.column_list(skeys)} from {staging.sql}) as s "
            f"where not exists (select 1 from {target.sql} as t where {self._key_match(skeys, mapping)})"
        )

    def row_hash(self, columns: Sequence[str], alias: str = "s") -> str:
        """SHA-256 (hex) of the row's JSON text: equal values give equal hashes across runs."""
        items = ", ".join(f"{alias}.{self.quote_ident(c)} as c{i}" for i, c in enumerate(columns))
        return f"to_hex(sha256(to_json_string(struct({items}))))"

    def scd2_close_changed(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        current, hashed = self.quote_ident(names["is_current"]), self.quote_ident(names["row_hash"])
        return (
            f"update {target.sql} as t set {self.quote_ident(names['valid_to'])} = current_timestamp(), "
            f"{current} = false from {staging.sql} as s where {self._key_match(keys, column_map)} "
            f"and t.{current} and t.{hashed} != {self.row_hash(columns)}"
        )

    def scd2_insert_versions(
        self,
        target: TableRef,
        staging: TableRef,
        columns: Sequence[str],
        keys: Sequence[str],
        column_map: Mapping[str, str] | None,
        names: Mapping[str, str],
    ) -> str:
        into = self.column_list(
            [self._target_name(column_map, c) for c in columns]
            + [names["valid_from"], names["valid_to"], names["is_current"], names["row_hash"]]
        )
        scols = ", ".join(f"s.{self.quote_ident(c)}" for c in columns)
        current = self.quote_ident(names["is_current"])
        return (
            f"insert into {target.sql} ({into}) select {scols}, current_timestamp(), null, true, "
            f"{self.row_hash(columns)} from {staging.sql} as s where not exists (select 1 from {target.sql} "
            f"as t where {self._key_match(keys, column_map)} and t.{current})"
        )

    # --- replace and partitions ----------------------------------------------------------------------

    def window_predicate(self, column: Column) -> str:
        """``start <= column < end``, the bounds as two positional parameters."""
        col = self.quote_ident(column.name)
        return f"{col} >= ? and {col} < ?"

    def window_between(self, column: Column, start: Any, end: Any) -> str:
        """``start <= column < end`` with the bounds inline, typed as the column (a manifest's
        text bound is cast, never compared as a string)."""

        def bound(value: Any) -> str:
            if isinstance(value, str):
                return f"cast({self.quote_literal(value)} as {self.native_type(column)})"
            return literal(value)

        col = self.quote_ident(column.name)
        return f"{col} >= {bound(start)} and {col} < {bound(end)}"

    def delete_matching_partitions(self, target: TableRef, staging: TableRef, columns: Sequence[str]) -> str:
        """Scoped delete: target rows whose partition values occur in staging (NULLs match)."""
        match = " and ".join(f"t.{c} is not distinct from s.{c}" for c in map(self.quote_ident, columns))
        return f"{self._delete_target(target)} where exists (select 1 from {staging.sql} as s where {match})"

    def count_per_constraint(self, staging: TableRef, constraints: Sequence[str]) -> str:
        counts = ", ".join(f"countif({c})" for c in constraints)
        return f"select count(*), {counts} from {staging.sql}"

    def partition_id(self, column: Column, spec: Partitioning) -> str:
        """The id of the partition a row lands in (``20260131``, ``__NULL__``,
        ``__UNPARTITIONED__``), as BigQuery names it in a decorator."""
        col = self.quote_ident(column.name)
        if spec.kind == "RANGE":
            assert spec.start is not None and spec.end is not None and spec.interval
            bucket = f"{spec.start} + div({col} - {spec.start}, {spec.interval}) * {spec.interval}"
            inside = f"{col} >= {spec.start} and {col} < {spec.end}"
            return f"case when {col} is null then '__NULL__' when {inside} then cast({bucket} as string) else '__UNPARTITIONED__' end"
        fmt = self.quote_literal(_PARTITION_FORMATS[spec.kind])
        native = self.native_type(column)
        if native == "TIMESTAMP":
            text = f"format_timestamp({fmt}, {col}, 'UTC')"
        elif native == "DATETIME" or spec.kind == "HOUR":
            text = f"format_datetime({fmt}, cast({col} as datetime))"
        else:
            text = f"format_date({fmt}, {col})"
        return f"coalesce({text}, '__NULL__')"

    def partition_ids(self, staging: TableRef, column: Column, spec: Partitioning) -> str:
        """The partitions the batch touches, one row each."""
        return f"select distinct {self.partition_id(column, spec)} as p from {staging.sql} order by p"

    def decorated(self, table: TableRef, partition: str) -> str:
        """``project.dataset.table$partition``: a load, copy or query job's destination (API only)."""
        if not re.fullmatch(r"\d{4,10}|__NULL__|__UNPARTITIONED__|-?\d+", partition):
            raise ValueError(f"not a partition id: {partition!r}")
        return f"{table}${partition}"


_END = object()

BIGQUERY = BigQueryDialect()
