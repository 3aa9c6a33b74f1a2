"""The target a strategy maintains: its key, the columns the sink manages itself, and the
rows reconciliation treats as present. Pure, shared by every set-based SQL sink."""

from __future__ import annotations

from ..contracts.errors import BadInputError
from ..contracts.manifest import LoadSpec
from ..contracts.strategies import CHANGE_OP, CHANGE_SEQ, SCD2_COLUMNS, Strategy
from ..contracts.table import CanonicalType, Column, TableSchema

# Strategies that update rows in place: targets dpone creates for them leave room on each page.
UPDATING = frozenset({Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2, Strategy.CDC_APPLY})


# The operation column of a change batch: I, U, D, or S for a row of a full snapshot.
OP_COLUMN = Column(CHANGE_OP, CanonicalType.STRING, nullable=False, length=1)
SEQ_COLUMN = Column(CHANGE_SEQ, CanonicalType.INT64, nullable=False)
_FEED_COLUMNS = (CHANGE_OP, CHANGE_SEQ)


def with_op(schema: TableSchema, *, ordered: bool = False) -> TableSchema:
    """A change batch's columns: the table's, then the operation column (and with ``ordered``,
    the change order: a key may change more than once in the batch)."""
    extra = (OP_COLUMN, SEQ_COLUMN) if ordered else (OP_COLUMN,)
    return TableSchema((*schema.columns, *extra), schema.primary_key, schema.extras)


def data_schema(schema: TableSchema) -> TableSchema:
    """A batch's columns without a change feed's operation and order (staged, never a target's)."""
    if not schema.has(CHANGE_OP):
        return schema
    kept = tuple(c for c in schema.columns if c.name not in _FEED_COLUMNS)
    return TableSchema(kept, schema.primary_key, schema.extras)


def staging_not_null(schema: TableSchema) -> bool:
    """Whether staging keeps the batch's NOT NULL columns: not for a change batch, whose deletes
    carry the key only (the other columns NULL); they never reach the target."""
    return not schema.has(CHANGE_OP)


def target_primary_key(load: LoadSpec, schema: TableSchema) -> tuple[str, ...]:
    """The primary key a target created for this load gets."""
    spec = load.sink
    if spec.strategy in (Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.CDC_APPLY):
        return tuple(spec.unique_key or ())
    if spec.strategy is Strategy.SCD2:
        return (*(spec.unique_key or ()), SCD2_COLUMNS["valid_from"])
    if spec.strategy is Strategy.INCREMENTAL_APPEND and spec.unique_key:
        return tuple(spec.unique_key)  # the key an append skips by: indexed, one row per key
    return schema.primary_key


def managed_columns(load: LoadSpec) -> list[Column]:
    """Target columns the sink maintains itself (validity, soft-delete marker)."""
    if load.sink.strategy is Strategy.SCD2:
        n = SCD2_COLUMNS
        return [
            Column(n["valid_from"], CanonicalType.TIMESTAMPTZ, nullable=False),
            Column(n["valid_to"], CanonicalType.TIMESTAMPTZ),
            Column(n["is_current"], CanonicalType.BOOLEAN, nullable=False),
            Column(n["row_hash"], CanonicalType.STRING, nullable=False),
        ]
    if load.reconciliation.deletes == "soft":
        return [Column(load.reconciliation.soft_delete_column, CanonicalType.TIMESTAMPTZ)]
    return []


def target_schema(load: LoadSpec, schema: TableSchema) -> TableSchema:
    """The source's columns plus the managed ones; a source column may not take their names."""
    managed = managed_columns(load)
    clash = [c.name for c in managed if schema.has(c.name)]
    if clash:
        raise BadInputError(
            f"source columns {clash} collide with columns the {load.sink.strategy.value} sink "
            "manages; rename them in the source query"
        )
    return TableSchema((*schema.columns, *managed), schema.primary_key, schema.extras)


def active_column(load: LoadSpec) -> tuple[str, bool] | None:
    """The managed column telling a present target row from a deleted one: (name, whether
    present means true) for SCD2's current flag, (name, False) for a soft-delete timestamp
    that is NULL while present; None when every row counts."""
    if load.sink.strategy is Strategy.SCD2:
        return SCD2_COLUMNS["is_current"], True
    if load.reconciliation.deletes == "soft":
        return load.reconciliation.soft_delete_column, False
    return None


def require_columns(field: str, columns: list[str], schema: TableSchema | None) -> None:
    """Fail naming ``field`` when a column it lists is not in the batch."""
    if schema is None:
        return
    missing = [c for c in columns if not schema.has(c)]
    if missing:
        raise BadInputError(f"{field}: {missing} not in source columns {schema.names}")
