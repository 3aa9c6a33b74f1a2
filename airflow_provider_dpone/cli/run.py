"""``dpone run`` and ``dpone replay``: loads through the standalone engine, in dependency order."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ..contracts.errors import BadInputError, DponeError
from ..contracts.manifest import LoadSpec, Manifest
from ..dag_factory.files import load_manifest
from .output import EXIT_FAILED, EXIT_OK, emit, out


def selected_loads(manifest: Manifest, name: str | None) -> list[LoadSpec]:
    """Loads in dependency order, or just ``name``."""
    if name:
        try:
            return [manifest.load(name)]
        except KeyError:
            names = ", ".join(ld.name for ld in manifest.loads)
            raise BadInputError(
                f"--load: no load '{name}' in {manifest.source_file}; loads: {names}"
            ) from None
    done: list[LoadSpec] = []
    pending = list(manifest.loads)
    while pending:
        ready = [ld for ld in pending if all(d in {x.name for x in done} for d in ld.depends_on)]
        done.extend(ready)
        pending = [ld for ld in pending if ld not in ready]
    return done


def cmd_run(args: argparse.Namespace) -> int:
    from ..operators.wiring import assemble
    from ..runtime.partitioned import run_any_load
    from ..runtime.report_store import report_dir, save_report

    manifest = load_manifest(args.path)
    run_id = args.run_id or "dpone_cli__" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    directory = report_dir(args.report_dir)
    reports, failed = [], False
    not_done: dict[str, str] = {}  # load -> the failed load it is (or depends on), as Airflow skips
    for load in selected_loads(manifest, args.load):
        blocker = next((not_done[d] for d in load.depends_on if d in not_done), None)
        if blocker is not None:  # upstream failed: not run, said so (its state is untouched)
            not_done[load.name] = blocker
            reason = f"it depends on load '{blocker}', which failed"
            reports.append({"load": load.name, "status": "upstream_failed", "error": f"not run: {reason}"})
            if args.format != "json":
                print(f"load {load.name} NOT RUN: {reason}", file=sys.stderr)
            continue
        try:
            parts = assemble(load, manifest.state, standalone=True)
            check_writable = getattr(parts.state, "check_writable", None)
            if check_writable is not None:  # before any data moves
                check_writable(manifest.pipeline, load.name)
            try:
                report = run_any_load(manifest.pipeline, load, parts, run_id)
            except Exception as exc:
                if directory is not None and getattr(exc, "run_report", None) is not None:
                    save_report(exc.run_report, directory)  # type: ignore[attr-defined]
                raise
            if directory is not None:
                save_report(report, directory)
            reports.append(report.to_dict())
            if args.format != "json":
                out(
                    f"load {load.name}: {report.status}, {report.rows or 0:,} rows in {report.seconds:.2f}s, "
                    f"fast path {report.fast_path}, state {json.dumps(report.state_after)}"
                )
        except Exception as exc:
            failed = True
            message = str(exc) if isinstance(exc, DponeError) else f"{type(exc).__name__}: {exc}"
            failed_report = getattr(exc, "run_report", None)  # the failed run's report, when it had one
            reports.append(
                failed_report.to_dict()
                if failed_report is not None
                else {"load": load.name, "status": "failed", "error": message}
            )
            if args.format != "json":
                print(f"load {load.name} FAILED: {message}", file=sys.stderr)
            not_done[load.name] = load.name  # its dependents do not run; the other loads do
    if args.format == "json":
        out(
            json.dumps(
                {"pipeline": manifest.pipeline, "run_id": run_id, "reports": reports}, indent=2, default=str
            )
        )
    return EXIT_FAILED if failed else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Load a kept staging manifest into one load's sink again; the load's state does not move."""
    from ..contracts.strategies import Strategy
    from ..operators.wiring import assemble
    from ..runtime.engine import run_load
    from ..runtime.replay import ReplaySource

    manifest = load_manifest(args.path)
    load = selected_loads(manifest, args.load)[0]
    if load.sink.strategy in (Strategy.REPLACE, Strategy.PARTITION_REPLACE):
        raise BadInputError(
            f"--load: '{load.name}' uses {load.sink.strategy.value}, which deletes the load's current range "
            "before inserting: a replayed old batch would replace today's rows; replay loads that merge, "
            "append or refresh"
        )
    run_id = args.run_id or "dpone_replay__" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    try:
        parts = assemble(load, manifest.state, standalone=True)
        parts.source = ReplaySource(args.uri, args.conn_id, manifest.pipeline, load.name)
        report = run_load(manifest.pipeline, load, parts, run_id)
        if report.status != "success":
            raise BadInputError(f"the replay ended as '{report.status}': nothing was loaded")
    except Exception as exc:
        message = str(exc) if isinstance(exc, DponeError) else f"{type(exc).__name__}: {exc}"
        emit(
            args,
            {"load": load.name, "status": "failed", "error": message},
            f"replay of {args.uri} FAILED: {message}",
        )
        return EXIT_FAILED
    human = f"replayed {args.uri} into load {load.name}: {report.rows or 0:,} rows; state unchanged"
    emit(args, report.to_dict(), human)
    return EXIT_OK
