"""The shared schema-evolution planner: compare a source schema with a target, return a plan.

Pure: no Airflow, no driver. Dialects introspect the target and render the plan's DDL; this
module only decides. Safe changes (add a column, widen a type, relax NOT NULL) are applied
before the load; breaking ones (a dropped column, a narrowed or incompatible type) fail the
load before the target is touched, unless ``on_type_change: new_column`` routes a changed
column into a new ``<column>__<type>`` column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ..contracts.errors import SchemaMismatchError
from ..contracts.table import CanonicalType, Column, TableSchema


class EvolutionMode(str, Enum):
    SAFE = "safe"  # apply safe changes, fail on breaking ones
    # like safe, but a column added to a target that this load does not rewrite whole (its
    # existing rows would stay NULL) fails instead of being added with a warning
    STRICT = "strict"
    FAIL = "fail"  # refuse any change
    PLAN_ONLY = "plan_only"  # report, apply nothing, leave target and state untouched


class OnTypeChange(str, Enum):
    FAIL = "fail"
    NEW_COLUMN = "new_column"


class ChangeKind(str, Enum):
    ADD_COLUMN = "add_column"
    WIDEN = "widen"
    RELAX_NOT_NULL = "relax_not_null"
    NEW_COLUMN = "new_column"  # a changed type goes to <column>__<type>
    TARGET_ONLY = "target_only"  # a nullable or defaulted target column the source does not send
    DROP = "drop"  # a NOT NULL target column without a default that the source does not send
    NARROW = "narrow"  # the source type is narrower than the target's
    INCOMPATIBLE = "incompatible"


SAFE_KINDS = frozenset(
    {
        ChangeKind.ADD_COLUMN,
        ChangeKind.WIDEN,
        ChangeKind.RELAX_NOT_NULL,
        ChangeKind.NEW_COLUMN,
        ChangeKind.TARGET_ONLY,
    }
)
# Kinds that need no DDL: the plan reports them, nothing is applied.
_NO_DDL = frozenset({ChangeKind.TARGET_ONLY})

_INT_RANK = {CanonicalType.INT16: 1, CanonicalType.INT32: 2, CanonicalType.INT64: 3}
_INT_DIGITS = {CanonicalType.INT16: 5, CanonicalType.INT32: 10, CanonicalType.INT64: 19}
_FLOAT_RANK = {CanonicalType.FLOAT32: 1, CanonicalType.FLOAT64: 2}


def type_label(column: Column) -> str:
    """A short, dialect-neutral spelling of a column's type, for messages and reports."""
    t = column.type
    if t is CanonicalType.DECIMAL:
        return "decimal" if column.precision is None else f"decimal({column.precision},{column.scale or 0})"
    if t is CanonicalType.STRING:
        return f"string({column.length})" if column.length else "string"
    if t is CanonicalType.ARRAY:
        return f"array<{(column.element or CanonicalType.UNKNOWN).value}>"
    if t is CanonicalType.UNKNOWN and column.native_type:
        return column.native_type
    return t.value


def new_column_name(column: str, source: Column) -> str:
    """``<column>__<type>``: where values go when ``on_type_change: new_column`` applies."""
    return f"{column}__{source.type.value}"


def compare_types(source: Column, target: Column) -> ChangeKind | None:
    """None when the target type is exactly the source's; else how the source differs.

    WIDEN: the target must grow to hold the source (int -> bigint, varchar(n) -> larger varchar
    or text, numeric with more integer digits or scale). NARROW: the source became narrower
    than the target. INCOMPATIBLE: neither holds the other.
    """
    if _same_type(source, target):
        return None
    if _canonical(source) == _canonical(target) and source.type is not CanonicalType.UNKNOWN:
        return None  # e.g. json vs jsonb, timestamptz(3) vs timestamptz: the values load as they are
    s, t = source.type, target.type
    if s in _INT_RANK and t in _INT_RANK:
        return ChangeKind.WIDEN if _INT_RANK[s] > _INT_RANK[t] else ChangeKind.NARROW
    if s in _FLOAT_RANK and t in _FLOAT_RANK:
        return ChangeKind.WIDEN if _FLOAT_RANK[s] > _FLOAT_RANK[t] else ChangeKind.NARROW
    if s is CanonicalType.STRING and t is CanonicalType.STRING:
        return _compare_lengths(source.length, target.length)
    if s is CanonicalType.DECIMAL and t is CanonicalType.DECIMAL:
        return _compare_decimals(source, target)
    if s in _INT_RANK and t is CanonicalType.DECIMAL:
        # an integer fits a numeric with enough integer digits; otherwise widen the numeric
        if target.precision is None:
            return ChangeKind.NARROW
        if target.precision - (target.scale or 0) >= _INT_DIGITS[s]:
            return ChangeKind.NARROW
        return ChangeKind.WIDEN
    if s is CanonicalType.TIMESTAMP and t is CanonicalType.TIMESTAMPTZ:
        return ChangeKind.INCOMPATIBLE  # the zone the values meant is unknown
    return ChangeKind.INCOMPATIBLE


def _same_type(a: Column, b: Column) -> bool:
    if a.native_type and b.native_type and a.dialect and a.dialect == b.dialect:
        return _normal(a.native_type) == _normal(b.native_type)
    return _canonical(a) == _canonical(b)


def _canonical(c: Column) -> tuple:
    return (c.type, c.precision, c.scale, c.length, c.element)


def _normal(native: str) -> str:
    return " ".join(native.lower().split())


def _compare_lengths(source: int | None, target: int | None) -> ChangeKind | None:
    if source == target:
        return None
    if target is None:  # unbounded text: nothing to narrow from, it holds every string
        return None
    if source is None or source > target:
        return ChangeKind.WIDEN
    return ChangeKind.NARROW


def _compare_decimals(source: Column, target: Column) -> ChangeKind | None:
    if target.precision is None:  # unbounded numeric: nothing to narrow from, it holds every numeric
        return None
    if source.precision is None:
        return ChangeKind.WIDEN
    s_int, t_int = source.precision - (source.scale or 0), target.precision - (target.scale or 0)
    s_scale, t_scale = source.scale or 0, target.scale or 0
    if s_int == t_int and s_scale == t_scale:
        return None
    if s_int >= t_int and s_scale >= t_scale:
        return ChangeKind.WIDEN
    if s_int <= t_int and s_scale <= t_scale:
        return ChangeKind.NARROW
    return ChangeKind.INCOMPATIBLE


def widened(source: Column, target: Column) -> Column:
    """The target column after widening it to hold ``source`` (keeps the target's name and nullability)."""
    if source.type is CanonicalType.DECIMAL and target.type is CanonicalType.DECIMAL and source.precision:
        if target.precision is None:
            return target
        scale = max(source.scale or 0, target.scale or 0)
        digits = max(source.precision - (source.scale or 0), target.precision - (target.scale or 0))
        return replace(target, precision=digits + scale, scale=scale, native_type=None, dialect=None)
    if source.type in _INT_RANK and target.type is CanonicalType.DECIMAL:
        scale = target.scale or 0
        digits = max(_INT_DIGITS[source.type], (target.precision or 0) - scale)
        return replace(target, precision=digits + scale, scale=scale, native_type=None, dialect=None)
    return replace(source, name=target.name, nullable=target.nullable)


@dataclass(frozen=True)
class SchemaChange:
    kind: ChangeKind
    column: str  # the source column (for DROP: the target column)
    source: Column | None = None
    target: Column | None = None
    result: Column | None = None  # the target column after the change (safe kinds)

    @property
    def safe(self) -> bool:
        return self.kind in SAFE_KINDS

    def describe(self) -> str:
        src = type_label(self.source) if self.source else None
        tgt = type_label(self.target) if self.target else None
        if self.kind is ChangeKind.ADD_COLUMN:
            return f"column '{self.column}': add {src} (nullable)"
        if self.kind is ChangeKind.WIDEN:
            return f"column '{self.column}': widen {tgt} -> {type_label(self.result) if self.result else src}"
        if self.kind is ChangeKind.RELAX_NOT_NULL:
            return f"column '{self.column}': drop NOT NULL (the source allows nulls)"
        if self.kind is ChangeKind.NEW_COLUMN:
            name = self.result.name if self.result else "?"
            return f"column '{self.column}': type changed {tgt} -> {src}; values go to new column '{name}'"
        if self.kind is ChangeKind.TARGET_ONLY:
            return f"column '{self.column}': in the target ({tgt}) but not in the source; loaded rows leave it NULL or its default"
        if self.kind is ChangeKind.DROP:
            return (
                f"column '{self.column}': in the target ({tgt}, NOT NULL without a default) but not in the "
                "source, so no row could be loaded; drop its NOT NULL or give it a default"
            )
        if self.kind is ChangeKind.NARROW:
            return f"column '{self.column}': source type {src} is narrower than the target's {tgt}"
        return f"column '{self.column}': source type {src} is incompatible with the target's {tgt}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "column": self.column,
            "source_type": type_label(self.source) if self.source else None,
            "target_type": type_label(self.target) if self.target else None,
            "result_column": self.result.name if self.result else None,
            "result_type": type_label(self.result) if self.result else None,
            "safe": self.safe,
            "description": self.describe(),
        }


@dataclass(frozen=True)
class SchemaPlan:
    mode: EvolutionMode
    on_type_change: OnTypeChange
    changes: tuple[SchemaChange, ...] = ()
    target_exists: bool = True
    # source column -> target column it loads into (differs only for new_column changes)
    column_map: dict[str, str] = field(default_factory=dict)
    # columns added to a target this load only partly rewrites: their existing rows stay NULL
    partial_adds: tuple[str, ...] = ()

    @property
    def breaking(self) -> list[SchemaChange]:
        return [c for c in self.changes if not c.safe]

    @property
    def safe_changes(self) -> list[SchemaChange]:
        return [c for c in self.changes if c.safe]

    @property
    def blocked(self) -> list[SchemaChange]:
        """The changes that stop the load: breaking ones, or any change in ``fail`` mode.

        ``plan_only`` blocks nothing: it reports every change and loads only when there is none.
        """
        if self.mode is EvolutionMode.FAIL:
            return [c for c in self.changes if c.kind not in _NO_DDL]
        if self.mode is EvolutionMode.PLAN_ONLY:
            return []
        if self.mode is EvolutionMode.STRICT:
            return self.breaking + [c for c in self.changes if c.column in self.partial_adds]
        return self.breaking

    @property
    def to_apply(self) -> list[SchemaChange]:
        """The changes to apply before the load (none in plan_only or when the load is blocked)."""
        if self.mode not in (EvolutionMode.SAFE, EvolutionMode.STRICT) or self.blocked:
            return []
        return [c for c in self.safe_changes if c.kind not in _NO_DDL]

    @property
    def needs_ddl(self) -> bool:
        """Whether any change would alter the target (``plan_only`` stops only for these)."""
        return any(c.kind not in _NO_DDL for c in self.changes)

    @property
    def warnings(self) -> list[str]:
        """What the run report should say about changes that load but leave gaps."""
        out = [
            f"column '{name}' is added to a target this load does not rewrite whole: its existing "
            "rows stay NULL; backfill it with a full-refresh run (or schema_evolution.mode: strict "
            "to refuse such additions)"
            for name in self.partial_adds
        ]
        out += [c.describe() for c in self.changes if c.kind in _NO_DDL]
        return out

    def target_column(self, source_column: str) -> str:
        return self.column_map.get(source_column, source_column)

    def summary(self) -> str:
        if not self.target_exists:
            return "target does not exist yet: it will be created from the source schema"
        if not self.changes:
            return "no schema changes"
        return "; ".join(c.describe() for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "on_type_change": self.on_type_change.value,
            "target_exists": self.target_exists,
            "changes": [c.to_dict() for c in self.changes],
            "blocked": [c.column for c in self.blocked],
            "applied": [c.column for c in self.to_apply],
            "column_map": {k: v for k, v in self.column_map.items() if k != v},
            "warnings": self.warnings,
        }


def plan_schema(
    source: TableSchema,
    target: TableSchema | None,
    *,
    mode: EvolutionMode | str = EvolutionMode.SAFE,
    on_type_change: OnTypeChange | str = OnTypeChange.FAIL,
    ignore_target_columns: Iterable[str] = (),
    rewrites_all_rows: bool = True,
    target_defaults: Iterable[str] = (),
) -> SchemaPlan:
    """Compare ``source`` with the existing ``target`` (None: not created yet).

    ``ignore_target_columns`` are columns the sink manages itself (SCD2 validity, soft-delete
    flags); they are never reported. ``rewrites_all_rows`` is False for loads that write only
    part of the target (incremental extracts, appends, windows): a column added then stays NULL
    on the rows already there, which the plan warns about (and ``strict`` refuses).
    ``target_defaults`` are the target columns that have a default value.
    """
    mode, on_type_change = EvolutionMode(mode), OnTypeChange(on_type_change)
    if target is None:
        return SchemaPlan(mode, on_type_change, (), target_exists=False)
    by_name = {c.name: c for c in target.columns}
    ignored = set(ignore_target_columns)
    changes: list[SchemaChange] = []
    column_map: dict[str, str] = {}
    consumed: set[str] = set()
    for col in source.columns:
        existing = by_name.get(col.name)
        if existing is None:
            changes.append(
                SchemaChange(ChangeKind.ADD_COLUMN, col.name, source=col, result=replace(col, nullable=True))
            )
            continue
        consumed.add(col.name)
        kind = compare_types(col, existing)
        if kind in (ChangeKind.NARROW, ChangeKind.INCOMPATIBLE) and on_type_change is OnTypeChange.NEW_COLUMN:
            alt_name = new_column_name(col.name, col)
            column_map[col.name] = alt_name
            consumed.add(alt_name)
            alt = by_name.get(alt_name)
            if alt is None or compare_types(col, alt) is not None:
                if alt is not None:  # <column>__<type> exists with another type: nothing safe to do
                    changes.append(SchemaChange(ChangeKind.INCOMPATIBLE, alt_name, source=col, target=alt))
                    continue
                changes.append(
                    SchemaChange(
                        ChangeKind.NEW_COLUMN,
                        col.name,
                        source=col,
                        target=existing,
                        result=replace(col, name=alt_name, nullable=True),
                    )
                )
            elif col.nullable and not alt.nullable:
                changes.append(SchemaChange(ChangeKind.RELAX_NOT_NULL, alt_name, source=col, target=alt))
            if not existing.nullable:  # the old column receives no values any more
                changes.append(SchemaChange(ChangeKind.RELAX_NOT_NULL, col.name, source=col, target=existing))
            continue
        if kind is not None:
            result = widened(col, existing) if kind is ChangeKind.WIDEN else None
            changes.append(SchemaChange(kind, col.name, source=col, target=existing, result=result))
        if col.nullable and not existing.nullable and col.name not in target.primary_key:
            # A key column keeps NOT NULL: a NULL arriving there fails the load loudly instead.
            changes.append(SchemaChange(ChangeKind.RELAX_NOT_NULL, col.name, source=col, target=existing))
    defaults = set(target_defaults)
    for col in target.columns:
        if col.name not in consumed and col.name not in ignored and not source.has(col.name):
            if _is_routed_column(col.name, column_map, source):
                continue
            tolerated = col.nullable or col.name in defaults
            changes.append(
                SchemaChange(ChangeKind.TARGET_ONLY if tolerated else ChangeKind.DROP, col.name, target=col)
            )
    partial = () if rewrites_all_rows else tuple(c.column for c in changes if c.kind is ChangeKind.ADD_COLUMN)
    return SchemaPlan(mode, on_type_change, tuple(changes), True, column_map, partial)


def _is_routed_column(name: str, column_map: dict[str, str], source: TableSchema) -> bool:
    """A ``<column>__<type>`` column made by an earlier new_column change, not used this run."""
    base, sep, suffix = name.rpartition("__")
    return bool(sep) and source.has(base) and suffix in {t.value for t in CanonicalType}


def enforce_schema_plan(plan: SchemaPlan, target: str) -> None:
    """Raise before the target is touched when the plan stops the load.

    Blocked: breaking changes in ``safe`` mode, any change in ``fail`` mode. In ``plan_only``
    mode a needed change also stops the run (the engine reports it before staging).
    """
    if plan.blocked:
        why = (
            "schema_evolution.mode is fail, so no change is applied"
            if plan.mode is EvolutionMode.FAIL
            else "schema_evolution.mode is strict: breaking changes, and columns that existing rows "
            "would leave NULL, are never applied automatically"
            if plan.mode is EvolutionMode.STRICT
            else "breaking changes are never applied automatically"
        )
        raise SchemaMismatchError(
            f"target {target}: {why}: "
            + "; ".join(c.describe() for c in plan.blocked)
            + ". Change the target by hand, or set schema_evolution.on_type_change: new_column "
            "to load changed types into new columns"
        )
    if plan.mode is EvolutionMode.PLAN_ONLY and plan.needs_ddl:
        raise SchemaMismatchError(
            f"target {target}: schema_evolution.mode is plan_only and the target needs changes: "
            f"{plan.summary()}"
        )
