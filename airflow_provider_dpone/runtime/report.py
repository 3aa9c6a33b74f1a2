"""The run report: per-phase seconds, rows and bytes, fast path, schema changes, quality
results, state before and after, lineage. Rendered as JSON, a log table and Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..contracts.durations import format_seconds


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None


@dataclass
class RunReport:
    pipeline: str
    load: str
    run_id: str
    strategy: str
    status: str = "running"
    source: dict[str, Any] = field(default_factory=dict)
    sink: dict[str, Any] = field(default_factory=dict)
    fast_path: str | None = None
    phases: list[Phase] = field(default_factory=list)
    state_before: dict[str, Any] | None = None
    state_after: dict[str, Any] | None = None
    state_committed: str = "no"
    schema: dict[str, Any] | None = None
    quality: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # what a manual trigger asked for (backfill window, full reload); None for a scheduled run
    request: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())

    @classmethod
    def combine(cls, chunks: list[RunReport]) -> RunReport:
        """One report for a chunked backfill: phases summed, state from first to last chunk."""
        first, last = chunks[0], chunks[-1]
        combined = cls(
            pipeline=first.pipeline,
            load=first.load,
            run_id=first.run_id,
            strategy=first.strategy,
            status=last.status,
            source={**first.source, "window": last.source.get("window")},
            sink=last.sink,
            fast_path=first.fast_path,
            state_before=first.state_before,
            state_after=last.state_after,
            state_committed=last.state_committed,
            schema=first.schema,
            quality=[q for c in chunks for q in c.quality if not q["passed"]] or last.quality,
            lineage=last.lineage,
            warnings=[w for c in chunks for w in c.warnings],
            request=first.request,
            error=last.error,
            seconds=round(sum(c.seconds for c in chunks), 4),
        )
        for chunk in chunks:
            for p in chunk.phases:
                total = combined.find_phase(p.name) or combined.phase(p.name)
                total.seconds = round(total.seconds + p.seconds, 4)
                if p.rows is not None:
                    total.rows = (total.rows or 0) + p.rows
                if p.bytes is not None:
                    total.bytes = (total.bytes or 0) + p.bytes
            window = chunk.source.get("window") or {}
            combined.chunks.append(
                {
                    "run_id": chunk.run_id,
                    "lower": window.get("lower"),
                    "upper": window.get("upper"),
                    "rows": chunk.rows,
                    "seconds": chunk.seconds,
                    "quality_passed": sum(1 for q in chunk.quality if q["passed"]),
                    "quality_failed": [q["name"] for q in chunk.quality if not q["passed"]],
                }
            )
        return combined

    def phase(self, name: str) -> Phase:
        p = Phase(name)
        self.phases.append(p)
        return p

    def find_phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def rows(self) -> int | None:
        staged = self.find_phase("stage")
        return staged.rows if staged else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.rows
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """A report read back from its JSON (``dpone report``)."""
        known = {f.name for f in fields(cls)}
        report = cls(**{k: v for k, v in data.items() if k in known and k != "phases"})
        report.phases = [Phase(**p) for p in data.get("phases", [])]
        return report

    def to_markdown(self) -> str:
        """The report as Markdown, for a PR comment, a ticket or a run book."""

        def cell(value: Any) -> str:
            number = isinstance(value, int) and not isinstance(value, bool)
            text = "" if value is None else f"{value:,}" if number else str(value)
            return text.replace("|", "\\|").replace("\n", " ")

        window = self.source.get("window") or {}
        lines = [
            f"## dpone run report: `{self.pipeline}.{self.load}`",
            "",
            "| | |",
            "|---|---|",
            f"| status | **{self.status}** |",
            f"| run id | `{self.run_id}` |",
            f"| started | {self.started_at} |",
            f"| strategy | {self.strategy} |",
            f"| fast path | {cell(self.fast_path)} |",
            f"| source | {cell(self.source.get('connector'))} `{cell(self.source.get('object'))}` "
            f"({cell(window.get('mode'))}) |",
            f"| sink | {cell(self.sink.get('connector'))} `{cell(self.sink.get('table'))}` |",
            f"| rows | {cell(self.rows)} |",
            *([f"| request | {cell(json.dumps(self.request))} |"] if self.request else []),
            f"| seconds | {self.seconds:.2f} |",
            "",
            "### Phases",
            "",
            "| phase | seconds | rows | bytes |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {p.name} | {p.seconds:.3f} | {cell(p.rows)} | {cell(p.bytes)} |" for p in self.phases]
        finalize = self.sink.get("finalize") or {}
        if finalize:
            lines += ["", "### Finalize", ""]
            lines += [f"- {k}: {cell(v)}" for k, v in finalize.items() if k != "target"]
        changes = (self.schema or {}).get("changes") or []
        lines += ["", "### Schema changes", ""]
        lines += [f"- {c['description']}" for c in changes] or ["none"]
        if self.warnings:
            lines += ["", "### Warnings", ""] + [f"- {cell(w)}" for w in self.warnings]
        if self.quality:
            lines += [
                "",
                "### Quality gates",
                "",
                "| check | severity | result | detail |",
                "|---|---|---|---|",
            ]
            for q in self.quality:
                verdict = "pass" if q["passed"] else "FAIL"
                lines.append(f"| {cell(q['name'])} | {q['severity']} | {verdict} | {cell(q['message'])} |")
        if self.chunks:
            lines += [
                "",
                f"### Backfill chunks ({len(self.chunks)})",
                "",
                "| lower | upper | rows |",
                "|---|---|---:|",
            ]
            lines += [f"| {cell(c['lower'])} | {cell(c['upper'])} | {cell(c['rows'])} |" for c in self.chunks]
        lines += [
            "",
            "### State",
            "",
            f"- before: `{json.dumps(self.state_before, default=str)}`",
            f"- after: `{json.dumps(self.state_after, default=str)}` (committed: {self.state_committed})",
        ]
        if self.lineage:
            lines += ["", "### Lineage", ""]
            for role in ("inputs", "outputs"):
                for d in self.lineage.get(role, []):
                    lines.append(f"- {role[:-1]}: `{d['namespace']}` / `{d['name']}`")
        if self.error:
            lines += ["", "### Error", "", "```", self.error, "```"]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, indent=2)

    def to_table(self) -> str:
        """The short table written to the task log."""
        lines = [
            f"dpone {self.pipeline}.{self.load} [{self.status}] strategy={self.strategy} "
            f"fast_path={self.fast_path} total={self.seconds:.2f}s",
        ]
        if self.request:
            lines.append("request: " + " ".join(f"{k}={v}" for k, v in self.request.items()))
        if window := _window_line(self.source.get("window") or {}):
            lines.append(window)
        lines.append(f"{'phase':<10} {'seconds':>9} {'rows':>12} {'bytes':>14}")
        for p in self.phases:
            rows = "" if p.rows is None else f"{p.rows:,}"
            size = "" if p.bytes is None else f"{p.bytes:,}"
            lines.append(f"{p.name:<10} {p.seconds:>9.3f} {rows:>12} {size:>14}")
        if finalize := self._finalize_line():
            lines.append(finalize)
        lines.append(self._state_line())
        if self.schema and self.schema.get("changes"):
            lines.append("schema: " + "; ".join(c["description"] for c in self.schema["changes"]))
        if self.chunks:
            lines.append(
                f"backfill: {len(self.chunks)} chunk(s), last window up to {self.chunks[-1]['upper']}"
            )
        for q in self.quality:
            verdict = "ok" if q["passed"] else ("FAILED" if q["severity"] == "error" else "warn")
            lines.append(f"quality {q['name']}: {verdict}: {q['message']}")
        lines += [f"warning: {w}" for w in self.warnings]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)

    def _finalize_line(self) -> str | None:
        """What finalize did to the target: rows inserted, updated, deleted..."""
        result = self.sink.get("finalize") or {}
        if not result:
            return None
        counts = [f"{v:,} {label}" for key, label in _COUNTS if isinstance(v := result.get(key), int)]
        if result.get("method") == "swap" and self.rows is not None:
            counts.insert(0, f"{self.rows:,} swapped in")
        if result.get("partitions_replaced"):
            counts.append(f"{len(result['partitions_replaced'])} partition(s) replaced")
        line = f"finalize: {result.get('method')}: {', '.join(counts) or 'no rows changed'}"
        if _lookback(self.source.get("window") or {}) and isinstance(result.get("rows_updated"), int):
            line += " (updated includes the lookback's re-reads)"
        return line

    def _state_line(self) -> str:
        before = json.dumps(self.state_before, default=str)
        if self.state_committed == "no" and self.status != "success":
            return f"state: unchanged {before} (the run {self.status} before committing state)"
        if self.state_after == self.state_before:
            return f"state: unchanged {before}"
        after = json.dumps(self.state_after, default=str)
        return f"state: {before} -> {after} (committed {self.state_committed})"


_COUNTS = (
    ("rows_inserted", "inserted"),
    ("rows_updated", "updated"),
    ("rows_closed_changed", "versions closed"),
    ("rows_deleted", "deleted"),
    ("rows_closed_deleted", "closed as deleted"),
    ("rows_unchanged", "unchanged"),
    ("rows_already_loaded", "skipped: key already in the target"),
    ("duplicates_removed", "duplicates dropped"),
)


def rows_written(result: dict[str, Any], staged: int | None) -> int | None:
    """The target rows a finalize wrote (inserted, updated, closed, deleted); a swap writes
    every staged row."""
    if result.get("method") == "swap":
        return staged
    keys = ("rows_inserted", "rows_updated", "rows_closed_changed", "rows_deleted", "rows_closed_deleted")
    counted = [v for k in keys if isinstance(v := result.get(k), int)]
    return sum(counted) if counted else None


def _lookback(window: dict[str, Any]) -> float:
    """Seconds a cursor window re-read before its watermark (0: none)."""
    seconds = window.get("lookback_seconds") or 0
    return float(seconds) if window.get("lower") is not None else 0.0


def _window_line(window: dict[str, Any]) -> str | None:
    """The extract window; a lookback's re-read named as such."""
    if window.get("mode") != "cursor":
        return None
    lower, upper = window.get("lower"), window.get("upper")
    text = (
        f"window: {window.get('cursor')} past {lower}"
        if lower is not None
        else "window: first load, all rows"
    )
    if upper is not None:
        text += f" up to {upper}"
    if seconds := _lookback(window):
        text += f"; re-reading {format_seconds(seconds)} before the watermark (lookback)"
    return text
