"""The base of the typed specs: a spec *is* the plain mapping a manifest holds.

Being a ``dict``, a spec is templated, serialized, mapped over (``.expand``) and shown by
Airflow like any mapping; the typed constructor only spells its keys. Unset arguments are
left out, so the manifest's defaults apply. Pure: no Airflow, no pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

_SKIP = frozenset({"self", "__class__"})


def given(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments that were given (not None), by manifest key (a trailing ``_``
    of a Python keyword dropped)."""
    return {k.rstrip("_"): v for k, v in arguments.items() if k not in _SKIP and v is not None}


class SpecMapping(dict[str, Any]):
    """A manifest mapping built by a typed constructor (see the subclasses)."""

    connector: ClassVar[str | None] = None

    def __init__(self, **keys: Any) -> None:
        if self.connector is not None:
            keys = {"connector": self.connector, **keys}
        super().__init__({k: v for k, v in keys.items() if v is not None})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


Duration = str | float  # "10m", "2h", "3d", or seconds


class Cursor(SpecMapping):
    """``incremental: {mode: cursor}``: rows whose ``cursor`` column passed the watermark."""

    def __init__(
        self,
        cursor: str,
        *,
        lookback: Duration | None = None,
        initial_value: str | None = None,
        chunk: Duration | None = None,
        on_target_missing: Literal["fail", "full_extract"] | None = None,
        on_state_missing: Literal["fail", "from_target"] | None = None,
        at_watermark: Literal["skip", "read"] | None = None,
    ) -> None:
        super().__init__(mode="cursor", **given(locals()))


class XMin(SpecMapping):
    """``incremental: {mode: xmin}``: PostgreSQL rows changed since the last run's transaction."""

    def __init__(self, *, on_target_missing: Literal["fail", "full_extract"] | None = None) -> None:
        super().__init__(mode="xmin", **given(locals()))


class ChangeTracking(SpecMapping):
    """``incremental: {mode: change_tracking}``: SQL Server Change Tracking (sink: cdc_apply)."""

    def __init__(self, *, on_target_missing: Literal["fail", "full_extract"] | None = None) -> None:
        super().__init__(mode="change_tracking", **given(locals()))


class Cdc(SpecMapping):
    """``incremental: {mode: cdc}`` (sink: cdc_apply): SQL Server CDC net changes of
    ``capture_instance`` (default ``<schema>_<table>``), or PostgreSQL logical decoding through
    the load's ``slot`` and ``publication`` (default ``dpone_<pipeline>_<load>_<hash>``), whose
    WAL held back ``max_retained_wal`` ('10GB') bounds (docs/cdc.md)."""

    def __init__(
        self,
        *,
        capture_instance: str | None = None,
        slot: str | None = None,
        publication: str | None = None,
        max_retained_wal: int | str | None = None,
        on_target_missing: Literal["fail", "full_extract"] | None = None,
    ) -> None:
        super().__init__(mode="cdc", **given(locals()))


class Offsets(SpecMapping):
    """``incremental: {mode: offsets}``: Kafka messages past the stored offsets."""

    def __init__(self, *, on_target_missing: Literal["fail", "full_extract"] | None = None) -> None:
        super().__init__(mode="offsets", **given(locals()))


class Window(SpecMapping):
    """``window``: a fixed range ``start <= column < end`` of a table (templates welcome)."""

    def __init__(self, column: str, start: str, end: str) -> None:
        super().__init__(**given(locals()))


class VariableState(SpecMapping):
    """``state: {backend: variable}``: watermarks in Airflow Variables."""

    def __init__(self) -> None:
        super().__init__(backend="variable")


class TableState(SpecMapping):
    """``state: {backend: table}``: watermarks in a table of the database ``conn_id``, committed
    with the sink's finalize when the sink is that database."""

    def __init__(self, conn_id: str, *, table: str | None = None, connector: str | None = None) -> None:
        super().__init__(backend="table", **given(locals()))
