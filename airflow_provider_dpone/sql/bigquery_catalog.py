"""BigQuery's half of the dialect that names, describes and creates things: backtick quoting
of ``project.dataset.table`` paths, table DDL (target and staging), schema-evolution DDL,
INFORMATION_SCHEMA reads, the state and journal tables, and the quality fragments measured on
staging. Pure: renders strings, never connects; ``sql.bigquery`` adds finalize.

Values travel as positional ``?`` parameters in single statements (BigQuery binds them to
``ScalarQueryParameter(None, ...)``); a multi-statement script takes none (``inline``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.table import Column, TableSchema
from ..schema.planner import ChangeKind, SchemaChange
from .bigquery_types import (
    DIALECT,
    column_from_field,
    native_type,
    quote_string,
    staging_type,
)
from .dialect import SAMPLE_LIMIT, TableRef
from .finalize_dialect import SetBasedDialect

STAGING_EXPIRATION_DAYS = 7  # BigQuery drops staging a killed run leaves behind, whatever the sweep does
STAGING_LABEL = ("dpone", "staging")


@dataclass(frozen=True)
class Partitioning:
    """How a table is partitioned, as ``tables.get`` describes it."""

    kind: str  # DAY | HOUR | MONTH | YEAR (time-unit column) | RANGE (integer range)
    column: str | None  # None: ingestion-time partitioning (_PARTITIONTIME)
    start: int | None = None  # integer range: first bucket
    end: int | None = None
    interval: int | None = None

    @classmethod
    def from_api(cls, resource: Mapping[str, Any]) -> Partitioning | None:
        """From a ``tables.get`` resource (``Table.to_api_repr()``)."""
        if "timePartitioning" in resource:
            tp = resource["timePartitioning"]
            return cls(str(tp.get("type", "DAY")).upper(), tp.get("field"))
        if "rangePartitioning" in resource:
            rp = resource["rangePartitioning"]
            r = rp.get("range", {})
            return cls("RANGE", rp.get("field"), int(r["start"]), int(r["end"]), int(r["interval"]))
        return None


def schema_from_api(fields: Sequence[Mapping[str, Any]], primary_key: Sequence[str] = ()) -> TableSchema:
    """A table's columns from its REST schema (``tables.get`` ``schema.fields``)."""
    columns = []
    for f in fields:
        ftype = str(f.get("type", "STRING")).upper()
        native = _struct_type(f) if ftype in ("RECORD", "STRUCT") else None
        columns.append(
            column_from_field(
                f["name"],
                ftype,
                str(f.get("mode") or "NULLABLE"),
                precision=int(f["precision"]) if f.get("precision") else None,
                scale=int(f["scale"]) if f.get("scale") else None,
                max_length=int(f["maxLength"]) if f.get("maxLength") else None,
                native=native,
            )
        )
    return TableSchema(tuple(columns), tuple(primary_key))


def _struct_type(field: Mapping[str, Any]) -> str:
    parts = []
    for sub in field.get("fields", []):
        kind = str(sub.get("type", "STRING")).upper()
        inner = (
            _struct_type(sub) if kind in ("RECORD", "STRUCT") else column_from_field("x", kind).native_type
        )
        if str(sub.get("mode", "")).upper() == "REPEATED":
            inner = f"ARRAY<{inner}>"
        parts.append(f"{sub['name']} {inner}")
    return f"STRUCT<{', '.join(parts)}>"


class BigQueryCatalog(SetBasedDialect):
    """Names, DDL, catalog reads and quality fragments in GoogleSQL."""

    DIALECT = DIALECT
    DEFAULT_SCHEMA = ""  # BigQuery has no default dataset: a table is dataset.table or project.dataset.table

    # --- names ---------------------------------------------------------------------------------

    def quote_ident(self, name: str) -> str:
        """A backtick-quoted identifier (column, table, dataset or project id)."""
        if not name or any(c in name for c in "\x00\n\r"):
            raise BadInputError(f"invalid BigQuery identifier {name!r}")
        return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def quote_literal(self, text: str) -> str:
        return quote_string(text)

    def _quote_path(self, path: str) -> str:
        """``dataset`` or ``project.dataset`` (a dataset id holds no dot; a legacy
        ``example.com:project`` id does), each part quoted."""
        project, _, dataset = path.rpartition(".")
        return (
            f"{self.quote_ident(project)}.{self.quote_ident(dataset)}" if project else self.quote_ident(path)
        )

    def table(self, schema: str, name: str) -> TableRef:
        if not schema:
            raise BadInputError(f"BigQuery table '{name}' needs a dataset: name it dataset.{name}")
        return TableRef(schema, name, quote=self._quote_path)

    def parse_table(self, ref: str, default_schema: str | None = None) -> TableRef:
        """``project.dataset.table``, ``dataset.table``, or ``table`` in ``default_schema``."""
        path, _, name = ref.strip().strip("`").rpartition(".")
        if not path and not default_schema:
            raise BadInputError(f"BigQuery table '{ref}': name it dataset.table or project.dataset.table")
        return self.table(path or default_schema or "", name)

    def information_schema(self, dataset: str, view: str) -> str:
        return f"{self._quote_path(dataset)}.INFORMATION_SCHEMA.{view}"

    # --- types and DDL ---------------------------------------------------------------------------

    def native_type(self, column: Column) -> str:
        return native_type(column)

    def create_schema(self, schema: str) -> str:
        """A dataset; the sink creates it through the API where it must pin the location."""
        return f"create schema if not exists {self._quote_path(schema)}"

    def _columns_ddl(self, schema: TableSchema, typed: Any, not_null: bool) -> list[str]:
        out = []
        for c in schema.columns:
            required = not_null and not c.nullable and not typed(c).startswith("ARRAY<")
            out.append(f"{self.quote_ident(c.name)} {typed(c)}" + (" not null" if required else ""))
        return out

    def create_table(
        self,
        table: TableRef,
        schema: TableSchema,
        *,
        primary_key: Sequence[str] = (),
        unlogged: bool = False,
        if_not_exists: bool = False,
        not_null: bool = True,
        fillfactor: int | None = None,
        partition_by: str | None = None,
        cluster_by: Sequence[str] = (),
        key_constraint: bool = False,
    ) -> str:
        """A target table. ``unlogged`` and ``fillfactor`` mean nothing in BigQuery. A primary key
        is only declared (``not enforced``) when ``key_constraint``: the optimizer may use it,
        nothing checks it, so dpone's key guards stay the check."""
        cols = self._columns_ddl(schema, self.native_type, not_null)
        if key_constraint and primary_key:
            cols.append(f"primary key ({self.column_list(primary_key)}) not enforced")
        head = "create table if not exists" if if_not_exists else "create table"
        ddl = f"{head} {table.sql} ({', '.join(cols)})"
        if partition_by:
            ddl += f" partition by {partition_by}"
        if cluster_by:
            ddl += f" cluster by {self.column_list(cluster_by[:4])}"
        return ddl

    def create_staging_table(
        self, table: TableRef, schema: TableSchema, label: str, expiration_days: int = STAGING_EXPIRATION_DAYS
    ) -> str:
        """The staging table a Parquet load job fills: the staged file's types, every column
        NULLABLE (a Parquet column is OPTIONAL, which a REQUIRED column refuses), the run's label
        as its description, and an expiration so a killed run's table goes away by itself."""
        cols = self._columns_ddl(schema, staging_type, not_null=False)
        options = (
            f"description = {quote_string(label)}, labels = [({quote_string(STAGING_LABEL[0])}, "
            f"{quote_string(STAGING_LABEL[1])})], expiration_timestamp = "
            f"timestamp_add(current_timestamp(), interval {int(expiration_days)} day)"
        )
        return f"create table if not exists {table.sql} ({', '.join(cols)}) options ({options})"

    def staging_load_schema(self, schema: TableSchema) -> list[dict[str, str]]:
        """The load job's ``schema.fields`` for the staging table (REST shape)."""
        fields = []
        for c in schema.columns:
            typ = staging_type(c)
            repeated = typ.startswith("ARRAY<")
            fields.append(
                {
                    "name": c.name,
                    "type": typ[6:-1] if repeated else typ,
                    "mode": "REPEATED" if repeated else "NULLABLE",
                }
            )
        return fields

    def add_column_if_missing(self, table: TableRef, name: str, native: str) -> str:
        return f"alter table {table.sql} add column if not exists {self.quote_ident(name)} {native}"

    def add_primary_key(self, table: TableRef, primary_key: Sequence[str], constraint: str) -> str:
        return f"alter table {table.sql} add primary key ({self.column_list(primary_key)}) not enforced"

    def schema_change_ddl(self, table: TableRef, change: SchemaChange) -> list[str]:
        """One ALTER per change, one action each (the emulator refuses several in one). Never in
        the transaction: BigQuery refuses DDL on permanent tables there, so these run before it,
        each atomic on its own, additive, and safe to repeat."""
        if change.kind in (ChangeKind.ADD_COLUMN, ChangeKind.NEW_COLUMN):
            column = change.result or change.source
            assert column is not None
            return [self.add_column_if_missing(table, column.name, self.native_type(column))]
        if change.kind is ChangeKind.WIDEN:
            assert change.result is not None
            col, new = self.quote_ident(change.column), self.native_type(change.result)
            return [f"alter table {table.sql} alter column {col} set data type {new}"]
        if change.kind is ChangeKind.RELAX_NOT_NULL:
            return [f"alter table {table.sql} alter column {self.quote_ident(change.column)} drop not null"]
        raise ValueError(f"{change.kind.value} is not a change that is applied: {change.describe()}")

    # --- catalog reads ---------------------------------------------------------------------------

    def columns_query(self, table: TableRef) -> tuple[str, tuple[str]]:
        """(column_name, data_type, is_nullable) in order; the sink prefers ``tables.get``."""
        view = self.information_schema(table.schema, "COLUMNS")
        query = f"select column_name, data_type, is_nullable from {view} where table_name = ? order by ordinal_position"
        return query, (table.name,)

    def table_exists(self, table: TableRef) -> tuple[str, Any]:
        view = self.information_schema(table.schema, "TABLES")
        return f"select count(*) > 0 from {view} where table_name = ?", (table.name,)

    def now_epoch(self) -> str:
        return "select unix_seconds(current_timestamp())"

    def _descriptions(self, schema: str) -> str:
        """Tables' descriptions as text: TABLE_OPTIONS holds each as a quoted literal, which
        ``json_value(..., '$')`` reads back."""
        view = self.information_schema(schema, "TABLE_OPTIONS")
        return f"select table_name, json_value(option_value, '$') as comment from {view} where option_name = 'description'"

    def staging_tables(self, schema: str) -> tuple[str, Any]:
        return f"select * from ({self._descriptions(schema)}) where starts_with(comment, ?)", (
            '{"dpone_staging"',
        )

    def table_comment(self, table: TableRef) -> tuple[str, Any]:
        return f"select comment from ({self._descriptions(table.schema)}) where table_name = ?", (table.name,)

    def set_comment(self, table: TableRef, text: str) -> str:
        return f"alter table {table.sql} set options (description = {quote_string(text)})"

    # --- state table and crash journal -----------------------------------------------------------

    def create_state_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"create table if not exists {table.sql} (pipeline string not null, `load` string not null, "
            "state string not null, run_id string, updated_at timestamp not null) cluster by pipeline, `load`",
        ]

    def select_state(self, table: TableRef) -> str:
        return f"select state from {table.sql} where pipeline = ? and `load` = ?"

    def list_state(self, table: TableRef) -> str:
        return (
            f"select pipeline, `load`, state, run_id, cast(updated_at as string) from {table.sql} "
            "where pipeline = ? order by `load`"
        )

    def upsert_state(self, table: TableRef) -> str:
        """One row per (pipeline, load): a MERGE (no unique constraints in BigQuery)."""
        return (
            f"merge into {table.sql} as t using (select ? as pipeline, ? as `load`, ? as state, ? as run_id) as s "
            "on t.pipeline = s.pipeline and t.`load` = s.`load` "
            "when matched then update set state = s.state, run_id = s.run_id, updated_at = current_timestamp() "
            "when not matched then insert (pipeline, `load`, state, run_id, updated_at) "
            "values (s.pipeline, s.`load`, s.state, s.run_id, current_timestamp())"
        )

    def delete_state(self, table: TableRef) -> str:
        return f"delete from {table.sql} where pipeline = ? and `load` = ?"

    def create_journal_table(self, table: TableRef) -> list[str]:
        return [
            self.create_schema(table.schema),
            f"create table if not exists {table.sql} (pipeline string not null, `load` string not null, "
            "run_id string not null, state_before string, state_after string not null, "
            "finalized_at timestamp not null, acknowledged bool not null) cluster by pipeline, `load`",
        ]

    def upsert_journal(self, table: TableRef) -> str:
        """Parameters (pipeline, load, run_id, before, after), the states as JSON text."""
        return (
            f"merge into {table.sql} as t using (select ? as pipeline, ? as `load`, ? as run_id, "
            "? as state_before, ? as state_after) as s on t.pipeline = s.pipeline and t.`load` = s.`load` "
            "when matched then update set run_id = s.run_id, state_before = s.state_before, "
            "state_after = s.state_after, finalized_at = current_timestamp(), acknowledged = false "
            "when not matched then insert (pipeline, `load`, run_id, state_before, state_after, finalized_at, "
            "acknowledged) values (s.pipeline, s.`load`, s.run_id, s.state_before, s.state_after, "
            "current_timestamp(), false)"
        )

    def select_pending_journal(self, table: TableRef) -> str:
        return (
            f"select run_id, state_before, state_after from {table.sql} "
            "where pipeline = ? and `load` = ? and not acknowledged"
        )

    def acknowledge_journal(self, table: TableRef) -> str:
        return f"update {table.sql} set acknowledged = true where pipeline = ? and `load` = ? and run_id = ?"

    # --- quality gates and key guards on staging ---------------------------------------------------

    def _any_null(self, columns: Sequence[str]) -> str:
        return " or ".join(f"{self.quote_ident(c)} is null" for c in columns)

    def null_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        """(rows with a NULL in a key column, up to ``limit`` of their keys as JSON objects)."""
        cond = self._any_null(keys)
        keys_json = f"to_json_string(struct({self.column_list(keys)}))"
        sample = f"select {keys_json} as k from {staging.sql} where {cond} limit {int(limit)}"
        return (
            f"select (select count(*) from {staging.sql} where {cond}), (select array_agg(k) from ({sample}))"
        )

    def duplicate_keys(self, staging: TableRef, keys: Sequence[str], limit: int = SAMPLE_LIMIT) -> str:
        k = self.column_list(keys)
        return (
            f"select {k}, count(*) as n from {staging.sql} group by {k} having count(*) > 1 "
            f"order by n desc limit {int(limit)}"
        )

    def quality_not_null(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        failing = self._any_null(columns)
        per_column = ", ".join(f"countif({self.quote_ident(c)} is null)" for c in columns)
        return f"select countif({failing}), {per_column} from {staging.sql}", failing

    def quality_unique(self, staging: TableRef, columns: Sequence[str]) -> tuple[str, str]:
        cols = self.column_list(columns)
        present = " and ".join(f"{self.quote_ident(c)} is not null" for c in columns)
        groups = f"select {cols} from {staging.sql} where {present} group by {cols} having count(*) > 1"
        counts = f"select count(*), coalesce(sum(n), 0) from (select count(*) as n from {staging.sql} where {present} group by {cols} having count(*) > 1)"
        keyed = f"to_json_string(struct({cols}))"
        return counts, f"{keyed} in (select to_json_string(struct({cols})) from ({groups}))"

    def quality_accepted_values(
        self, staging: TableRef, column: Column, values: Sequence[object]
    ) -> tuple[str, str, tuple[list[str]]]:
        """Compared as text (one STRING array parameter, whatever the column's type)."""
        col = self.quote_ident(column.name)
        failing = f"{col} is not null and cast({col} as string) not in unnest(?)"
        return f"select count(*) from {staging.sql} where {failing}", failing, ([str(v) for v in values],)

    def quality_freshness(self, staging: TableRef, column: str) -> str:
        """Age in seconds of the newest value; a DATETIME or DATE counts as UTC."""
        newest = f"timestamp(cast(max({self.quote_ident(column)}) as datetime))"
        return f"select timestamp_diff(current_timestamp(), {newest}, second) from {staging.sql}"
