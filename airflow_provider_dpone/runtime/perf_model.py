"""What ``dpone perf advise`` works from and hands back: advice with its evidence, the facts of
an inspected table, and the thresholds of the rules. Pure: no I/O."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contracts.manifest import LoadSpec
from .report import RunReport

SUGGEST, FINE, NOT_KNOWN = "suggest", "fine", "not_known"
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Evidence:
    """One figure an advice rests on: where it was read (``report <run id>``, ``table <name>``,
    ``manifest``), the field, and its value as found there."""

    source: str
    field: str
    value: Any


@dataclass(frozen=True)
class Change:
    """What to change: a manifest field (``path`` and a YAML fragment of the load), or
    statements for the target table (``sql``), with what to know before applying it."""

    path: str
    yaml: str | None = None
    sql: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Advice:
    topic: str  # runs, phases, fast_path, staging, window, merge_target, parallel
    verdict: str  # suggest, fine, not_known
    finding: str
    evidence: tuple[Evidence, ...] = ()
    change: Change | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableFacts:
    """A PostgreSQL table as its catalog and statistics describe it. The counters of
    ``pg_stat_user_tables`` run since the server's statistics were last reset."""

    table: str
    exists: bool
    primary_key: tuple[str, ...] = ()
    key_types: dict[str, str] = field(default_factory=dict)  # primary-key column -> type
    unique_indexes: tuple[tuple[str, ...], ...] = ()  # plain column lists, not partial
    fillfactor: int | None = None  # None: not set (PostgreSQL's default, 100)
    total_bytes: int | None = None
    estimated_rows: int | None = None  # pg_class.reltuples; None before the first ANALYZE
    live_rows: int | None = None
    dead_rows: int | None = None
    updates: int | None = None
    hot_updates: int | None = None
    last_vacuum: str | None = None  # the later of the manual and the automatic one
    partitioned: bool = False


@dataclass(frozen=True)
class Inspection:
    """A table looked at for the advice (``role``: sink or source): its facts, or why not."""

    role: str
    table: str
    facts: TableFacts | None = None
    error: str | None = None

    def source_name(self) -> str:
        return f"table {self.table}"


@dataclass(frozen=True)
class Limits:
    """The rules' thresholds; each is named in the advice it decides."""

    dominant_share: float = 0.5  # a phase at or over this share of the run dominates
    small_run_seconds: float = 1.0  # under this, fixed costs are most of a run
    parallel_min_seconds: float = 120.0  # a stage this long may pay for mapped ranges
    seconds_per_range: float = 60.0  # work per range, so a worker's start-up stays small
    max_ranges: int = 8
    large_share: float = 0.5  # an incremental batch over this share of the target is large
    dead_share: float = 0.2  # dead rows over this share of live rows


def table_rows(facts: TableFacts | None) -> tuple[int, str] | None:
    """The table's rows by its statistics and the field they came from: ``estimated_rows``
    (set by ANALYZE), else ``live_rows``; None when neither is known."""
    if facts is None or not facts.exists:
        return None
    if facts.estimated_rows is not None:
        return facts.estimated_rows, "estimated_rows"
    if facts.live_rows is not None:
        return facts.live_rows, "live_rows"
    return None


def successful(reports: Sequence[RunReport]) -> list[RunReport]:
    return [r for r in reports if r.status == "success"]


def where(report: RunReport) -> str:
    return f"report {report.run_id}"


def phase_evidence(report: RunReport) -> list[Evidence]:
    """Every phase's seconds (and rows and bytes where recorded), and the run's total."""
    out = [Evidence(where(report), "seconds", report.seconds)]
    for p in report.phases:
        out.append(Evidence(where(report), f"phases.{p.name}.seconds", p.seconds))
        if p.rows is not None:
            out.append(Evidence(where(report), f"phases.{p.name}.rows", p.rows))
        if p.bytes is not None:
            out.append(Evidence(where(report), f"phases.{p.name}.bytes", p.bytes))
    return out


def median_phase(reports: Sequence[RunReport], name: str) -> float | None:
    values = [p.seconds for r in reports if (p := r.find_phase(name)) is not None]
    return round(statistics.median(values), 4) if values else None


def load_path(load: LoadSpec, *keys: str) -> str:
    return ".".join((f"loads[{load.name}]", *keys))


def fragment(load: LoadSpec, tree: dict[str, Any]) -> str:
    """A YAML fragment of the load holding ``tree`` (the keys to add or change)."""
    import yaml

    return str(yaml.safe_dump({"loads": [{"name": load.name, **tree}]}, sort_keys=False)).rstrip()


def ranges_for(seconds: float, limits: Limits) -> int:
    """Mapped ranges of about ``seconds_per_range`` of work each, at least 2."""
    return max(2, min(limits.max_ranges, math.ceil(seconds / limits.seconds_per_range)))


def share(part: float, whole: float) -> str:
    if not whole:
        return "n/a"
    percent = 100 * part / whole
    return "under 1%" if 0 < percent < 1 else f"{percent:.0f}%"


def human_bytes(size: float) -> str:
    units, value, index = ("B", "KiB", "MiB", "GiB", "TiB"), float(size), 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:,.0f} B" if index == 0 else f"{value:,.1f} {units[index]}"


def sql_name(name: str) -> str:
    """A PostgreSQL name for a suggested statement: each dotted part quoted unless plain."""
    return ".".join(p if _PLAIN.match(p) else '"' + p.replace('"', '""') + '"' for p in name.split("."))
