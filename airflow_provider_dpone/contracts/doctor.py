"""``dpone doctor``'s model: what each connection of a set of manifests must allow (the loads
that read from it, write to it, keep state in it) and the findings a check returns. Pure: no
I/O, no drivers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from .manifest import LoadSpec, Manifest, StateSpec

Status = Literal["ok", "info", "warn", "fail"]
MARK: dict[str, str] = {"ok": "ok  ", "info": "info", "warn": "warn", "fail": "FAIL"}


@dataclass(frozen=True)
class Finding:
    """One check's result. ``fix`` says what to change when the status is warn or fail."""

    status: Status
    check: str  # reachable, authenticated, privilege, setting, version, object, tool
    subject: str  # what it is about: the connection, or "<pipeline>.<load> source|sink|state"
    message: str
    fix: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class LoadUse:
    """One load of one pipeline, as it uses a connection."""

    pipeline: str
    load: LoadSpec

    @property
    def key(self) -> str:
        return f"{self.pipeline}.{self.load.name}"


@dataclass
class ConnectionUse:
    """Everything the manifests ask of one connection."""

    connector: str
    conn_id: str
    sources: list[LoadUse] = field(default_factory=list)
    sinks: list[LoadUse] = field(default_factory=list)
    states: list[tuple[str, StateSpec]] = field(default_factory=list)  # (pipeline, state table)

    @property
    def label(self) -> str:
        return f"{self.conn_id} ({self.connector})"


class LoadProbe(Protocol):
    """A connector's checks of what each load asks of its connection."""

    def source(self, use: LoadUse) -> list[Finding]: ...

    def sink(self, use: LoadUse) -> list[Finding]: ...

    def state(self, pipeline: str, table: str) -> list[Finding]: ...


def load_findings(probe: LoadProbe, use: ConnectionUse) -> list[Finding]:
    """The probe's findings for every load reading, writing or keeping state on ``use``."""
    found: list[Finding] = []
    for load in use.sources:
        found += probe.source(load)
    for load in use.sinks:
        found += probe.sink(load)
    for pipeline, state in use.states:
        found += probe.state(pipeline, state.table)
    return found


def connection_uses(manifests: list[Manifest]) -> list[ConnectionUse]:
    """The connections the manifests use, each with the loads that read from it, the loads that
    write to it and the state tables it keeps, in the order first met."""
    found: dict[tuple[str, str], ConnectionUse] = {}

    def use(connector: str, conn_id: str) -> ConnectionUse:
        return found.setdefault((connector, conn_id), ConnectionUse(connector, conn_id))

    for manifest in manifests:
        for load in manifest.loads:
            use(load.source.connector, load.source.conn_id).sources.append(LoadUse(manifest.pipeline, load))
            use(load.sink.connector, load.sink.conn_id).sinks.append(LoadUse(manifest.pipeline, load))
        state = manifest.state
        if state.backend == "table" and state.conn_id:
            use(state.connector, state.conn_id).states.append((manifest.pipeline, state))
    return list(found.values())


def exit_code(findings: list[Finding]) -> int:
    """1 when a finding means a load cannot run, else 0."""
    return 1 if any(f.status == "fail" for f in findings) else 0


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {status: 0 for status in MARK}
    for f in findings:
        counts[f.status] += 1
    return counts


def render(groups: list[tuple[str, list[Finding]]]) -> str:
    """The human report: one block per connection (or local tools), then a summary line."""
    lines: list[str] = []
    everything: list[Finding] = []
    for title, findings in groups:
        lines.append(title)
        for f in findings:
            took = f" ({f.seconds * 1000:.0f} ms)" if f.seconds is not None else ""
            about = "" if f.subject == title.split(" ")[0] else f"{f.subject}: "
            lines.append(f"  {MARK[f.status]}  {f.check:<13} {about}{f.message}{took}")
            if f.fix and f.status in ("warn", "fail"):
                lines.append(f"        fix: {f.fix}")
        everything.extend(findings)
        lines.append("")
    counts = summary(everything)
    verdict = "a load cannot run" if exit_code(everything) else "every load can run"
    lines.append(
        f"{len(everything)} checks: {counts['ok']} ok, {counts['info']} info, {counts['warn']} warnings, "
        f"{counts['fail']} failing: {verdict}"
    )
    return "\n".join(lines)
