"""The partitions of a partitioned SQL Server table, as finalize's ``Leaf`` objects, and what it
takes to switch a rebuilt partition in. Pure: catalog rows in, statements out.

SQL Server partitions are not tables: partition ``n`` of a table on a partition scheme. A
partition is rebuilt in a table of the same shape on the partition's filegroup (same columns,
the same clustered and nonclustered indexes, a trusted CHECK constraint proving its rows fit
the partition's range), then the partition is emptied (``truncate table ... with (partitions
(n))``) and the table switched in (``alter table ... switch to ... partition n``): metadata
only, inside the finalize transaction. The finalize planner sees each partition as a ``Leaf``
whose ``table`` is a ``PartitionSlot``: a table reference that also carries the partition's
number, filegroup and the target's indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..contracts.errors import UnsupportedError
from ..contracts.table import Column
from .dialect import SqlDialect, TableRef
from .finalize import Leaf
from .mssql_types import value_of


def _boundary_text(value: str) -> str:
    """A partition boundary (sql_variant) as text ``value_of`` reads back as the same value."""
    base = f"sql_variant_property({value}, 'BaseType')"
    utc = f"switchoffset(convert(datetimeoffset(7), {value}), '+00:00')"
    return (
        f"case when {base} = 'date' then convert(nvarchar(40), convert(date, {value}), 23) "
        f"when {base} in ('datetime', 'datetime2', 'smalldatetime') "
        f"then convert(nvarchar(40), convert(datetime2(7), {value}), 126) "
        f"when {base} = 'datetimeoffset' then convert(nvarchar(40), convert(datetime2(7), {utc}), 126) + N'Z' "
        f"when {base} in ('binary', 'varbinary') then convert(nvarchar(max), convert(varbinary(max), {value}), 1) "
        f"else convert(nvarchar(4000), {value}) end"
    )


# One row per partition of the table's heap or clustered index, in order: number, filegroup,
# whether boundaries belong to the right partition (RANGE RIGHT), the lower and upper boundary
# as text (NULL at either end), and the partitioning column. Parameter: the table's name.
INTROSPECT_PARTITIONS = f"""
select dds.destination_id, fg.name, pf.boundary_value_on_right,
       {_boundary_text("lo.value")},
       {_boundary_text("hi.value")},
       c.name
from sys.indexes as i
join sys.partition_schemes as ps on ps.data_space_id = i.data_space_id
join sys.partition_functions as pf on pf.function_id = ps.function_id
join sys.index_columns as ic on ic.object_id = i.object_id and ic.index_id = i.index_id and ic.partition_ordinal = 1
join sys.columns as c on c.object_id = ic.object_id and c.column_id = ic.column_id
join sys.destination_data_spaces as dds on dds.partition_scheme_id = ps.data_space_id
join sys.filegroups as fg on fg.data_space_id = dds.data_space_id
left join sys.partition_range_values as lo on lo.function_id = pf.function_id and lo.boundary_id = dds.destination_id - 1
left join sys.partition_range_values as hi on hi.function_id = pf.function_id and hi.boundary_id = dds.destination_id
where i.object_id = object_id(?) and i.index_id in (0, 1) and dds.destination_id <= pf.fanout
order by dds.destination_id
"""

# One row per index column: index id, name, type (1 clustered, 2 nonclustered, others refused),
# unique, primary key, filter, column, key ordinal (0: included), descending, included.
INTROSPECT_INDEXES = """
select i.index_id, i.name, i.type, i.is_unique, i.is_primary_key, i.filter_definition,
       c.name, ic.key_ordinal, ic.is_descending_key, ic.is_included_column
from sys.indexes as i
join sys.index_columns as ic on ic.object_id = i.object_id and ic.index_id = i.index_id
join sys.columns as c on c.object_id = ic.object_id and c.column_id = ic.column_id
where i.object_id = object_id(?) and i.index_id > 0 and i.is_hypothetical = 0 and i.is_disabled = 0
order by i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id
"""

_CLUSTERED, _NONCLUSTERED = 1, 2


@dataclass(frozen=True)
class IndexDef:
    """One rowstore index of the target, as a partition rebuilt for SWITCH must repeat it."""

    name: str
    clustered: bool
    unique: bool
    primary_key: bool
    keys: tuple[tuple[str, bool], ...]  # (column, descending)
    included: tuple[str, ...] = ()
    filter: str | None = None  # sys.indexes.filter_definition: catalog text, never user input


def indexes_from_catalog(rows: Sequence[Sequence[Any]]) -> tuple[IndexDef, ...]:
    """The target's indexes from ``INTROSPECT_INDEXES`` rows; a columnstore, XML or spatial
    index cannot be repeated on a rebuilt partition here and is refused."""
    by_id: dict[int, dict[str, Any]] = {}
    for index_id, name, kind, unique, pk, filt, column, ordinal, desc, included in rows:
        if kind not in (_CLUSTERED, _NONCLUSTERED):
            raise UnsupportedError(
                f"index '{name}' is not a rowstore B-tree (type {kind}); a partition cannot be rebuilt "
                "for SWITCH with it: partition_replace needs the target's indexes to be rowstore"
            )
        entry = by_id.setdefault(
            index_id,
            {"name": name, "clustered": kind == _CLUSTERED, "unique": bool(unique), "pk": bool(pk),
             "filter": filt, "keys": [], "included": []},
        )  # fmt: skip
        if included:
            entry["included"].append(column)
        elif ordinal:
            entry["keys"].append((column, bool(desc)))
    return tuple(
        IndexDef(
            e["name"],
            e["clustered"],
            e["unique"],
            e["pk"],
            tuple(e["keys"]),
            tuple(e["included"]),
            e["filter"],
        )
        for _, e in sorted(by_id.items())
    )


@dataclass(frozen=True)
class PartitionSlot(TableRef):
    """Partition ``number`` of ``schema.<table>``, named like a table so the finalize planner can
    name its rebuilt copy (``sibling``); it carries what the rebuild needs."""

    table_name: str = field(default="", kw_only=True)
    number: int = field(default=1, kw_only=True)
    filegroup: str = field(default="PRIMARY", kw_only=True)
    indexes: tuple[IndexDef, ...] = field(default=(), kw_only=True, compare=False)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table_name} partition {self.number}"


def partition_constraint(
    d: SqlDialect, column: Column, native: str, lower: str | None, upper: str | None, range_right: bool
) -> str:
    """The rows partition (lower, upper) holds, as a predicate on ``column``; catalog boundary
    texts become typed literals. NULLs live in the leftmost partition; every other one states
    ``is not null`` so its CHECK constraint proves the partition's range to SWITCH."""
    col = d.quote_ident(column.name)

    def literal(text: str) -> str:
        return value_of(d.quote_literal(text), native)

    parts = []
    if lower is not None:
        parts.append(f"{col} {'>=' if range_right else '>'} {literal(lower)}")
    if upper is not None:
        parts.append(f"{col} {'<' if range_right else '<='} {literal(upper)}")
    if not parts:
        return "1 = 1"
    if lower is None:
        return f"({parts[0]} or {col} is null)" if column.nullable else parts[0]
    if column.nullable:
        parts.append(f"{col} is not null")
    return " and ".join(parts)


def partition_leaves(
    d: SqlDialect,
    target: TableRef,
    column: Column,
    native: str,
    rows: Sequence[Sequence[Any]],
    indexes: tuple[IndexDef, ...],
) -> tuple[Leaf, ...]:
    """Finalize's leaves of a partitioned target from ``INTROSPECT_PARTITIONS`` rows;
    ``column`` is the partitioning column as the target's catalog describes it."""
    leaves = []
    for number, filegroup, range_right, lower, upper, _column in rows:
        slot = PartitionSlot(
            target.schema,
            f"p{int(number)}_{target.name}"[:100],
            quote=d.quote_ident,
            table_name=target.name,
            number=int(number),
            filegroup=filegroup,
            indexes=indexes,
        )
        constraint = partition_constraint(d, column, native, lower, upper, bool(range_right))
        leaves.append(Leaf(slot, target, str(int(number)), constraint))
    return tuple(leaves)


def clone_indexes(d: SqlDialect, table: TableRef, indexes: Sequence[IndexDef], filegroup: str) -> list[str]:
    """The target's indexes repeated on ``table`` (on ``filegroup``), so it can be switched in."""
    statements = []
    for i, index in enumerate(indexes):
        kind = "clustered" if index.clustered else "nonclustered"
        keys = ", ".join(d.quote_ident(c) + (" desc" if desc else "") for c, desc in index.keys)
        on = f" on {d.quote_ident(filegroup)}"
        if index.primary_key:
            name = d.quote_ident(f"{table.name[:100]}_pk")
            statements.append(
                f"alter table {table.sql} add constraint {name} primary key {kind} ({keys}){on}"
            )
            continue
        unique = "unique " if index.unique else ""
        include = f" include ({d.column_list(index.included)})" if index.included else ""
        where = f" where {index.filter}" if index.filter else ""
        statements.append(
            f"create {unique}{kind} index {d.quote_ident(f'dpone_ix{i}')} on {table.sql} ({keys}){include}{where}{on}"
        )
    return statements
