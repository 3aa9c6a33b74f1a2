"""The advice of ``dpone perf advise`` on the byte path, the merge target and parallel ranges.
Pure: no I/O (the table facts were read by the CLI, when it could)."""

from __future__ import annotations

from collections import Counter

from ..contracts.connectors import ConnectorInfo
from ..contracts.manifest import LoadSpec
from ..contracts.strategies import STRATEGIES_NEEDING_UNIQUE_KEY, IncrementalMode
from .perf_model import (
    FINE,
    NOT_KNOWN,
    SUGGEST,
    Advice,
    Change,
    Evidence,
    Inspection,
    Limits,
    TableFacts,
    fragment,
    human_bytes,
    load_path,
    ranges_for,
    share,
    sql_name,
    table_rows,
    where,
)
from .report import RunReport

# The byte path each source -> sink pair has where its columns allow it (the hooks' formats).
NATIVE = {
    ("postgres", "postgres"): "postgres_binary",
    ("postgres", "clickhouse"): "tsv",
    ("postgres", "bigquery"): "csv",
    ("clickhouse", "clickhouse"): "arrow_batches",
}
# What a change feed of PostgreSQL writes: its decoded changes as text COPY or TSV.
FEED = {"postgres": "postgres_text", "clickhouse": "tsv"}
_DESCRIBED = {
    "postgres_binary": "binary COPY, never decoded in Python",
    "postgres_text": "text COPY, never decoded in Python",
    "tsv": "the source's text COPY loaded as TSV, never decoded in Python",
    "csv": "the source's CSV COPY parsed by pyarrow, no Python row",
    "arrow_batches": "Arrow record batches",
    "object_storage_staging_manifest": "verified staged files (a partitioned load or a replay)",
    "streaming_batches": "rows decoded in Python, batch by batch",
    "checkpointed_batches": "rows decoded in Python, each batch staged and checkpointed",
    "in_memory_rows": "rows decoded in Python, held in memory",
}
# Key types ``parallel.by`` takes (docs/parallel.md): integer, numeric, date, timestamp.
_SPLITTABLE = ("smallint", "integer", "bigint", "numeric", "date", "timestamp")


def _columns(report: RunReport) -> list[dict[str, str]]:
    inputs = report.lineage.get("inputs") or [{}]
    return list(inputs[0].get("schema") or [])


def fast_path(newest: RunReport, done: list[RunReport], load: LoadSpec) -> Advice:
    src, snk = str(newest.source.get("connector")), str(newest.sink.get("connector"))
    used, at = newest.fast_path, where(newest)
    window = newest.source.get("window") or {}
    evidence = [Evidence(at, "fast_path", used)]
    seen = Counter(str(r.fast_path) for r in done)
    mixed = f" (paths over {len(done)} runs: {dict(seen)})" if len(seen) > 1 else ""
    inc = load.source.incremental
    feed = inc is not None and inc.mode is IncrementalMode.CDC and src == "postgres"
    expected = FEED.get(snk) if feed else NATIVE.get((src, snk))
    said = f"{used} ({_DESCRIBED.get(str(used), 'a path this version does not describe')}){mixed}"
    reader = window.get("copy_reader")
    if reader is not None:
        evidence.append(Evidence(at, "source.window.copy_reader", reader))
    if reader == "psycopg":
        return Advice(
            "fast_path",
            SUGGEST,
            f"{said}, but the COPY stream was read by psycopg 3, which hands Python one message per "
            "row (psycopg2's C loop takes less than half the CPU): psycopg2 is missing, the server "
            "refused the snapshot export, or the reader could not import it (a proxy)",
            tuple(evidence),
            Change(
                path="the worker's environment",
                note="install psycopg2 (apache-airflow-providers-postgres brings it) and connect to "
                "the server itself rather than through a pooling proxy",
            ),
        )
    if used == "object_storage_staging_manifest" or (expected is not None and used == expected):
        return Advice("fast_path", FINE, f"the pair's fast path was used: {said}", tuple(evidence))
    if expected is None:
        return Advice(
            "fast_path",
            FINE,
            f"{said}: {src} -> {snk} has no byte-level path (its rows are decoded and loaded with "
            f"the sink's bulk path), so there is nothing to switch to",
            tuple(evidence),
        )
    columns = _columns(newest)
    arrays = [c["name"] for c in columns if str(c.get("type", "")).endswith("[]")]
    binary = [c["name"] for c in columns if str(c.get("type", "")) == "bytea"]
    if arrays:
        evidence.append(Evidence(at, "lineage.inputs[0].schema (array columns)", arrays))
    if binary:
        evidence.append(Evidence(at, "lineage.inputs[0].schema (bytea columns)", binary))
    if (src, snk) == ("postgres", "postgres") and used == "postgres_text" and arrays:
        why = (
            f"binary COPY falls back to text when a column is an array of a user-defined type "
            f"(array columns: {', '.join(arrays)})"
        )
        fix = "a query source casting such a column to a built-in array type (e.g. col::text[])"
    elif snk in ("clickhouse", "bigquery") and (arrays or binary):
        why = f"the text path cannot carry array or bytea columns ({', '.join(arrays + binary)})"
        fix = "a query source leaving those columns out or casting them to text"
    else:
        return Advice(
            "fast_path",
            NOT_KNOWN,
            f"{said}; this pair's fast path is {expected}, and the report does not say why it was not used",
            tuple(evidence),
        )
    return Advice(
        "fast_path",
        SUGGEST,
        f"{said}, not the pair's {expected}: {why}",
        tuple(evidence),
        Change(path=load_path(load, "source", "query"), note=fix + ", if the target can take that type"),
    )


def merge_target(newest: RunReport, load: LoadSpec, sink: Inspection | None, limits: Limits) -> list[Advice]:
    """Index, fillfactor and dead-row hints for a target updated in place."""
    if load.sink.strategy not in STRATEGIES_NEEDING_UNIQUE_KEY:
        return []
    if load.sink.connector != "postgres":
        return [
            Advice(
                "merge_target",
                NOT_KNOWN,
                f"index and fillfactor hints are given for PostgreSQL targets; this {load.sink.connector} "
                "target was not inspected",
            )
        ]
    at, fin = where(newest), newest.sink.get("finalize") or {}
    keys = tuple(load.sink.unique_key or ())
    evidence = [
        Evidence(at, f"sink.finalize.{k}", fin[k])
        for k in ("method", "rows_updated", "rows_inserted")
        if k in fin
    ]
    idle_insert = (
        fin.get("method") == "update_insert"
        and fin.get("rows_inserted") == 0
        and load.reconciliation.deletes == "none"
    )
    ran = (
        "; the insert pass ran and inserted nothing: it is skipped only when the target has a "
        "unique index on exactly the unique_key columns"
        if idle_insert
        else ""
    )
    if sink is None or sink.facts is None:
        why = sink.error if sink and sink.error else "not inspected (--no-inspect)"
        return [
            Advice(
                "merge_target", SUGGEST if idle_insert else NOT_KNOWN, f"target: {why}{ran}", tuple(evidence)
            )
        ]
    facts, name = sink.facts, sink.source_name()
    if not facts.exists:
        return [
            Advice("merge_target", NOT_KNOWN, f"the target {facts.table} does not exist now", tuple(evidence))
        ]
    counted = table_rows(facts)
    size = [Evidence(name, "total_bytes", facts.total_bytes)]
    size += [Evidence(name, counted[1], counted[0])] if counted else []
    out = [_key_index(load, facts, name, keys, [*evidence, *size], ran)]
    if facts.partitioned:
        out.append(
            Advice(
                "merge_target",
                NOT_KNOWN,
                "the target is partitioned: its leaves' fillfactor was not inspected",
            )
        )
        return out
    out.append(_fillfactor(facts, name))
    if (
        facts.live_rows
        and facts.dead_rows is not None
        and facts.dead_rows >= limits.dead_share * facts.live_rows
    ):
        out.append(
            Advice(
                "merge_target",
                SUGGEST,
                f"{facts.dead_rows:,} dead rows beside {facts.live_rows:,} live ones "
                f"({share(facts.dead_rows, facts.live_rows)}, over {limits.dead_share:.0%}): every update "
                "leaves one until vacuum reclaims it, and the merge scans past them",
                (
                    Evidence(name, "dead_rows", facts.dead_rows),
                    Evidence(name, "live_rows", facts.live_rows),
                    Evidence(name, "last_vacuum", facts.last_vacuum),
                ),
                Change(
                    path=f"target {facts.table}",
                    sql=(f"alter table {sql_name(facts.table)} set (autovacuum_vacuum_scale_factor = 0.05)",),
                    note="autovacuum then visits the table after 5% of its rows changed, not 20%",
                ),
            )
        )
    return out


def _key_index(
    load: LoadSpec, facts: TableFacts, name: str, keys: tuple[str, ...], evidence: list[Evidence], ran: str
) -> Advice:
    evidence = [*evidence, Evidence(name, "unique_indexes", [list(u) for u in facts.unique_indexes])]
    size = f"{human_bytes(facts.total_bytes)}, " if facts.total_bytes is not None else ""
    counted = table_rows(facts)
    rows = f"{counted[0]:,} rows by its statistics" if counted else "rows not known"
    about = f"the target ({size}{rows})"
    if any(set(u) == set(keys) for u in facts.unique_indexes):
        return Advice(
            "merge_target",
            FINE,
            f"{about} has a unique index on the unique_key ({', '.join(keys)}){ran}",
            tuple(evidence),
        )
    index = sql_name(f"{facts.table.rpartition('.')[2]}__{'_'.join(keys)}__key")
    columns = ", ".join(sql_name(k) for k in keys)
    return Advice(
        "merge_target",
        SUGGEST,
        f"{about} has no unique index on the unique_key ({', '.join(keys)}): the merge's insert pass "
        "always runs, and unless another index leads with those columns (non-unique indexes were not "
        f"inspected) its UPDATE reads the whole target to find the staged keys{ran}",
        tuple(evidence),
        Change(
            path=f"target {facts.table}",
            sql=(f"create unique index concurrently {index} on {sql_name(facts.table)} ({columns})",),
            note="it fails if the target holds duplicate keys; run it outside a transaction",
        ),
    )


def _fillfactor(facts: TableFacts, name: str) -> Advice:
    evidence = [Evidence(name, "fillfactor", facts.fillfactor)]
    hot = ""
    if facts.updates:
        evidence += [
            Evidence(name, "updates", facts.updates),
            Evidence(name, "hot_updates", facts.hot_updates),
        ]
        hot = f"; {facts.hot_updates or 0:,} of its {facts.updates:,} updated rows were HOT ({share(facts.hot_updates or 0, facts.updates)})"
    if facts.fillfactor is not None and facts.fillfactor <= 90:
        return Advice(
            "merge_target",
            FINE,
            f"fillfactor {facts.fillfactor} leaves room for updates in place{hot}",
            tuple(evidence),
        )
    shown = facts.fillfactor or "not set (100)"
    return Advice(
        "merge_target",
        SUGGEST,
        f"fillfactor {shown}: full pages leave an updated row no room on its page, so its new version "
        "goes to another page (not a HOT update) and every index of the table gets a new entry "
        f"(dpone creates merge targets with 90){hot}",
        tuple(evidence),
        Change(
            path=f"target {facts.table}",
            sql=(f"alter table {sql_name(facts.table)} set (fillfactor = 90)",),
            note="pages written from now on leave the room; existing ones keep theirs until the table "
            "is rewritten (VACUUM FULL, CLUSTER or pg_repack)",
        ),
    )


def parallel(
    newest: RunReport, load: LoadSpec, info: ConnectorInfo | None, source: Inspection | None, limits: Limits
) -> Advice:
    """Whether mapped ranges (``parallel``) would shorten the read, and how many."""
    at = where(newest)
    reading = [p for p in newest.phases if p.name in ("extract", "files", "stage")]
    seconds = round(sum(p.seconds for p in reading), 4)
    evidence = [Evidence(at, f"phases.{p.name}.seconds", p.seconds) for p in reading]
    window = newest.source.get("window") or {}
    if load.parallel is not None:
        evidence += [Evidence(at, f"source.window.{k}", window.get(k)) for k in ("partitions", "by", "plan")]
        return Advice(
            "parallel",
            NOT_KNOWN,
            f"parallel is set ({load.parallel.partitions} ranges by {load.parallel.by}); each range's "
            "seconds are in its own mapped task, not in this report, so whether the split pays is not "
            "known from it",
            tuple(evidence),
        )
    inc, table = load.source.incremental, getattr(load.source, "table", None)
    refused = (
        f"the {load.source.connector} source cannot be split (connectors' facts)"
        if info is None or not info.partitions
        else "a query source cannot be split"
        if table is None
        else f"incremental mode {inc.mode.value} cannot be split"
        if inc is not None and inc.mode is not IncrementalMode.CURSOR
        else "a chunked backfill cannot be split"
        if inc is not None and inc.chunk is not None
        else None
    )
    read = f"reading the source took {seconds:.3f} s ({' + '.join(p.name for p in reading)})"
    if refused:
        return Advice("parallel", FINE, f"{read}; {refused} (docs/parallel.md)", tuple(evidence))
    if seconds < limits.parallel_min_seconds:
        return Advice(
            "parallel",
            FINE,
            f"{read}, under {limits.parallel_min_seconds:g} s: one task reads it; each mapped range "
            "would add a worker's start-up (docs/performance.md#partitioned-loads)",
            tuple(evidence),
        )
    count = ranges_for(seconds, limits)
    by, note = _split_key(source)
    evidence += note
    tree: dict[str, object] = {"parallel": {"partitions": count, "by": by or "<primary-key column>"}}
    if load.sink.staging.files is None:
        tree["sink"] = {"staging": {"files": {"uri": "s3://<bucket>/<prefix>", "conn_id": "<connection>"}}}
    unknown = "" if by else "; the source's primary key was not inspected, so 'by' is left to fill in"
    return Advice(
        "parallel",
        SUGGEST,
        f"{read}, over {limits.parallel_min_seconds:g} s: {count} ranges of about "
        f"{seconds / count:.3g} s each would read it side by side, on workers with cores of their own "
        f"(on two shared cores the split did not pay: docs/performance.md#partitioned-loads){unknown}",
        tuple(evidence),
        Change(
            path=load_path(load, "parallel"),
            yaml=fragment(load, tree),
            note="ranges travel as files in object storage every worker reaches (sink.staging.files)",
        ),
    )


def _split_key(source: Inspection | None) -> tuple[str | None, list[Evidence]]:
    """The source's primary-key column ``parallel.by`` can take, if it was inspected."""
    if source is None or source.facts is None or not source.facts.exists:
        return None, []
    facts = source.facts
    evidence = [Evidence(source.source_name(), "primary_key", list(facts.primary_key))]
    for column in facts.primary_key:  # any column of the primary key (docs/parallel.md)
        kind = facts.key_types.get(column, "")
        if kind.startswith(_SPLITTABLE):
            evidence.append(Evidence(source.source_name(), f"type of {column}", kind))
            return column, evidence
    return None, evidence
