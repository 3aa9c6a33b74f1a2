"""What ``dpone init`` writes: a one-load manifest built from a connector pair and a few
choices, as a dict in the contract's key order and as commented YAML. Pure: no I/O; the
connectors' declarations (``contracts.connectors``) say what each side offers, and
``contracts.manifest.parse_manifest`` (run by the CLI) decides whether the result is valid.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from ..contracts.api_resource import ResourceFacts as ResourceHint  # what init checks a resource by
from ..contracts.connectors import CONNECTORS
from ..contracts.strategies import CHANGE_MODES, STRATEGIES_NEEDING_UNIQUE_KEY, IncrementalMode, Strategy

FULL = "full"  # no incremental: every run reads the whole object
MODES = (FULL, *(m.value for m in IncrementalMode))
# What the scaffold can fill in completely; replace, partition_replace and snapshot_diff need
# keys it does not ask for (a window, partition columns, deletes), so it does not offer them.
OFFERED = (
    Strategy.FULL_REFRESH,
    Strategy.INCREMENTAL_APPEND,
    Strategy.INCREMENTAL_MERGE,
    Strategy.SCD2,
    Strategy.CDC_APPLY,
)
# The source key each kind of connector names its object with, and the init flag for it.
OBJECT_KEYS = {"table": "table", "topic": "topic", "resource": "resource", "endpoint": "endpoint"}
DEFAULT_SCHEMA = "raw"  # where a derived target table lands (schema, dataset or database)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class Choices:
    """One pipeline's answers; ``None`` means "not given" (a default is derived)."""

    pipeline: str
    source: str
    source_conn: str
    sink: str
    sink_conn: str
    object: str  # the table, topic, resource or endpoint path the source reads
    target: str | None = None
    mode: str | None = None  # FULL or an incremental mode
    cursor: str | None = None
    strategy: str | None = None
    unique_key: list[str] = field(default_factory=list)
    schedule: str | None = None
    state: str = "variable"
    options: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    start_date: dt.date = dt.date(2026, 1, 1)
    # an endpoint read in mode cursor: the API's own filter (endpoint.server_filter, docs/rest.md)
    filter_param: str | None = None
    filter_format: str | None = None  # iso (the default), date, unix, unix_ms or a strftime pattern


def source_connectors() -> list[str]:
    return sorted(n for n, c in CONNECTORS.items() if c.source_modes)


def sink_connectors() -> list[str]:
    return sorted(n for n, c in CONNECTORS.items() if c.sink_strategies)


def object_key(connector: str) -> str:
    """The source key naming what ``connector`` reads: table, topic, resource or endpoint."""
    return OBJECT_KEYS[CONNECTORS[connector].objects]


def sink_key(connector: str) -> str:
    return "topic" if CONNECTORS[connector].objects == "topic" else "table"


def mode_choices(connector: str) -> list[str]:
    """The modes ``connector`` reads in, ``full`` first."""
    modes = CONNECTORS[connector].source_modes
    return [m for m in MODES if (None if m == FULL else IncrementalMode(m)) in modes]


def default_mode(connector: str, cursor: str | None) -> str:
    """``cursor`` when a cursor column is given, else a full read; a source that cannot read
    in full and has one mode (a Kafka topic: offsets) gets that mode."""
    choices = mode_choices(connector)
    if cursor and IncrementalMode.CURSOR.value in choices:
        return IncrementalMode.CURSOR.value
    if FULL in choices or len(choices) != 1:
        return FULL
    return choices[0]


def strategy_choices(sink: str, mode: str) -> list[str]:
    """The strategies ``sink`` supports that fit ``mode`` (and that the scaffold fills in)."""
    info = CONNECTORS[sink]
    ok = [s for s in OFFERED if s in info.sink_strategies and s not in info.refused]
    if mode in {m.value for m in CHANGE_MODES}:
        ok = [s for s in ok if s is Strategy.CDC_APPLY]
    elif mode == FULL:
        ok = [s for s in ok if s is not Strategy.CDC_APPLY]
    else:
        ok = [s for s in ok if s not in (Strategy.FULL_REFRESH, Strategy.CDC_APPLY)]
    if mode == IncrementalMode.XMIN.value and not info.append_skips_known_keys:
        ok = [s for s in ok if s is not Strategy.INCREMENTAL_APPEND]  # xmin re-reads; a topic cannot skip
    return [s.value for s in ok]


def needs_unique_key(strategy: str, mode: str) -> bool:
    """A keyed strategy, or an append whose extract re-reads rows (xmin): the key it skips by."""
    if strategy in {s.value for s in STRATEGIES_NEEDING_UNIQUE_KEY}:
        return True
    return strategy == Strategy.INCREMENTAL_APPEND.value and mode == IncrementalMode.XMIN.value


def sink_choices(source: str, mode: str) -> list[str]:
    """The sinks with a strategy for ``mode`` (a change feed: only where the source writes it)."""
    feed_sinks = CONNECTORS[source].cdc_sinks if mode == IncrementalMode.CDC.value else None
    return [
        s for s in sink_connectors() if strategy_choices(s, mode) and (feed_sinks is None or s in feed_sinks)
    ]


def default_strategy(sink: str, mode: str, keyed: bool) -> str:
    """A change feed is applied (``cdc_apply``); an incremental read is merged when keyed, else
    appended; a full read refreshes the target (appended where the sink cannot refresh: a topic)."""
    if mode in {m.value for m in CHANGE_MODES}:
        return Strategy.CDC_APPLY.value
    if mode == FULL and Strategy.FULL_REFRESH.value in strategy_choices(sink, FULL):
        return Strategy.FULL_REFRESH.value
    return (Strategy.INCREMENTAL_MERGE if keyed else Strategy.INCREMENTAL_APPEND).value


def resource_strategy(source: str, resource: str) -> tuple[str, list[str]] | None:
    """An API resource's own default strategy and merge keys, where its catalogue declares one."""
    found = CONNECTORS[source].resource_defaults.get(resource)
    return (found[0].value, list(found[1])) if found else None


def object_name(obj: str) -> str:
    """A table, topic or path as a load name: its last part, letters, digits and ``_`` only."""
    last = re.split(r"[./]", obj.strip("/"))[-1] if obj.strip("/") else obj
    return _NOT_NAME.sub("_", last).strip("_") or "load"


def default_target(obj: str, sink: str) -> str:
    """``raw.<name>`` for a table sink, ``<name>`` for a topic."""
    name = object_name(obj)
    return name if sink_key(sink) == "topic" else f"{DEFAULT_SCHEMA}.{name}"


def resource_problems(choices: Choices, hints: Mapping[str, ResourceHint]) -> list[str]:
    """What the source's API catalogue would refuse when the load runs (unknown resource,
    missing options, a cursor the API does not filter on)."""
    hint = hints.get(choices.object)
    if hint is None:
        return [
            f"--resource: '{choices.object}' is not a resource of '{choices.source}'; allowed: "
            + ", ".join(sorted(hints))
        ]
    problems = []
    missing = hint.missing_options(choices.options)
    if missing:
        problems.append(
            f"--option: resource '{choices.object}' needs {', '.join(missing)} "
            f"(give --option {missing[0].split(' ')[0]}=VALUE)"
        )
    incremental = choices.mode not in (None, FULL)
    if incremental and hint.cursor is None:
        problems.append(
            f"--mode: resource '{choices.object}' has no server-side filter, so it is read in full "
            "every run; use --mode full"
        )
    elif incremental and choices.cursor and choices.cursor != hint.cursor:
        problems.append(
            f"--cursor: resource '{choices.object}' filters on '{hint.cursor}', not '{choices.cursor}'"
        )
    return problems


def endpoint_problems(choices: Choices) -> list[str]:
    """What a REST endpoint's read needs that the flags do not give: an incremental read only
    goes through the API's server-side filter, so mode cursor needs its query parameter (the
    cursor is the record field it filters on); the filter flags mean nothing elsewhere."""
    cursor_mode = choices.mode == IncrementalMode.CURSOR.value
    if object_key(choices.source) == "endpoint" and cursor_mode and not choices.filter_param:
        return [
            "--mode cursor: an endpoint is read incrementally only through the API's own filter; give "
            "--filter-param PARAM (the query parameter the API filters the --cursor field on, "
            "docs/rest.md), or read it in full (--mode full)"
        ]
    given = [
        f
        for f, v in (("--filter-param", choices.filter_param), ("--filter-format", choices.filter_format))
        if v
    ]
    if given and not (object_key(choices.source) == "endpoint" and cursor_mode):
        return [f"{given[0]}: only for an --endpoint source read with --mode cursor (its server-side filter)"]
    return []


def resolve(choices: Choices, hints: Mapping[str, ResourceHint] | None = None) -> Choices:
    """``choices`` with every default filled in: the mode, an API resource's cursor and merge
    key (what its catalogue declares), the strategy, the target."""
    c = replace(choices, unique_key=list(choices.unique_key), options=dict(choices.options))
    hint = (hints or {}).get(c.object) if object_key(c.source) == "resource" else None
    c.mode = c.mode or default_mode(c.source, c.cursor or (hint.cursor if hint else None))
    if hint is not None and c.mode != FULL:
        c.cursor = c.cursor or hint.cursor
        c.unique_key = c.unique_key or list(hint.primary_key)
    own = resource_strategy(c.source, c.object) if object_key(c.source) == "resource" else None
    if c.strategy is None and own is not None and c.mode == FULL:
        c.strategy, c.unique_key = own[0], c.unique_key or own[1]
    c.strategy = c.strategy or default_strategy(c.sink, c.mode, bool(c.unique_key))
    c.target = c.target or default_target(c.object, c.sink)
    return c


def build_manifest(choices: Choices) -> dict[str, Any]:
    """The manifest of ``resolve``d choices, keys in the contract's order: the connections in
    ``defaults`` (so a second load only names its objects), one load named after its object."""
    c = resolve(choices)
    assert c.mode is not None and c.target is not None and c.strategy is not None
    key = object_key(c.source)
    source: dict[str, Any] = {key: {"path": c.object} if key == "endpoint" else c.object}
    if key == "endpoint" and c.mode == IncrementalMode.CURSOR.value and c.filter_param:
        source[key]["server_filter"] = {
            "param": c.filter_param,
            "field": c.cursor,
            "format": c.filter_format or "iso",
        }
    if c.options:
        source["options"] = dict(c.options)
    if c.mode != FULL:
        source["incremental"] = {"mode": c.mode, **({"cursor": c.cursor} if c.cursor else {})}
    sink: dict[str, Any] = {sink_key(c.sink): c.target, "strategy": c.strategy}
    if c.unique_key:
        sink["unique_key"] = list(c.unique_key)
    state: dict[str, Any] = {"backend": c.state}
    if c.state == "table":
        state.update(conn_id=c.sink_conn, connector=c.sink, table="dpone.state")
    return {
        "pipeline": c.pipeline,
        "description": c.description or f"{c.source} {c.object} into {c.sink} {c.target}",
        "schedule": c.schedule,
        "start_date": c.start_date,
        "tags": sorted({c.source, c.sink}),
        "state": state,
        "defaults": {
            "source": {"connector": c.source, "conn_id": c.source_conn},
            "sink": {"connector": c.sink, "conn_id": c.sink_conn},
        },
        "loads": [{"name": object_name(c.object), "source": source, "sink": sink}],
    }


_KEY_NOTES = {
    "schedule": "any Airflow schedule (cron, @hourly, @daily, ...); null: manual runs only",
    "state": "where the watermark or offsets live: variable (Airflow Variables) or table (docs/state.md)",
    "defaults": "deep-merged into every load: the connections (Airflow connection ids)",
    "loads": "one Airflow task per load; add loads here, each naming only its objects",
}


class _Dumper(yaml.SafeDumper):
    """Block mappings, lists indented under their key, short lists of scalars inline."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    inline = all(not isinstance(i, dict | list) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=inline)


_Dumper.add_representer(list, _list)


def render_yaml(manifest: Mapping[str, Any], generated_on: dt.date) -> str:
    """``manifest`` as YAML: a header saying where it came from, a note above the main keys."""
    body = yaml.dump(dict(manifest), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    lines = []
    for line in body.splitlines():
        key = line.split(":", 1)[0]
        if not line.startswith(" ") and key in _KEY_NOTES:
            lines.append(f"# {_KEY_NOTES[key]}")
        lines.append(line)
    header = [
        f"# Written by `dpone init` on {generated_on.isoformat()}; edit freely.",
        "# The keys are manifest contract v1: docs/manifest.md (strategies: docs/strategies.md).",
        "# Check it with `dpone validate`, its connections with `dpone doctor`, its SQL with `dpone plan`.",
    ]
    return "\n".join(header + lines) + "\n"
