"""``dpone perf advise MANIFEST --load NAME``: what the load's saved run reports say about its
speed (the dominant phase, the byte path, staging, the incremental window, the merge target's
indexes and fillfactor, parallel ranges), each advice with the figures it rests on and the
change it suggests. Advice comes from ``runtime.perf_advice`` (pure); this module reads the
reports, the manifest and, unless ``--no-inspect``, the PostgreSQL tables of the load."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..contracts.errors import BadInputError
from .output import EXIT_OK, out

_VERDICT = {"suggest": "SUGGEST", "fine": "fine", "not_known": "not known"}


def cmd_perf(args: argparse.Namespace) -> int:
    from ..contracts.connectors import CONNECTORS
    from ..dag_factory.files import load_manifest
    from ..runtime.perf_advice import advise
    from ..runtime.report_store import find_reports, report_dir

    if args.last < 1:
        raise BadInputError("--last: give 1 or more reports to consider")
    manifest = load_manifest(args.path)
    try:
        load = manifest.load(args.load)
    except KeyError:
        names = ", ".join(ld.name for ld in manifest.loads)
        raise BadInputError(
            f"--load: no load '{args.load}' in {manifest.source_file}; loads: {names}"
        ) from None
    directory = report_dir(args.dir)
    assert directory is not None  # the default directory is always set
    try:
        reports = (
            find_reports(directory, manifest.pipeline, load.name, args.last) if directory.is_dir() else []
        )
    except (OSError, ValueError, TypeError) as exc:
        raise BadInputError(f"--dir: a file under {directory} is not a dpone run report ({exc})") from None
    if not reports:
        raise BadInputError(
            f"no run reports of {manifest.pipeline}.{load.name} under {directory} (--dir, else "
            f"$DPONE_REPORT_DIR, else .dpone/reports); produce some with "
            f"`dpone run {args.path} --load {load.name} --report-dir {directory}`"
        )
    inspections = []
    if not args.no_inspect:
        from .perf_inspect import inspect_load

        inspections = inspect_load(load)
    advice = advise(
        reports, load, CONNECTORS.get(load.source.connector), CONNECTORS.get(load.sink.connector), inspections
    )
    data: dict[str, Any] = {
        "pipeline": manifest.pipeline,
        "load": load.name,
        "report_dir": str(directory),
        "reports": [
            {
                "run_id": r.run_id,
                "started_at": r.started_at,
                "status": r.status,
                "seconds": r.seconds,
                "rows": r.rows,
                "fast_path": r.fast_path,
            }
            for r in reports
        ],
        "inspected": [
            {"role": i.role, "table": i.table, "error": i.error, "facts": i.facts and vars(i.facts)}
            for i in inspections
        ],
        "advice": [a.to_dict() for a in advice],
    }
    if args.format == "json":
        out(json.dumps(data, indent=2, default=str))
    else:
        out(render(data))
    return EXIT_OK


def render(data: dict[str, Any]) -> str:
    """The advice as text: one block per advice, its evidence grouped by where it was read."""
    reports = data["reports"]
    lines = [
        f"perf advice for {data['pipeline']}.{data['load']}: {len(reports)} report(s) from "
        f"{data['report_dir']}, newest {reports[-1]['run_id']} ({reports[-1]['started_at']})"
    ]
    for i in data["inspected"]:
        lines.append(f"inspected {i['role']} table {i['table']}: {i['error'] or 'read'}")
    if not data["inspected"]:
        lines.append("inspected: no table (--no-inspect, or no PostgreSQL table in this load)")
    for a in data["advice"]:
        lines += ["", f"[{a['topic']}] {_VERDICT.get(a['verdict'], a['verdict'])}: {a['finding']}"]
        grouped: dict[str, list[str]] = {}
        for e in a["evidence"]:
            grouped.setdefault(e["source"], []).append(f"{e['field']}={json.dumps(e['value'], default=str)}")
        lines += [f"  evidence ({where}): {', '.join(items)}" for where, items in grouped.items()]
        change = a["change"]
        if change:
            lines.append(f"  change: {change['path']}")
            if change["yaml"]:
                lines += [f"    {line}" for line in change["yaml"].splitlines()]
            lines += [f"    {statement};" for statement in change["sql"]]
            if change["note"]:
                lines.append(f"    ({change['note']})")
    return "\n".join(lines)


def add_parser(add: Any) -> None:
    p = add("perf", "performance advice for a load, from its saved run reports")
    p.add_argument("action", choices=["advise"])
    p.add_argument("path", metavar="MANIFEST")
    p.add_argument("--load", required=True)
    p.add_argument("--dir", help="report directory (default $DPONE_REPORT_DIR or .dpone/reports)")
    p.add_argument(
        "--last", type=int, default=5, help="the newest N reports of the load considered (default 5)"
    )
    p.add_argument(
        "--no-inspect",
        action="store_true",
        help="advise from the reports alone: do not connect to the load's PostgreSQL tables",
    )
    p.set_defaults(func=cmd_perf)
