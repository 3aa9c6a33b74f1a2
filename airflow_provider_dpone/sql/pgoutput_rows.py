"""One table's pgoutput changes as change rows: the batch's columns in its order (each value in
its type's text form, None for NULL), then the operation (``I``, ``U``, ``D``). Pure.

- An update that changes the key is a delete of the old key, then the new row.
- A delete carries the key only; the other columns are NULL (they never reach the target).
- A TOASTed value an update left unchanged is not sent: it is taken from the old row when the
  table has REPLICA IDENTITY FULL, else the batch fails (the new row cannot be written whole).
- The batch's columns are the table's columns now. A change logged before a column was added
  has no value for it: NULL, the column's value then, unless the column has a default (the old
  rows got it), which fails the batch. A change logged with another column type fails it too.
- A truncate of the table fails the batch before anything is applied.

Changes of other tables of the publication are skipped. ``end_lsn`` is the end of the last
commit read: where the next batch starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..contracts.errors import SchemaMismatchError, SourceContractError
from .pgoutput import UNCHANGED, Change, Commit, Message, Relation, Truncate, Tuple

ChangeRow = tuple[list[bytes | None], str]  # (values in batch order, operation)

RESNAPSHOT = (
    "re-snapshot the load: `dpone state reset <manifest> --load <load>` (the next run reads the "
    "table in full and applies it with its deletes)"
)


@dataclass(frozen=True)
class BatchColumns:
    """What a change row holds: the source table, its columns in batch order with their type
    OIDs now, its primary key, and the columns that have a default (or a stored missing value)."""

    schema: str
    table: str
    columns: tuple[str, ...]
    type_oids: Mapping[str, int]
    keys: tuple[str, ...]
    defaulted: frozenset[str] = frozenset()


@dataclass
class _Layout:
    """Where the batch's columns sit in one Relation message's tuples."""

    positions: list[int | None]
    key_positions: list[int]
    full: bool  # REPLICA IDENTITY FULL: an old tuple is the whole row


@dataclass
class ChangeRows:
    """Feeds on decoded messages in order; ``feed`` returns the change rows a message yields."""

    batch: BatchColumns
    layouts: dict[int, _Layout] = field(default_factory=dict)
    end_lsn: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0, "key_changes": 0})
    commits: int = 0

    @property
    def label(self) -> str:
        return f"{self.batch.schema}.{self.batch.table}"

    def feed(self, message: Message) -> list[ChangeRow]:
        if isinstance(message, Change):
            layout = self.layouts.get(message.relation)
            return [] if layout is None else self._rows(message, layout)
        if isinstance(message, Commit):
            self.end_lsn, self.commits = message.end_lsn, self.commits + 1
        elif isinstance(message, Relation):
            if (message.schema, message.name) == (self.batch.schema, self.batch.table):
                self.layouts[message.oid] = self._layout(message)
        elif isinstance(message, Truncate) and any(oid in self.layouts for oid in message.relations):
            raise SourceContractError(
                f"{self.label} was truncated on the source; a change batch cannot apply a truncate. "
                f"Nothing was applied; {RESNAPSHOT}"
            )
        return []

    def _layout(self, relation: Relation) -> _Layout:
        where = {c.name: i for i, c in enumerate(relation.columns)}
        positions: list[int | None] = []
        for name in self.batch.columns:
            at = where.get(name)
            if at is None and name in self.batch.defaulted:
                raise SchemaMismatchError(
                    f"column {name!r} of {self.label} was added with a default after changes in this "
                    "batch were logged; rows those changes did not touch hold the default on the "
                    f"source, which the batch cannot carry. Nothing was applied; {RESNAPSHOT}"
                )
            if at is not None and relation.columns[at].type_oid != self.batch.type_oids[name]:
                raise SchemaMismatchError(
                    f"column {name!r} of {self.label} changed type after changes in this batch were "
                    f"logged (type oid {relation.columns[at].type_oid}, now "
                    f"{self.batch.type_oids[name]}). Nothing was applied; {RESNAPSHOT}"
                )
            positions.append(at)
        full = relation.replica_identity == "f"
        identity = [c.name for c in relation.columns if c.key]
        if not full and sorted(identity) != sorted(self.batch.keys):
            raise SourceContractError(
                f"{self.label}'s replica identity {identity} is not its primary key "
                f"{list(self.batch.keys)}: its deletes would not name the rows to delete. Set ALTER "
                "TABLE ... REPLICA IDENTITY DEFAULT (or FULL)"
            )
        missing_keys = [k for k in self.batch.keys if k not in where]
        if missing_keys:
            raise SchemaMismatchError(f"the changes of {self.label} lack key column(s) {missing_keys}")
        return _Layout(positions, [where[k] for k in self.batch.keys], full)

    def _rows(self, change: Change, layout: _Layout) -> list[ChangeRow]:
        self.counts[change.op] += 1
        if change.op == "D":
            assert change.old is not None  # the decoder refuses a delete without it
            return [self._key_row(change.old, layout)]
        assert change.new is not None
        new = change.new
        if any(p is not None and new[p] is UNCHANGED for p in layout.positions):
            new = self._whole(change, layout)
        rows: list[ChangeRow] = []
        old = change.old
        if old is not None and [old[p] for p in layout.key_positions] != [
            new[p] for p in layout.key_positions
        ]:
            self.counts["key_changes"] += 1
            rows.append(self._key_row(old, layout))  # the row left its old key
        values = [None if p is None else new[p] for p in layout.positions]
        rows.append((values, change.op))  # type: ignore[arg-type]
        return rows

    def _key_row(self, old: Tuple, layout: _Layout) -> ChangeRow:
        keyed = dict(zip(layout.key_positions, (old[p] for p in layout.key_positions), strict=True))
        values = [keyed.get(p) if p is not None else None for p in layout.positions]
        return values, "D"  # type: ignore[return-value]

    def _whole(self, change: Change, layout: _Layout) -> Tuple:
        """The new row with its unchanged TOASTed values taken from the whole old row."""
        assert change.new is not None
        used = [p for p in layout.positions if p is not None]
        if change.old_kind == "O" and change.old is not None:
            merged = [change.old[i] if v is UNCHANGED else v for i, v in enumerate(change.new)]
            if not any(merged[p] is UNCHANGED for p in used):
                return tuple(merged)
        names = [
            n
            for n, p in zip(self.batch.columns, layout.positions, strict=True)
            if p is not None and change.new[p] is UNCHANGED
        ]
        raise SourceContractError(
            f"an update of {self.label} left TOASTed column(s) {names} unchanged, so "
            "the change does not carry their values. Set ALTER TABLE ... REPLICA IDENTITY FULL (the "
            f"old row then carries them) before changes are logged. Nothing was applied; {RESNAPSHOT}"
        )
