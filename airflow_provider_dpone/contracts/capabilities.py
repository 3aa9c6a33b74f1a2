"""What ``dpone validate`` refuses because a connector cannot do it, or a strategy never could.

Pure: reads the connectors' declarations (``contracts.connectors``), never their drivers. A
manifest that validates runs exactly as it asks; everything else is refused here, naming the
field and what the connector supports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .api_catalog import RESOURCES
from .connectors import CONNECTORS, ConnectorInfo
from .errors import ValidationIssue
from .sources import ResourceSource, TableSource, TopicSource
from .strategies import CHANGE_MODES, RECONCILING_STRATEGIES, IncrementalMode, Strategy

if TYPE_CHECKING:
    from .manifest import LoadSpec, Manifest


def _supporters(flag: str) -> str:
    names = sorted(name for name, info in CONNECTORS.items() if getattr(info, flag))
    return ", ".join(names) or "none yet"


def _objects_problems(side: str, used: str, info: ConnectorInfo) -> list[str]:
    if info.objects == used:
        return []
    wanted = "'table' or 'query'" if info.objects == "table" and side == "source" else f"'{info.objects}'"
    return [f"{side}: connector '{info.name}' works on {info.objects}s, not {used}s: give {wanted}"]


def _source_problems(load: LoadSpec, src: ConnectorInfo) -> list[str]:
    problems = []
    inc = load.source.incremental
    mode = inc.mode if inc else None
    if mode not in src.source_modes:
        allowed = sorted(m.value if m else "full (no incremental)" for m in src.source_modes)
        problems.append(
            f"source.incremental.mode: '{mode.value if mode else None}' is not supported by "
            f"connector '{src.name}'; supported: {', '.join(allowed)}"
        )
    if mode in src.table_only_modes and load.source.kind == "query":
        problems.append(f"source.incremental.mode: '{mode.value}' needs 'table', not 'query'")
    for option in ("capture_instance", "slot", "publication", "max_retained_wal"):
        if inc and getattr(inc, option) and option not in src.cdc_options:
            problems.append(
                f"source.incremental.{option}: connector '{src.name}' does not take it"
                + (f"; its cdc mode takes {sorted(src.cdc_options)}" if src.cdc_options else "")
            )
    if inc and inc.chunk and not src.chunk:
        problems.append(
            f"source.incremental.chunk: connector '{src.name}' does not read in chunks; "
            f"connectors that do: {_supporters('chunk')}"
        )
    if isinstance(load.source, TableSource) and load.source.window and not src.window:
        problems.append(
            f"source.window: connector '{src.name}' cannot read a fixed range; connectors that can: "
            f"{_supporters('window')}"
        )
    kind = "table" if load.source.kind == "query" else load.source.kind
    return problems + _objects_problems("source", kind, src) + _resource_problems(load, src)


def _resource_problems(load: LoadSpec, src: ConnectorInfo) -> list[str]:
    """A SaaS source's resource against its catalogue (``api_catalog``): it exists, and an
    incremental read uses the field the API filters on."""
    catalog = RESOURCES.get(src.name)
    if catalog is None or not isinstance(load.source, ResourceSource):
        return []
    name, inc = load.source.resource, load.source.incremental
    facts = catalog.get(name)
    if facts is None:
        return [
            f"source.resource: '{name}' is not a resource of '{src.name}'; allowed: {', '.join(sorted(catalog))}"
        ]
    problems = []
    missing = facts.missing_options(load.source.options)  # their values are the hook's to check
    if missing:
        problems.append(f"source.options: resource '{name}' of '{src.name}' needs {', '.join(missing)}")
    if inc is not None and facts.cursor is None:
        problems.append(
            f"source.incremental: resource '{name}' of '{src.name}' has no server-side filter, so it is "
            "read in full every run; remove source.incremental"
        )
    elif inc is not None and inc.cursor and inc.cursor != facts.cursor:
        problems.append(
            f"source.incremental.cursor: resource '{name}' filters on '{facts.cursor}', not '{inc.cursor}'"
        )
    return problems


def _sink_problems(load: LoadSpec, snk: ConnectorInfo) -> list[str]:
    problems = []
    sink, inc = load.sink, load.source.incremental
    if sink.strategy in snk.refused:
        problems.append(
            f"sink.strategy: '{sink.strategy.value}' is refused by connector '{snk.name}': "
            f"{snk.refused[sink.strategy]}"
        )
    elif sink.strategy not in snk.sink_strategies:
        allowed = sorted(s.value for s in snk.sink_strategies)
        problems.append(
            f"sink.strategy: '{sink.strategy.value}' is not supported by connector "
            f"'{snk.name}' yet; supported: {', '.join(allowed)}"
        )
    if sink.unique_key and sink.on_duplicate_keys not in snk.duplicate_keys:
        problems.append(
            f"sink.on_duplicate_keys: '{sink.on_duplicate_keys}' is not supported by connector "
            f"'{snk.name}'; supported: {', '.join(sorted(snk.duplicate_keys))}"
        )
    if load.quality and not snk.quality_gates:
        problems.append(
            f"quality: connector '{snk.name}' has no queryable staging to run quality gates on (its "
            "batch goes straight into a transaction); remove quality from this load"
        )
    if sink.strategy is Strategy.INCREMENTAL_APPEND and not snk.append_skips_known_keys:
        problems += [
            f"{name}: {why}, and connector '{snk.name}' cannot skip what its {snk.objects} already "
            "holds, so an incremental_append would add them a second time; read each row once"
            for name, why in rereads(load)
        ]
    deletes = load.reconciliation.deletes
    if deletes != "none" and deletes not in snk.deletes:
        kinds = ", ".join(sorted(snk.deletes - {"none"})) or "none"
        problems.append(
            f"reconciliation.deletes: '{deletes}' is not supported by connector '{snk.name}'; "
            f"deletes it supports: {kinds}"
        )
    elif (
        deletes != "none"
        and inc is not None
        and not snk.key_set
        and not snk.deletes_by_flag
        and sink.strategy is not Strategy.CDC_APPLY
    ):
        problems.append(
            f"reconciliation.deletes: '{deletes}' on an incremental load needs the source's key set "
            f"staged beside the batch, which connector '{snk.name}' cannot; connectors that can: "
            f"{_supporters('key_set')}"
        )
    if sink.staging.files is not None and not snk.file_staging:
        problems.append(
            f"sink.staging.files: connector '{snk.name}' does not load staged files; connectors that "
            f"do: {_supporters('file_staging')}"
        )
    if inc and inc.on_state_missing == "from_target" and not snk.target_watermark:
        problems.append(
            f"source.incremental.on_state_missing: 'from_target' reads max(cursor) from the "
            f"target, which connector '{snk.name}' cannot; use 'fail' and set the state with "
            "`dpone state set`"
        )
    return problems + _objects_problems("sink", "topic" if sink.topic else "table", snk)


def rereads(load: LoadSpec) -> list[tuple[str, str]]:
    """(field, why) for each thing that makes this load's extract read rows an earlier run
    loaded already."""
    inc = load.source.incremental
    if inc is None:
        return []
    found = []
    if inc.lookback:
        found.append(("source.incremental.lookback", "re-reads the rows before the watermark"))
    if inc.mode is IncrementalMode.XMIN:
        found.append(
            (
                "source.incremental.mode",
                "'xmin' re-reads the rows of transactions still open at the last run's snapshot",
            )
        )
    if inc.at_watermark == "read":
        found.append(("source.incremental.at_watermark", "'read' re-reads the records at the watermark"))
    return found


def _strategy_problems(load: LoadSpec) -> list[str]:
    """Rules of the strategies themselves, whatever the connector."""
    problems = []
    inc, sink = load.source.incremental, load.sink
    if sink.strategy is Strategy.INCREMENTAL_APPEND and not sink.unique_key:
        problems += [
            f"{name}: {why}; an incremental_append without sink.unique_key would append them a second "
            "time. Set sink.unique_key (the append then skips the keys its target holds) or merge "
            "them (incremental_merge)"
            for name, why in rereads(load)
        ]
    if inc is not None and inc.at_watermark and load.source.kind not in ("endpoint", "resource"):
        problems.append(
            "source.incremental.at_watermark: applies to API sources (endpoint, resource), whose "
            "filters hand back records at the watermark; a database's cursor reads past it exactly"
        )
    mode = load.source.incremental.mode if load.source.incremental else None
    strategy, deletes = load.sink.strategy, load.reconciliation.deletes
    if strategy is Strategy.FULL_REFRESH and mode is not None:
        problems.append(
            "sink.strategy: 'full_refresh' replaces the whole target, so it needs a full "
            "extract; remove source.incremental or use incremental_append / incremental_merge"
        )
    if deletes != "none" and strategy not in RECONCILING_STRATEGIES and strategy is not Strategy.CDC_APPLY:
        allowed = ", ".join(sorted(s.value for s in RECONCILING_STRATEGIES))
        problems.append(
            f"reconciliation.deletes: '{deletes}' needs a keyed strategy that can delete "
            f"({allowed}); '{strategy.value}' cannot"
        )
    if strategy is Strategy.SNAPSHOT_DIFF:
        if mode is not None:
            problems.append(
                "sink.strategy: 'snapshot_diff' compares the whole source snapshot, so it needs a "
                "full extract; remove source.incremental"
            )
        if deletes == "none":
            problems.append(
                "reconciliation.deletes: 'snapshot_diff' also converges deletes; set it to 'hard' "
                "or 'soft' (deletes are opt-in)"
            )
    topic_feed = isinstance(load.source, TopicSource) and load.source.change_feed
    feed = mode in CHANGE_MODES or topic_feed
    if feed != (strategy is Strategy.CDC_APPLY):
        what = "envelope 'debezium'" if topic_feed else f"mode '{mode.value if mode else None}'"
        problems.append(
            f"sink.strategy: {what} reads a change feed with deletes; only 'cdc_apply' applies it "
            "(another strategy would leave deleted rows in the target)"
            if feed
            else "sink.strategy: 'cdc_apply' applies a change feed; it needs source.incremental.mode "
            "'change_tracking' or 'cdc', or a topic with envelope 'debezium'"
        )
    if strategy is Strategy.CDC_APPLY and deletes == "hard":
        problems.append(
            "reconciliation.deletes: 'cdc_apply' applies the change feed's deletes as hard deletes "
            "by default; remove reconciliation.deletes, or set it to 'soft' to mark them instead"
        )
    if strategy is Strategy.REPLACE and mode is not None:
        problems.append(
            "sink.strategy: 'replace' rewrites a bounded window, so it needs a full extract of that "
            "window; remove source.incremental"
        )
    if strategy is Strategy.PARTITION_REPLACE and mode is not None:
        problems.append(
            "sink.strategy: 'partition_replace' rewrites whole partitions, so it needs a full "
            "extract of them; remove source.incremental"
        )
    return problems


def _parallel_problems(load: LoadSpec, src: ConnectorInfo) -> list[str]:
    """A partitioned load: a table source that splits, one window every partition shares, and
    files in a store every task reaches (docs/parallel.md)."""
    if load.parallel is None:
        return []
    problems = []
    inc = load.source.incremental
    if not src.partitions:
        problems.append(
            f"parallel: connector '{src.name}' cannot split a source into ranges; connectors that "
            f"can: {_supporters('partitions')}"
        )
    elif not isinstance(load.source, TableSource):
        problems.append("parallel: splits a table source ('table'), not a query")
    if inc is not None and inc.mode is not IncrementalMode.CURSOR:
        problems.append(
            f"parallel: source.incremental.mode '{inc.mode.value}' reads one position, which "
            "partitions cannot share; use a full or cursor load"
        )
    elif inc is not None and inc.chunk:
        problems.append("parallel: source.incremental.chunk cannot be combined with partitions")
    if load.sink.staging.files is None:
        problems.append(
            "parallel: needs sink.staging.files: each partition's task stages its rows as files "
            "that the finalize task loads (an s3://, gs:// or abfs:// uri reaches every worker)"
        )
    return problems


def load_problems(load: LoadSpec) -> list[str]:
    """Everything in ``load`` that would not run as asked; each message starts with its field."""
    problems = []
    src, snk = CONNECTORS.get(load.source.connector), CONNECTORS.get(load.sink.connector)
    if snk:
        problems += _sink_problems(load, snk)
    if src:
        problems += _source_problems(load, src) + _parallel_problems(load, src)
    if src and snk:
        problems += _feed_problems(load, src, snk)
    return problems + _strategy_problems(load)


def _feed_problems(load: LoadSpec, src: ConnectorInfo, snk: ConnectorInfo) -> list[str]:
    """A change feed that reaches its sink only in the forms the source writes it."""
    inc = load.source.incremental
    if inc is None or inc.mode is not IncrementalMode.CDC or src.cdc_sinks is None:
        return []
    problems = []
    if snk.name not in src.cdc_sinks:
        problems.append(
            f"sink.connector: connector '{src.name}''s change feed loads into {sorted(src.cdc_sinks)} "
            f"sinks, not '{snk.name}'"
        )
    if load.sink.staging.files is not None:
        problems.append(
            f"sink.staging.files: connector '{src.name}''s change feed streams into the sink's "
            "staging table; remove sink.staging.files"
        )
    return problems


def state_problems(manifest: Manifest, file: str) -> list[ValidationIssue]:
    """A state table must live in a database whose connector can host it; the connection's
    connector is ``state.connector``, and loads that use the same connection must agree."""
    state = manifest.state
    if state.backend != "table":
        return []
    info = CONNECTORS[state.connector]
    issues = []
    if not info.hosts_state:
        issues.append(
            ValidationIssue(
                file,
                "state.connector",
                f"connector '{info.name}' cannot host the state table; connectors that can: "
                f"{_supporters('hosts_state')}",
            )
        )
    for load in manifest.loads:
        for side, spec in (("source", load.source), ("sink", load.sink)):
            if spec.conn_id == state.conn_id and spec.connector != state.connector:
                issues.append(
                    ValidationIssue(
                        file,
                        "state.conn_id",
                        f"connection '{state.conn_id}' is the {side} of load '{load.name}', a "
                        f"'{spec.connector}' connection, but state.connector is '{state.connector}'"
                        + (
                            f"; connector '{spec.connector}' cannot host the state table"
                            if not CONNECTORS[spec.connector].hosts_state
                            else ""
                        ),
                    )
                )
    return issues
