"""The shared schema-evolution planner (pure: no Airflow, no driver)."""

from .planner import (
    ChangeKind,
    EvolutionMode,
    OnTypeChange,
    SchemaChange,
    SchemaPlan,
    compare_types,
    enforce_schema_plan,
    new_column_name,
    plan_schema,
    type_label,
)

__all__ = [
    "ChangeKind",
    "EvolutionMode",
    "OnTypeChange",
    "SchemaChange",
    "SchemaPlan",
    "compare_types",
    "enforce_schema_plan",
    "new_column_name",
    "plan_schema",
    "type_label",
]
