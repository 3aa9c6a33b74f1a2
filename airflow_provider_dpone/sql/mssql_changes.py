"""SQL Server's change feeds, rendered: Change Tracking (``incremental.mode: change_tracking``)
and CDC (``incremental.mode: cdc``). Pure: strings and parameter orders, never a connection.

Both read a table's changes since the stored position as rows of the table's columns plus the
operation column ``CHANGE_OP`` (``I`` insert, ``U`` update, ``D`` delete; ``S`` a row of a
full snapshot), one row per changed key (CHANGETABLE is net; of CDC's changes the last one of
each key is kept), in change order; the sink applies them with ``cdc_apply``.

- Change Tracking: in one SNAPSHOT transaction (Microsoft's recommended pattern), the current
  version and the table's minimum valid version, then ``CHANGETABLE(CHANGES t, @last)`` joined
  back to the table for the current values (a deleted row's non-key columns are NULL). A stored
  version below the minimum valid one means changes were cleaned up: the load fails.
- CDC: the capture instance's lowest and the database's highest LSN, then the last change per
  key of ``cdc.fn_cdc_get_all_changes_<instance>(from, to, N'all')`` over ``(stored, max]``. A
  stored LSN below the instance's lowest one means changes were cleaned up, above the highest
  one that the database went back in time (a restore, a failover): the load fails.

Without a stored position both read the table in full as a snapshot (``S`` rows) and store the
position read before it: changes after that point are re-applied on the next run, which
converges (an upsert or a delete applied twice leaves the same row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..contracts.strategies import CHANGE_OP
from .dialect import TableRef
from .mssql_catalog import MsSqlCatalog

LSN_ZERO = "0x00000000000000000000"  # what fn_cdc_get_min_lsn answers for an unknown capture instance


def _lsn(param: str) -> str:
    return f"convert(binary(10), {param}, 1)"


def _lsn_text(expr: str) -> str:
    return f"convert(varchar(22), {expr}, 1)"


class MsSqlChanges:
    """Change Tracking and CDC reads in T-SQL, over the catalog's quoting."""

    def __init__(self, catalog: MsSqlCatalog) -> None:
        self.d = catalog

    # --- snapshot transaction --------------------------------------------------------------------

    @staticmethod
    def begin_snapshot() -> str:
        """One consistent read of the position and the changes (needs ALLOW_SNAPSHOT_ISOLATION)."""
        return "set transaction isolation level snapshot; begin transaction;"

    # --- Change Tracking -------------------------------------------------------------------------

    @staticmethod
    def ct_versions() -> str:
        """One row: the database's current version, the table's minimum valid version, whether
        the table is tracked. Parameters: the table's name, twice."""
        return (
            "select change_tracking_current_version(), "
            "change_tracking_min_valid_version(object_id(?)), "
            "case when exists (select 1 from sys.change_tracking_tables as ct "
            "where ct.object_id = object_id(?)) then 1 else 0 end"
        )

    def _items(self, columns: Sequence[str], casts: Mapping[str, str], alias: str = "", keys_alias: str = "",
               keys: Sequence[str] = ()) -> str:  # fmt: skip
        """The select list: each column from ``alias`` (keys from ``keys_alias``), converted
        where ``casts`` says (xml and the old large types, as every other extract reads them)."""
        q = self.d.quote_ident
        items = []
        for c in columns:
            prefix = f"{keys_alias}." if c in keys and keys_alias else f"{alias}." if alias else ""
            expr = f"{prefix}{q(c)}"
            items.append(f"cast({expr} as {casts[c]}) as {q(c)}" if c in casts else expr)
        return ", ".join(items)

    def ct_changes(
        self, table: TableRef, columns: Sequence[str], keys: Sequence[str], casts: Mapping[str, str]
    ) -> str:
        """The rows changed after version ``?`` up to version ``?`` (parameters in that order),
        keys from CHANGETABLE, other columns from the table (NULL for a deleted row), in change
        order. CHANGETABLE is net: one row per key."""
        q = self.d.quote_ident
        on = " and ".join(f"t.{q(k)} = ct.{q(k)}" for k in keys)
        return (
            f"select {self._items(columns, casts, 't', 'ct', keys)}, "
            f"cast(ct.SYS_CHANGE_OPERATION as nchar(1)) as {q(CHANGE_OP)} "
            f"from changetable(changes {table.sql}, ?) as ct "
            f"left join {table.sql} as t on {on} "
            "where ct.SYS_CHANGE_VERSION <= ? "
            "order by ct.SYS_CHANGE_VERSION"
        )

    # --- CDC -------------------------------------------------------------------------------------

    @staticmethod
    def cdc_positions() -> str:
        """One row: the capture instance's lowest LSN and the database's highest, as ``0x`` text.
        Parameter: the capture instance."""
        return f"select {_lsn_text('sys.fn_cdc_get_min_lsn(?)')}, {_lsn_text('sys.fn_cdc_get_max_lsn()')}"

    @staticmethod
    def cdc_next_lsn() -> str:
        """One row: the LSN after ``?`` (the stored one), as ``0x`` text."""
        increment = "sys.fn_cdc_increment_lsn(" + _lsn("?") + ")"
        return f"select {_lsn_text(increment)}"

    @staticmethod
    def cdc_captured_columns() -> str:
        """The columns the capture instance ``?`` records."""
        return (
            "select cc.column_name from cdc.captured_columns as cc "
            "join cdc.change_tables as ch on ch.object_id = cc.object_id "
            "where ch.capture_instance = ? order by cc.column_ordinal"
        )

    def cdc_changes(
        self, capture_instance: str, columns: Sequence[str], keys: Sequence[str], casts: Mapping[str, str]
    ) -> str:
        """The last change per key from LSN ``?`` to LSN ``?`` (``0x`` text, in that order), in
        change order. Read from every change (``fn_cdc_get_all_changes``), not the net-change
        function: a row inserted and deleted inside the range has no net change, yet a snapshot
        taken while the capture job lagged may hold it, so its delete must arrive."""
        q = self.d.quote_ident
        function = f"cdc.{q('fn_cdc_get_all_changes_' + capture_instance)}"
        order = "order by a.[__$start_lsn] desc, a.[__$seqval] desc, a.[__$operation] desc"
        last = f"row_number() over (partition by {', '.join(f'a.{q(k)}' for k in keys)} {order})"
        op = f"case c.[__$operation] when 1 then N'D' when 2 then N'I' else N'U' end as {q(CHANGE_OP)}"
        return (
            f"select {self._items(columns, casts, 'c')}, {op} "
            f"from (select a.*, {last} as [dpone_last] "
            f"from {function}({_lsn('?')}, {_lsn('?')}, N'all') as a) as c "
            "where c.[dpone_last] = 1 "
            "order by c.[__$start_lsn], c.[__$seqval]"
        )

    def no_changes(self, table: TableRef, columns: Sequence[str], casts: Mapping[str, str]) -> str:
        """The batch's columns and no row: nothing happened since the stored position."""
        return f"select {self._items(columns, casts)}, N'U' as {self.d.quote_ident(CHANGE_OP)} from {table.sql} where 1 = 0"

    # --- a full snapshot (no stored position) ----------------------------------------------------

    def snapshot_rows(self, table: TableRef, columns: Sequence[str], casts: Mapping[str, str]) -> str:
        """Every row of the table, marked ``S``: the first load, or after the state was reset."""
        return (
            f"select {self._items(columns, casts)}, N'S' as {self.d.quote_ident(CHANGE_OP)} from {table.sql}"
        )
