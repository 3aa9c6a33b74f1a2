"""``dpone``: validate, plan, run and inspect state of manifest pipelines.

Exit codes: 0 success, 1 a load failed, 2 bad input. ``--format json`` for machines.

Connections: an ``AIRFLOW_CONN_<ID>`` environment variable (URI or JSON) is read without
importing Airflow, by the connectors with a standalone engine (``hooks.registry.ENGINES``:
PostgreSQL, ClickHouse, Kafka); any other connection is Airflow's to find (a secrets backend),
and the REST and SaaS API connectors are Airflow hooks, so Airflow is imported for those
(``docs/cli.md``). Logs go to stderr, every connection's credentials masked.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..contracts.errors import BadInputError, DponeError, ManifestError
from ..contracts.manifest import LoadSpec, Manifest
from ..contracts.state import RESUME_SUFFIX, state_to_dict
from ..contracts.state_check import state_for_set
from ..dag_factory.files import load_manifest, validate_paths
from .output import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, command_output, emit, out
from .run import cmd_replay, cmd_run, selected_loads


def _certifications(manifest: Manifest) -> list[tuple[str, str]]:
    """The connectors a manifest uses that are not yet beta (seed 002: experimental)."""
    from ..contracts.connectors import CONNECTORS

    used = {ld.source.connector for ld in manifest.loads} | {ld.sink.connector for ld in manifest.loads}
    if manifest.state.backend == "table":
        used.add(manifest.state.connector)
    levels = ((name, CONNECTORS[name].certification) for name in sorted(used) if name in CONNECTORS)
    return [(name, level) for name, level in levels if level == "experimental"]


def cmd_validate(args: argparse.Namespace) -> int:
    manifests, issues = validate_paths(args.paths)
    data: dict[str, Any] = {
        "valid": [
            {"file": m.source_file, "pipeline": m.pipeline, "loads": [ld.name for ld in m.loads]}
            for m in manifests
        ],
        "errors": [{"file": i.file, "load": i.load, "field": i.field, "message": i.message} for i in issues],
    }
    lines = [f"ok    {m.source_file}: pipeline '{m.pipeline}', {len(m.loads)} load(s)" for m in manifests]
    notes = [
        {"file": m.source_file, "connector": name, "certification": level}
        for m in manifests
        for name, level in _certifications(m)
    ]
    if notes:
        data["notes"] = notes
    lines += [
        f"note  {n['file']}: connector '{n['connector']}' is {n['certification']} (seed 002's levels; "
        f"docs/{n['connector']}.md says what evidence promotes it)"
        for n in notes
    ]
    lines += [f"error {i}" for i in issues]
    if not manifests and not issues:
        lines.append("no manifest files found")
        data["errors"].append(
            {"file": " ".join(args.paths), "load": None, "field": "", "message": "no manifest files found"}
        )
    emit(args, data, "\n".join(lines))
    return EXIT_BAD_INPUT if data["errors"] else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from ..operators.wiring import assemble
    from ..runtime.planning import plan_load

    manifest = load_manifest(args.path)
    plans = [
        plan_load(manifest.pipeline, load, assemble(load, manifest.state, standalone=True))
        for load in selected_loads(manifest, args.load)
    ]
    human = []
    for p in plans:
        human.append(f"== load {p['load']} ({p['strategy']})")
        if "extract" in p:
            human.append(f"-- state: {json.dumps(p.get('state'))}")
            human.append(f"-- window: {json.dumps(p['extract']['window'], default=str)}")
            extract = p["extract"]
            if "sql" in extract:
                human.append(f"-- extract (params {extract['params']}):\n{extract['sql']};")
            else:  # a topic or an API: the requests, not SQL
                shown = {k: v for k, v in extract.items() if k not in ("window", "schema")}
                human.append(f"-- extract: {json.dumps(shown, default=str)}")
        else:
            human.append(f"-- the run would fail before extracting: {p['extract_error']}")
        if "warning" in p:
            human.append(f"-- warning: {p['warning']}")
        if "partitions" in p:
            parts = p["partitions"]
            human.append(f"-- partitions ({parts['tasks']}), each reading the window above:")
            human.extend(f"--   {i}: {r}" for i, r in enumerate(parts["ranges"]))
        if "staged_files" in p:
            human.append(f"-- staged files: {p['staged_files']}")
        if "schema_plan" in p:
            changes = p["schema_plan"]["changes"]
            verdict = "blocked" if p["schema_plan"]["blocked"] else p["schema_plan"]["mode"]
            human.append(
                f"-- schema plan ({verdict}): "
                + ("; ".join(c["description"] for c in changes) or "no changes")
            )
        human.append(f"-- load into {p['load_sql']['target']} via {p['load_sql']['staging']}:")
        human.extend(s if s.startswith("--") else s + ";" for s in p["load_sql"]["statements"])
    emit(args, {"pipeline": manifest.pipeline, "loads": plans}, "\n".join(human))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..runtime.report import RunReport
    from ..runtime.report_store import find_reports, report_dir

    if args.files:
        reports = []
        for file in args.files:
            try:
                reports.append(RunReport.from_dict(json.loads(Path(file).read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError) as exc:
                raise BadInputError(f"{file}: not a dpone run report ({exc})") from None
    else:
        directory = report_dir(args.dir)
        assert directory is not None
        if not directory.is_dir():
            raise BadInputError(
                f"--dir: no reports at {directory}; run with --report-dir or set DPONE_REPORT_DIR"
            )
        reports = find_reports(directory, args.pipeline, args.load, args.last)
    if args.format == "json":
        out(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
    elif args.format == "markdown":
        out("\n".join(r.to_markdown() for r in reports) or "no reports")
    else:
        out("\n\n".join(r.to_table() for r in reports) or "no reports")
    return EXIT_FAILED if any(r.status == "failed" for r in reports) and args.fail_on_failed else EXIT_OK


def _kept_staging(pipeline: str, load: LoadSpec) -> list[dict[str, Any]] | dict[str, str]:
    """Staging tables failed or killed runs of ``load`` left in its sink (``state show``)."""
    from ..hooks.registry import build_hook
    from ..runtime.protocols import LoadContext

    hook = build_hook(load.sink.connector, load.sink.conn_id, standalone=True)
    kept = getattr(hook, "kept_staging", None)
    if kept is None:
        return []
    try:
        found = kept(LoadContext(pipeline, load, "dpone_cli__state_show"))
    except Exception as exc:  # the state is still worth showing when the sink is unreachable
        return {"error": hook.redactor().redact(f"{type(exc).__name__}: {exc}")}
    finally:
        release = getattr(hook, "release", None)
        if release is not None:
            release()
    schema = load.sink.staging.schema_name
    return [
        {
            "table": f"{schema}.{k.name}",
            "run_id": k.run_id,
            "age_seconds": round(k.age_seconds),
            "failed": k.failed,
        }
        for k in found
    ]


def _staging_lines(kept: Any) -> list[str]:
    if isinstance(kept, dict):
        return [f"kept staging: unknown ({kept['error']})"]
    return [
        f"kept staging: {k['table']} (run {k['run_id']}, {k['age_seconds']}s old, "
        f"{'failed' if k['failed'] else 'killed or still running'})"
        for k in kept or []
    ]


def cmd_state(args: argparse.Namespace) -> int:
    from ..state import build_state_backend
    from .cdc import feed_health, feed_loads, health_line

    manifest = load_manifest(args.path)
    backend = build_state_backend(manifest.state, standalone=True)
    loads = [ld.name for ld in selected_loads(manifest, args.load)]
    if args.action == "show":
        rows = backend.list(manifest.pipeline, loads)
        if args.load:
            rows = [r for r in rows if r["load"] == args.load]
        feeds = {ld.name for ld in feed_loads(manifest, None)}
        for row in rows:
            if row["load"] in loads:
                row["kept_staging"] = _kept_staging(manifest.pipeline, manifest.load(row["load"]))
            if row["load"] in feeds:  # a change feed: its slot's lag and the WAL it holds back
                row["cdc"] = feed_health(manifest, manifest.load(row["load"]), row.get("updated_at"))
        human = "\n".join(
            f"{r['pipeline']}.{r['load']}: {json.dumps(r['state'])}"
            + (f"\n  error: {r['error']}" if r.get("error") else "")
            + (f"\n  {health_line(r['cdc'])}" if r.get("cdc") else "")
            + "".join(f"\n  {line}" for line in _staging_lines(r.get("kept_staging")))
            for r in rows
        )
        emit(args, {"backend": backend.name, "states": rows}, human or "no state")
        return EXIT_OK
    if not args.load:
        raise BadInputError(f"state {args.action} needs --load NAME")
    if args.action == "set":
        # Read as listed, not decoded: setting a good value is how corrupt state gets fixed.
        rows = backend.list(manifest.pipeline, [args.load])
        before = next(r["state"] for r in rows if r["load"] == args.load)
        record = state_for_set(manifest.load(args.load), args.value, before)
        backend.commit(manifest.pipeline, args.load, record, args.run_id or "dpone_cli__state_set")
        after = state_to_dict(record)
        emit(
            args,
            {"set": args.load, "before": before, "after": after},
            f"state of {manifest.pipeline}.{args.load}: {json.dumps(before)} -> {json.dumps(after)}",
        )
        return EXIT_OK
    existed = backend.reset(manifest.pipeline, args.load)
    # An unfinished run's resume checkpoint goes too: the next run starts from the reset state.
    backend.reset(manifest.pipeline, args.load + RESUME_SUFFIX)
    emit(
        args,
        {"reset": args.load, "existed": existed},
        f"state of {manifest.pipeline}.{args.load} {'reset' if existed else 'was already empty'}",
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dpone", description="Staged, state-safe data movement from YAML manifests."
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--format", choices=["human", "json"], default="human")
        return sp

    v = add("validate", "validate manifest files or folders")
    v.add_argument("paths", nargs="+")
    v.set_defaults(func=cmd_validate)
    pl = add("plan", "show the exact SQL a run would execute; touches nothing")
    pl.add_argument("path")
    pl.add_argument("--load")
    pl.set_defaults(func=cmd_plan)
    r = add("run", "run loads outside Airflow (connections from AIRFLOW_CONN_*)")
    r.add_argument("path")
    r.add_argument("--load")
    r.add_argument("--run-id")
    r.add_argument(
        "--report-dir", help="where run reports are saved (default $DPONE_REPORT_DIR or .dpone/reports)"
    )
    r.set_defaults(func=cmd_run)
    rp_ = add("replay", "load a kept staging manifest (sink.staging.files) into a load's sink again")
    rp_.add_argument("path")
    rp_.add_argument("--load", required=True)
    rp_.add_argument("--uri", required=True, help="the directory of the manifest.json to replay")
    rp_.add_argument("--conn-id", help="the store's connection (aws for s3://); its default when omitted")
    rp_.add_argument("--run-id")
    rp_.set_defaults(func=cmd_replay)
    rp = sub.add_parser("report", help="show saved run reports as a table, Markdown or JSON")
    rp.add_argument("files", nargs="*", help="report JSON files; default: the newest in --dir")
    rp.add_argument("--format", choices=["human", "markdown", "json"], default="human")
    rp.add_argument("--dir", help="report directory (default $DPONE_REPORT_DIR or .dpone/reports)")
    rp.add_argument("--pipeline")
    rp.add_argument("--load")
    rp.add_argument("--last", type=int, default=1, help="reports per load, newest last")
    rp.add_argument("--fail-on-failed", action="store_true", help="exit 1 if a shown run failed")
    rp.set_defaults(func=cmd_report)
    s = add("state", "show, set or reset incremental state")
    s.add_argument("action", choices=["show", "set", "reset"])
    s.add_argument("path")
    s.add_argument("--load")
    s.add_argument("--value", help="state set: a state record as JSON, or the new watermark")
    s.add_argument("--run-id", help="state set: the run id recorded with the state")
    s.set_defaults(func=cmd_state)
    from . import cdc, certify, doctor, perf, scaffold

    for module in (cdc, doctor, certify, perf, scaffold):
        module.add_parser(add)
    return p


class _MaskingFormatter(logging.Formatter):
    """Masks the credentials of every connection this process resolved (Airflow's task logs
    are masked by Airflow; here Airflow may not even be imported)."""

    def format(self, record: logging.LogRecord) -> str:
        from ..hooks.connection import known_credentials

        return str(known_credentials().redact(super().format(record)))


def configure_logging() -> None:
    """dpone's log lines to stderr (stdout carries the command's output), masked. Left alone
    when the process already logs somewhere (a test runner, a program that calls ``main``).
    The handler sits on dpone's own logger, so it stays when Airflow is imported later and
    configures the root logger its way."""
    ours = logging.getLogger("airflow_provider_dpone")
    if logging.getLogger().handlers or ours.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging()
    with command_output():  # stdout carries the command's output alone (cli/output.py)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except ManifestError as exc:
        emit(args, {"errors": [i.__dict__ for i in exc.issues]}, "\n".join(f"error {i}" for i in exc.issues))
        return EXIT_BAD_INPUT
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DponeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
