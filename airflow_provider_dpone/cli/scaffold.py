"""``dpone init``: scaffold a one-load pipeline manifest from flags, or by asking for what is
missing (on a terminal, or with ``--interactive``). The manifest is validated by
``parse_manifest``, as ``dpone validate`` does, before anything is written; it is written only
where no file (without ``--force``) and no other manifest of the same pipeline is."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..contracts.api_catalog import RESOURCES
from ..contracts.connectors import CONNECTORS
from ..contracts.errors import BadInputError
from ..contracts.manifest import parse_manifest
from ..contracts.spec_base import check_connector
from ..contracts.strategies import IncrementalMode, Strategy
from ..dag_factory import scaffold as sc
from ..dag_factory.files import files_for_dag, load_manifest
from .output import EXIT_OK, out

_OBJECT_FLAGS = {"table": "--table", "topic": "--topic", "resource": "--resource", "endpoint": "--endpoint"}


def _catalog(connector: str) -> Mapping[str, sc.ResourceHint] | None:
    """The resources of an API source's catalogue (``contracts/api_catalog.py``, no import of
    the hooks), or None for a connector without one."""
    return RESOURCES.get(connector)


class _Asker:
    """Prompts on stderr (stdout carries the result), answers from stdin."""

    def ask(self, what: str, choices: Sequence[str] = (), default: str | None = None) -> str:
        if len(choices) == 1:  # nothing to choose: say what it is
            print(f"{what}: {choices[0]} (the only choice)", file=sys.stderr)
            return choices[0]
        shown = f" ({'|'.join(choices)})" if choices else ""
        shown += f" [{default}]" if default else ""
        while True:
            print(f"{what}{shown}: ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                raise BadInputError(f"input ended before '{what}' was answered")
            answer = line.strip() or (default or "")
            if answer and (not choices or answer in choices):
                return answer
            if not answer and default == "":
                return ""
            print(
                f"  give one of: {', '.join(choices)}" if choices else "  an answer is needed",
                file=sys.stderr,
            )


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _options(pairs: Sequence[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--option: '{pair}' is not KEY=VALUE")
        found[key.strip()] = value.strip()
    return found


def _connector(flag: str, name: str, side: str) -> None:
    try:
        check_connector(name)
    except ValueError as exc:
        raise BadInputError(f"{flag}: {exc}") from None
    allowed = sc.source_connectors() if side == "source" else sc.sink_connectors()
    if name not in allowed:
        raise BadInputError(f"{flag}: connector '{name}' is not a {side}; {side}s: {', '.join(allowed)}")


def _default_conn(connector: str) -> str | None:
    """An API source's hooks default to a connection named after the API."""
    return connector if CONNECTORS[connector].objects == "resource" else None


def _output(args: argparse.Namespace, pipeline: str) -> Path:
    if args.output:
        return Path(args.output)
    folder = os.environ.get("DPONE_MANIFESTS_DIR") or "dags/manifests"  # what dags/dpone_manifests.py reads
    return Path(folder) / f"{pipeline}.yaml"


def _check_free(path: Path, pipeline: str, force: bool) -> None:
    if path.exists() and not force:
        raise BadInputError(f"{path} already exists; give --force to overwrite it")
    if path.parent.is_dir():
        others = [f for f in files_for_dag([path.parent], pipeline) if f.resolve() != path.resolve()]
        if others:  # two files of one pipeline: the DAG factory would refuse the second
            raise BadInputError(f"pipeline '{pipeline}' is already defined in {others[0]}")


def _missing(args: argparse.Namespace) -> list[str]:
    missing = [f for f, v in (("--pipeline", args.pipeline), ("--source", args.source)) if not v]
    if not args.source_conn and not (args.source in CONNECTORS and _default_conn(args.source)):
        missing.append("--source-conn")
    missing += [f for f, v in (("--sink", args.sink), ("--sink-conn", args.sink_conn)) if not v]
    if args.source in CONNECTORS:
        flag = _OBJECT_FLAGS[sc.object_key(args.source)]
        if not getattr(args, flag[2:]):
            missing.append(flag)
    elif not any(getattr(args, f[2:]) for f in _OBJECT_FLAGS.values()):
        missing.append("/".join(_OBJECT_FLAGS.values()))
    return missing


def _gather(
    args: argparse.Namespace, ask: _Asker | None
) -> tuple[sc.Choices, Path, Mapping[str, sc.ResourceHint] | None]:
    """The choices from the flags, asking for the rest when ``ask`` is given; the source's API
    catalogue when it has one."""
    if ask is None and (missing := _missing(args)):
        raise BadInputError(f"missing {', '.join(missing)} (or run on a terminal, or with --interactive)")

    def value(given: str | None, what: str, choices: Sequence[str] = (), default: str | None = None) -> str:
        if given:
            return given
        if ask is None:  # only values with a default get here: _missing() named the others
            assert default is not None
            return default
        return ask.ask(what, choices, default)

    pipeline = value(args.pipeline, "pipeline (the DAG id)")
    path = _output(args, pipeline)
    _check_free(path, pipeline, args.force)
    source = value(args.source, "source connector", sc.source_connectors())
    _connector("--source", source, "source")
    source_conn = value(args.source_conn, "source connection id", (), _default_conn(source))
    kind = sc.object_key(source)
    hints = _catalog(source) if kind == "resource" else None
    obj = value(getattr(args, kind), f"source {kind}", sorted(hints) if hints else ())
    options = _options(args.option or [])
    hint = (hints or {}).get(obj)
    if ask is not None and hint is not None:
        for needed in hint.required_options:  # "a|b": a, or b standing for it
            names = needed.split("|")
            if not any(options.get(n) for n in names):
                options[names[0]] = ask.ask(f"option {names[0]} of resource '{obj}'")
    mode, cursor = args.mode, args.cursor
    if ask is not None and not mode:
        modes = sc.mode_choices(source) if hint is None or hint.cursor else [sc.FULL]
        default = sc.default_mode(source, cursor or (hint.cursor if hint else None))
        mode = ask.ask("read mode", modes, default)
    if ask is not None and mode == IncrementalMode.CURSOR.value and not cursor:
        cursor = ask.ask("cursor column (grows with every change)", (), hint.cursor if hint else None)
    filter_param, filter_format = args.filter_param, args.filter_format
    if ask is not None and kind == "endpoint" and mode == IncrementalMode.CURSOR.value and not filter_param:
        filter_param = ask.ask(f"the API's query parameter filtering on '{cursor}' (endpoint.server_filter)")
        filter_format = filter_format or ask.ask(
            "its value format (iso, date, unix, unix_ms or a strftime pattern)", (), "iso"
        )
    sinks = sc.sink_choices(source, mode or sc.default_mode(source, cursor))
    sink = value(args.sink, "sink connector", sinks)
    _connector("--sink", sink, "sink")
    choices = sc.Choices(
        pipeline=pipeline,
        source=source,
        source_conn=source_conn,
        sink=sink,
        sink_conn=value(args.sink_conn, "sink connection id"),
        object=obj,
        target=args.target,
        mode=mode,
        cursor=cursor,
        strategy=args.strategy,
        unique_key=_split(args.unique_key),
        schedule=args.schedule,
        state=args.state or "variable",
        options=options,
        description=args.description,
        start_date=dt.datetime.now(dt.timezone.utc).date(),
        filter_param=filter_param,
        filter_format=filter_format,
    )
    resolved = sc.resolve(choices, hints)
    return (_ask_rest(args, resolved, ask) if ask else resolved), path, hints


def _ask_rest(args: argparse.Namespace, c: sc.Choices, ask: _Asker) -> sc.Choices:
    """Target, strategy, key, schedule and state (resolved defaults shown as such), each
    offered within what the pair supports."""
    assert c.mode is not None and c.target is not None and c.strategy is not None
    if not args.target:
        c.target = ask.ask(f"sink {sc.sink_key(c.sink)}", (), c.target)
    if not args.strategy:
        offered = sc.strategy_choices(c.sink, c.mode) or [c.strategy]
        default = c.strategy
        if c.mode != sc.FULL and default == Strategy.INCREMENTAL_APPEND.value:
            default = sc.default_strategy(c.sink, c.mode, keyed=True)  # the usual choice: merge
        c.strategy = ask.ask("strategy", offered, default if default in offered else offered[0])
    if not args.unique_key and sc.needs_unique_key(c.strategy, c.mode):
        key = ask.ask("unique key (columns, comma-separated)", (), ",".join(c.unique_key) or None)
        c.unique_key = _split(key)
    if args.schedule is None:
        c.schedule = ask.ask("schedule (cron or @daily; empty: manual runs only)", (), "") or None
    if not args.state:
        hosts = CONNECTORS[c.sink].hosts_state
        c.state = ask.ask("state backend", ["variable", "table"] if hosts else ["variable"], "variable")
    return c


def _write_checked(path: Path, text: str) -> None:
    """Write ``text`` beside ``path``, read it back with ``dpone validate``'s own loader, and
    only then move it into place: a file that does not load is never left at ``path``."""
    temp = path.with_name(f".{path.name}.dpone-init")
    temp.write_text(text, encoding="utf-8")
    try:
        load_manifest(temp)
    except BaseException:
        temp.unlink()
        raise
    os.replace(temp, path)


def cmd_init(args: argparse.Namespace) -> int:
    interactive = args.interactive or (sys.stdin.isatty() and bool(_missing(args)))
    choices, path, hints = _gather(args, _Asker() if interactive else None)
    if hints is not None and (problems := sc.resource_problems(choices, hints)):
        raise BadInputError("; ".join(problems))
    if problems := sc.endpoint_problems(choices):
        raise BadInputError("; ".join(problems))
    manifest = sc.build_manifest(choices)
    today = dt.datetime.now(dt.timezone.utc).date()
    text = sc.render_yaml(manifest, today)
    # The very validation `dpone validate` runs (its YAML read back first): nothing is written
    # unless it passes, and its messages are the refusal.
    parse_manifest(yaml.safe_load(text), str(path))
    _check_free(path, choices.pipeline, args.force)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_checked(path, text)
    nexts = [f"dpone doctor {path}", f"dpone plan {path}"]
    if args.format == "json":
        out(json.dumps({"file": str(path), "manifest": manifest, "next": nexts}, indent=2, default=str))
        return EXIT_OK
    load = manifest["loads"][0]
    target = load["sink"].get("table") or load["sink"].get("topic")
    out(
        f"wrote {path}: pipeline '{choices.pipeline}', load '{load['name']}' "
        f"({choices.source} {choices.object} -> {choices.sink} {target}, {load['sink']['strategy']})"
    )
    for name in sorted({choices.source, choices.sink}):
        if CONNECTORS[name].certification == "experimental":
            out(f"note: connector '{name}' is experimental (docs/{name}.md says what evidence promotes it)")
    out("next:\n" + "\n".join(f"  {n}" for n in nexts))
    return EXIT_OK


def add_parser(add: Any) -> None:
    p = add("init", "scaffold a pipeline manifest from flags, or by asking (on a terminal)")
    p.add_argument("--pipeline", help="the pipeline (DAG id); also the file name")
    p.add_argument("--source", help=f"source connector: {', '.join(sc.source_connectors())}")
    p.add_argument("--source-conn", help="the source's Airflow connection id (API sources: the API's name)")
    p.add_argument("--sink", help=f"sink connector: {', '.join(sc.sink_connectors())}")
    p.add_argument("--sink-conn", help="the sink's Airflow connection id")
    p.add_argument("--table", help="database sources: the table read (schema.table)")
    p.add_argument("--topic", help="Kafka sources: the topic read")
    p.add_argument("--resource", help="SaaS API sources: the catalogue's resource (docs/apis.md)")
    p.add_argument("--endpoint", help="REST sources: the endpoint path")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="API resources: an option (repeat)")
    p.add_argument("--target", help="the sink table (or topic); default raw.<source table name>")
    p.add_argument(
        "--mode",
        choices=sc.MODES,
        help="how the source is read; default: cursor with --cursor or an API resource the API filters "
        "(its field), offsets for Kafka, else full",
    )
    p.add_argument("--cursor", help="mode cursor: the column that grows with every change")
    p.add_argument(
        "--filter-param",
        metavar="PARAM",
        help="REST endpoints, mode cursor: the API's query parameter filtering on the --cursor field "
        "(endpoint.server_filter; docs/rest.md)",
    )
    p.add_argument(
        "--filter-format",
        metavar="FORMAT",
        help="with --filter-param: the watermark's format, iso (default), date, unix, unix_ms or a "
        "strftime pattern",
    )
    p.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy],
        help="default: cdc_apply for a change feed; incremental_merge for an incremental read with "
        "--unique-key, else incremental_append; full_refresh for a full read",
    )
    p.add_argument("--unique-key", metavar="COL[,COL]", help="the sink's merge key")
    p.add_argument("--schedule", help="an Airflow schedule (cron or preset); default none: manual runs")
    p.add_argument("--state", choices=["variable", "table"], help="state backend (table: in the sink)")
    p.add_argument("--description")
    p.add_argument(
        "--output", help="the file; default $DPONE_MANIFESTS_DIR or dags/manifests, /<pipeline>.yaml"
    )
    p.add_argument("--force", action="store_true", help="overwrite the file")
    p.add_argument("--interactive", action="store_true", help="ask for what the flags do not give")
    p.set_defaults(func=cmd_init)
