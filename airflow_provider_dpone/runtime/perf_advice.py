"""``dpone perf advise``: advice on one load from its run reports, its manifest, the connectors'
facts and (when the CLI could reach them) the facts of its tables. Pure: no I/O.

Every advice quotes the figures it rests on (:class:`Evidence`); what the reports do not record
is said to be not known, never estimated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..contracts.connectors import ConnectorInfo
from ..contracts.durations import format_seconds
from ..contracts.manifest import LoadSpec
from ..contracts.strategies import IncrementalMode, Strategy
from .perf_model import (
    FINE,
    NOT_KNOWN,
    SUGGEST,
    Advice,
    Change,
    Evidence,
    Inspection,
    Limits,
    fragment,
    human_bytes,
    load_path,
    median_phase,
    phase_evidence,
    share,
    sql_name,
    successful,
    table_rows,
    where,
)
from .perf_targets import fast_path, merge_target, parallel
from .report import RunReport

# What each phase of a run is, for the finding that names the dominant one.
_PHASES = {
    "extract": "opening the source's read (snapshot, the window's bounds, the query's start); "
    "a streamed extract is read during 'stage'",
    "schema": "comparing the source's columns with the target's",
    "files": "writing the extract as files to object storage (sink.staging.files)",
    "stage": "reading the source into the staging table",
    "quality": "the quality gates on the staging table",
    "key_set": "reading the source's whole key set for deletes (reconciliation)",
    "finalize": "applying the staging table to the target",
    "state": "committing the state",
    "cleanup": "dropping the staging table",
}
# Where the advice looks next when a phase dominates.
_NEXT = {
    "stage": "see fast_path and parallel",
    "files": "see fast_path and parallel",
    "finalize": "see merge_target",
    "key_set": "see window",
}


def advise(
    reports: Sequence[RunReport],
    load: LoadSpec,
    source_info: ConnectorInfo | None,
    sink_info: ConnectorInfo | None,
    inspections: Sequence[Inspection] = (),
    limits: Limits | None = None,
) -> list[Advice]:
    """Advice on ``load`` from ``reports`` (oldest first); figures from the successful ones."""
    limits = limits or Limits()
    done = successful(reports)
    advice = [_runs(reports, done, load)]
    if not done:
        return advice
    newest = done[-1]
    sink = next((i for i in inspections if i.role == "sink"), None)
    source = next((i for i in inspections if i.role == "source"), None)
    advice += [
        _phases(newest, done, load, limits),
        fast_path(newest, done, load),
        _staging(newest, load, sink),
        *_window(done, load, source_info, sink_info, sink, limits),
        *merge_target(newest, load, sink, limits),
        parallel(newest, load, source_info, source, limits),
    ]
    return advice


def _runs(reports: Sequence[RunReport], done: list[RunReport], load: LoadSpec) -> Advice:
    failed = [r for r in reports if r.status != "success"]
    evidence = [Evidence(where(r), "status", r.status) for r in reports]
    evidence += [Evidence(where(r), "error", r.error) for r in failed if r.error]
    counted = f"{len(reports)} report(s) considered, {len(done)} successful"
    if not done:
        return Advice(
            "runs",
            NOT_KNOWN,
            f"{counted}: no successful run, so no figure here describes a whole load "
            "(a failed run stops part way); fix the failure and run again",
            tuple(evidence),
        )
    newest = done[-1]
    drift = [
        (f, was, now)
        for f, was, now in (
            ("strategy", newest.strategy, load.sink.strategy.value),
            ("sink.table", newest.sink.get("table"), load.sink.target),
            ("source.connector", newest.source.get("connector"), load.source.connector),
            ("sink.connector", newest.sink.get("connector"), load.sink.connector),
        )
        if was != now
    ]
    if drift:
        evidence += [Evidence(where(newest), f, was) for f, was, _ in drift]
        evidence += [Evidence("manifest", load_path(load, *f.split(".")), now) for f, _, now in drift]
        return Advice(
            "runs",
            NOT_KNOWN,
            f"{counted}; the newest successful run used another configuration than the manifest now "
            "has, so its figures may not describe the load as it is; run it again before acting",
            tuple(evidence),
        )
    note = "; figures below are from the successful runs only" if failed else ""
    return Advice("runs", FINE, f"{counted}{note}", tuple(evidence))


def _phases(newest: RunReport, done: list[RunReport], load: LoadSpec, limits: Limits) -> Advice:
    evidence = phase_evidence(newest)
    if len(done) > 1:
        evidence += [
            Evidence(f"reports ({len(done)})", f"median phases.{p.name}.seconds", median_phase(done, p.name))
            for p in newest.phases
        ]
    if not newest.phases:
        return Advice("phases", NOT_KNOWN, "the report records no phase", tuple(evidence))
    total = newest.seconds or sum(p.seconds for p in newest.phases)
    top = max(newest.phases, key=lambda p: p.seconds)
    largest = f"{top.name} ({top.seconds:.3f} s of {total:.3f} s, {share(top.seconds, total)})"
    if total < limits.small_run_seconds:
        return Advice(
            "phases",
            FINE,
            f"the run took {total:.3f} s, under {limits.small_run_seconds:g} s: fixed costs "
            f"(connections, catalog queries) are most of it; the largest phase is {largest}",
            tuple(evidence),
        )
    if top.seconds < limits.dominant_share * total:
        return Advice(
            "phases",
            FINE,
            f"no phase takes {limits.dominant_share:.0%} of the run; the largest is {largest}",
            tuple(evidence),
        )
    what = _PHASES.get(top.name, "a phase this version does not describe")
    finding = f"{top.name} dominates: {largest}; it is {what}"
    change = None
    inc = load.source.incremental
    if top.name == "extract" and inc is not None and inc.mode is IncrementalMode.CURSOR and inc.cursor:
        table = getattr(load.source, "table", None) or "<source table>"
        finding += (
            "; a cursor window's bounds (max of the cursor) and its filter read the whole table "
            "unless the cursor column is indexed (whether it is was not inspected)"
        )
        change = Change(
            path=f"source table {table}",
            sql=(f"create index concurrently on {sql_name(table)} ({sql_name(inc.cursor)})",),
            note="on the source, if no index starts with the cursor column",
        )
    elif top.name == "finalize":
        fin = newest.sink.get("finalize") or {}
        if "method" in fin:
            evidence.append(Evidence(where(newest), "sink.finalize.method", fin["method"]))
            written = "an unrecorded number of" if top.rows is None else f"{top.rows:,}"
            finding += f"; method {fin['method']} wrote {written} rows"
        if load.reconciliation.deletes != "none":
            evidence.append(
                Evidence(
                    "manifest", load_path(load, "reconciliation", "deletes"), load.reconciliation.deletes
                )
            )
            finding += (
                "; with reconciliation.deletes it also counts the target rows missing from the staged "
                "keys (the mass-delete guard) and deletes them"
            )
        finding += f" ({_NEXT['finalize']})" if load.sink.unique_key else ""
    elif top.name in _NEXT:
        finding += f" ({_NEXT[top.name]})"
    return Advice("phases", SUGGEST, finding, tuple(evidence), change)


def _staging(newest: RunReport, load: LoadSpec, sink: Inspection | None) -> Advice:
    stage = newest.find_phase("stage")
    if stage is None or stage.rows is None:
        return Advice("staging", NOT_KNOWN, "the report records no staged rows", ())
    src = where(newest)
    evidence = [
        Evidence(src, "phases.stage.rows", stage.rows),
        Evidence(src, "phases.stage.seconds", stage.seconds),
    ]
    parts = [f"{stage.rows:,} rows staged in {stage.seconds:.3f} s"]
    if stage.bytes is not None:
        evidence.append(Evidence(src, "phases.stage.bytes", stage.bytes))
        parts.append(f"{human_bytes(stage.bytes)} sent into staging")
        if stage.rows:
            parts.append(f"{stage.bytes / stage.rows:,.0f} bytes a row")
        if stage.seconds > 0:
            parts.append(f"{human_bytes(stage.bytes / stage.seconds)}/s")
    else:
        parts.append("bytes not recorded")
    if stage.seconds > 0 and stage.rows:
        parts.append(f"{stage.rows / stage.seconds:,.0f} rows/s")
    files = newest.sink.get("files")
    if isinstance(files, dict):
        evidence += [Evidence(src, f"sink.files.{k}", files.get(k)) for k in ("files", "rows", "bytes")]
        parts.append(f"through {files.get('files')} staged file(s) of {human_bytes(files.get('bytes') or 0)}")
    counted = table_rows(sink.facts if sink else None)
    if sink is not None and counted and counted[0]:
        evidence.append(Evidence(sink.source_name(), counted[1], counted[0]))
        parts.append(f"{share(stage.rows, counted[0])} of the target's {counted[0]:,} rows (statistics)")
    finding = "; ".join(parts)
    if load.sink.staging.keep == "always":
        evidence.append(Evidence("manifest", load_path(load, "sink", "staging", "keep"), "always"))
        return Advice(
            "staging",
            SUGGEST,
            f"{finding}; staging.keep 'always' leaves a staging table of this size after every run",
            tuple(evidence),
            Change(
                path=load_path(load, "sink", "staging", "keep"),
                yaml=fragment(load, {"sink": {"staging": {"keep": "on_failure"}}}),
                note="failed runs still keep theirs as evidence",
            ),
        )
    return Advice("staging", FINE, finding, tuple(evidence))


def _window(
    done: list[RunReport],
    load: LoadSpec,
    source_info: ConnectorInfo | None,
    sink_info: ConnectorInfo | None,
    sink: Inspection | None,
    limits: Limits,
) -> list[Advice]:
    out: list[Advice] = []
    empty = [r for r in done if r.rows == 0]
    if len(done) > 1 and 2 * len(empty) >= len(done):
        out.append(
            Advice(
                "window",
                SUGGEST,
                f"{len(empty)} of {len(done)} successful runs staged no row: the schedule runs "
                "more often than the source changes",
                tuple(Evidence(where(r), "rows", r.rows) for r in done),
                Change(
                    path="schedule",
                    note="a less frequent schedule, or a sensor waiting for rows past the watermark "
                    "(DponePostgresSensor for a PostgreSQL source)",
                ),
            )
        )
    inc = load.source.incremental
    if inc is None:
        if load.sink.strategy is not Strategy.FULL_REFRESH:
            out.append(_full_reads(done[-1], load, source_info, sink_info))
        return out
    if inc.mode is IncrementalMode.CURSOR:
        out.append(_cursor_window(done, load, sink, limits))
    else:
        rows = ", ".join(f"{r.rows:,}" if r.rows is not None else "?" for r in done)
        out.append(
            Advice(
                "window",
                FINE,
                f"mode {inc.mode.value}: each run reads the changes since its stored position; "
                f"rows staged per run: {rows}",
                tuple(Evidence(where(r), "rows", r.rows) for r in done),
            )
        )
    return out


def _full_reads(
    newest: RunReport, load: LoadSpec, source_info: ConnectorInfo | None, sink_info: ConnectorInfo | None
) -> Advice:
    """A strategy that could take changes only, fed a full read every run."""
    src = where(newest)
    fin = newest.sink.get("finalize") or {}
    evidence = [Evidence(src, "rows", newest.rows)]
    staged = "an unrecorded number of" if newest.rows is None else f"{newest.rows:,}"
    finding = f"every run reads the whole source ({staged} rows staged)"
    unchanged = fin.get("rows_unchanged")
    if isinstance(unchanged, int) and newest.rows:
        evidence.append(Evidence(src, "sink.finalize.rows_unchanged", unchanged))
        finding += f", of which {unchanged:,} ({share(unchanged, newest.rows)}) were unchanged"
    columns = (newest.lineage.get("inputs") or [{}])[0].get("schema") or []
    stamps = [c["name"] for c in columns if str(c.get("type", "")).startswith(("timestamp", "date"))]
    options = []
    if stamps:
        evidence.append(Evidence(src, "lineage.inputs[0].schema (date/time columns)", stamps))
        options.append(
            f"incremental: {{mode: cursor, cursor: <one of {', '.join(stamps)}>}} if one of them "
            "grows on every change (not known from the reports)"
        )
    if (
        source_info is not None
        and IncrementalMode.CDC in source_info.source_modes
        and (source_info.cdc_sinks is None or load.sink.connector in source_info.cdc_sinks)
        and sink_info is not None
        and Strategy.CDC_APPLY in sink_info.sink_strategies
    ):
        options.append("incremental: {mode: cdc} with strategy cdc_apply (deletes included; docs/cdc.md)")
    if not options:
        return Advice("window", FINE, finding + "; no incremental mode fits this source", tuple(evidence))
    return Advice(
        "window",
        SUGGEST,
        finding + "; reading only the changes would stage less",
        tuple(evidence),
        Change(path=load_path(load, "source", "incremental"), note="; or ".join(options)),
    )


def _seconds_between(lower: object, upper: object) -> float | None:
    try:
        low = dt.datetime.fromisoformat(str(lower))
        high = dt.datetime.fromisoformat(str(upper))
        return (high - low).total_seconds()
    except (TypeError, ValueError):
        return None


def _cursor_window(done: list[RunReport], load: LoadSpec, sink: Inspection | None, limits: Limits) -> Advice:
    later = [r for r in done if (r.source.get("window") or {}).get("lower") is not None]
    if not later:
        return Advice(
            "window",
            NOT_KNOWN,
            "only first runs (no watermark yet, every row read): the window of a later run is not known",
            tuple(Evidence(where(r), "source.window.lower", None) for r in done),
        )
    newest = later[-1]
    window, src = newest.source["window"], where(newest)
    lower, upper, lookback = (
        window.get("lower"),
        window.get("upper"),
        float(window.get("lookback_seconds") or 0),
    )
    fin = newest.sink.get("finalize") or {}
    evidence = [
        Evidence(src, "source.window.lower", lower),
        Evidence(src, "source.window.upper", upper),
        Evidence(src, "source.window.lookback_seconds", lookback),
        Evidence(src, "rows", newest.rows),
    ]
    evidence += [
        Evidence(src, f"sink.finalize.{k}", fin[k]) for k in ("rows_inserted", "rows_updated") if k in fin
    ]
    staged = "an unrecorded number of" if newest.rows is None else f"{newest.rows:,}"
    finding = f"the window read {staged} rows past {lower} up to {upper}"
    counted = table_rows(sink.facts if sink else None)
    target_rows = counted[0] if counted else 0
    if (
        sink
        and counted
        and target_rows
        and newest.rows is not None
        and newest.rows >= limits.large_share * target_rows
    ):
        evidence.append(Evidence(sink.source_name(), counted[1], target_rows))
        return Advice(
            "window",
            SUGGEST,
            f"{finding}: {share(newest.rows, target_rows)} of the target's {target_rows:,} rows, "
            f"over {limits.large_share:.0%}; rewriting the table (full_refresh, a swap) may cost less "
            "than updating that many rows in place",
            tuple(evidence),
            Change(
                path=load_path(load, "sink", "strategy"), note="compare a full_refresh run's report first"
            ),
        )
    advance = _seconds_between(lower, upper)
    if lookback <= 0 or advance is None:
        return Advice("window", FINE, finding + ("; no lookback" if lookback <= 0 else ""), tuple(evidence))
    span = advance + lookback
    re_read = (
        f"; its lookback of {format_seconds(lookback)} re-reads {share(lookback, span)} of the time "
        f"span read (the watermark advanced {format_seconds(round(advance))})"
    )
    if "rows_updated" in fin:
        re_read += "; rows_updated counts the re-read rows too, changed or not"
    if lookback < advance:
        return Advice("window", FINE, finding + re_read, tuple(evidence))
    return Advice(
        "window",
        SUGGEST,
        finding + re_read + "; the lookback is at least the watermark's advance, so half or more of "
        "each read is re-reading",
        tuple(evidence),
        Change(
            path=load_path(load, "source", "incremental", "lookback"),
            note="the longest delay between a row's cursor value and its commit is what the lookback "
            "must cover; that delay is not known from the reports",
        ),
    )
