"""``cdc_apply`` on ClickHouse: a change batch staged with its operation (and order, where a key
changes more than once in it) applied to the target. Pure.

ClickHouse has no multi-statement transaction, so the batch is applied in steps that a retry
repeats to the same end (the state commits only after the last):

1. the key guards: no NULL key; a key staged twice only where the batch carries its order;
2. what the batch will do, measured before anything changes (the run report's counts);
3. a full snapshot (the first read, or after a reset) first deletes the target's keys it does
   not hold, within ``reconciliation.max_delete_fraction`` (counted before);
4. a lightweight DELETE of every key the batch changes;
5. the last change of each key that is not a delete, inserted.

Between 4 and 5 a reader sees the changed keys missing; a crash there is repaired by the
retry, which deletes the same keys and inserts the same rows again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..contracts.strategies import CHANGE_OP, CHANGE_SEQ
from ..contracts.table import TableSchema
from .clickhouse import ClickHouseDialect
from .dialect import TableRef


class ClickHouseChanges:
    """The statements of ``cdc_apply``, over the dialect's quoting."""

    def __init__(self, d: ClickHouseDialect) -> None:
        self.d = d

    def staging_schema(self, schema: TableSchema, keys: Sequence[str]) -> TableSchema:
        """A change batch's staging columns: nullable but for the keys (a delete carries its key
        only)."""
        from dataclasses import replace

        columns = tuple(
            c if c.name in keys or c.name in (CHANGE_OP, CHANGE_SEQ) else replace(c, nullable=True)
            for c in schema.columns
        )
        return TableSchema(columns, schema.primary_key, schema.extras)

    def last_changes(self, staging: TableRef, keys: Sequence[str], ordered: bool) -> str:
        """The last change of each key (the batch holds each key once when not ``ordered``)."""
        if not ordered:
            return f"select * from {staging.sql}"
        seq = self.d.quote_ident(CHANGE_SEQ)
        return f"select * from {staging.sql} order by {seq} desc limit 1 by {self.d.column_list(keys)}"

    def measure(
        self,
        target: TableRef | None,
        staging: TableRef,
        keys: Sequence[str],
        ordered: bool,
        mapping: Mapping[str, str] | None = None,
    ) -> str:
        """(deletes of keys the target holds, changed rows whose key it holds, the others) of the
        last changes."""
        op, cols = self.d.quote_ident(CHANGE_OP), self.d.column_list(keys)
        held = "false"
        if target is not None:
            held = f"({cols}) in (select {self.d.column_list([_mapped(mapping, k) for k in keys])} from {target.sql})"
        return (
            f"select countIf({op} = 'D' and {held}), countIf({op} != 'D' and {held}), "
            f"countIf({op} != 'D' and not {held}) from ({self.last_changes(staging, keys, ordered)})"
        )

    def _in_staging(self, staging: TableRef, keys: Sequence[str], mapping: Mapping[str, str] | None) -> str:
        """``(target keys) in (staging keys)``: a target row whose key the batch holds."""
        tcols, scols = self.d.column_list([_mapped(mapping, k) for k in keys]), self.d.column_list(keys)
        return f"({tcols}) in (select {scols} from {staging.sql})"

    def count_missing_keys(
        self,
        target: TableRef,
        staging: TableRef,
        keys: Sequence[str],
        mapping: Mapping[str, str] | None = None,
    ) -> str:
        """(target rows whose key the snapshot lacks, all target rows)."""
        return f"select countIf(not {self._in_staging(staging, keys, mapping)}), count() from {target.sql}"

    def delete_missing_keys(
        self,
        target: TableRef,
        staging: TableRef,
        keys: Sequence[str],
        mapping: Mapping[str, str] | None = None,
    ) -> str:
        """Lightweight DELETE of the target rows whose key a full snapshot lacks."""
        return f"delete from {target.sql} where not {self._in_staging(staging, keys, mapping)}"

    def delete_changed_keys(
        self,
        target: TableRef,
        staging: TableRef,
        keys: Sequence[str],
        mapping: Mapping[str, str] | None = None,
    ) -> str:
        """Lightweight DELETE of the target rows of every key the batch changes."""
        return f"delete from {target.sql} where {self._in_staging(staging, keys, mapping)}"

    def insert_last(
        self,
        target: TableRef,
        staging: TableRef,
        names: Sequence[str],
        keys: Sequence[str],
        ordered: bool,
        mapping: Mapping[str, str] | None = None,
    ) -> str:
        """Insert the last change of each key that is not a delete (``names``: the batch's data
        columns, written to their target names). A NULL bound for a column that takes none
        fails the insert instead of becoming the column's default."""
        into = self.d.column_list([_mapped(mapping, n) for n in names])
        cols, op = self.d.column_list(names), self.d.quote_ident(CHANGE_OP)
        last = self.last_changes(staging, keys, ordered)
        return (
            f"insert into {target.sql} ({into}) select {cols} from ({last}) where {op} != 'D' "
            "settings insert_null_as_default = 0"
        )


def _mapped(mapping: Mapping[str, str] | None, name: str) -> str:
    return (mapping or {}).get(name, name)
