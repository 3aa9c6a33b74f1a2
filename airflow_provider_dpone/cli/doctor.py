"""``dpone doctor [MANIFEST...]``: for every connection the manifests use, whether it is
reachable (timed) and authenticated, the server's version and the settings that matter, and the
privileges each load needs; then the local drivers and tools. Each finding names its fix.
Nothing is written (a probe's objects are rolled back or removed). Exit 1 when a load cannot run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from ..contracts.connectors import CONNECTORS
from ..contracts.doctor import ConnectionUse, Finding, connection_uses, exit_code, render, summary
from ..contracts.errors import MissingExtraError
from ..contracts.manifest import Manifest
from .output import EXIT_BAD_INPUT, out

DEFAULT_FOLDER = "dags/manifests"
# connector: "module:function" taking (engine, ConnectionUse) and returning findings
CHECKS = {
    "postgres": "airflow_provider_dpone.hooks.postgres_doctor:check",
    "clickhouse": "airflow_provider_dpone.hooks.clickhouse_doctor:check",
    "kafka": "airflow_provider_dpone.hooks.kafka_doctor:check",
    "bigquery": "airflow_provider_dpone.hooks.bigquery_doctor:check",
    "mssql": "airflow_provider_dpone.hooks.mssql_doctor:check",
    **{
        c: "airflow_provider_dpone.hooks.rest_doctor:check"
        for c, i in CONNECTORS.items()
        if i.extra == "rest"
    },
}
# seconds a connection attempt may take before the host counts as unreachable
CONNECT_TIMEOUT = "5"


def _airflow_needed(manifests: list[Manifest], uses: list[ConnectionUse]) -> list[str]:
    """What in the manifests needs Airflow installed outside a task (the CLI's own paths don't)."""
    from ..hooks.registry import ENGINES

    why = [f"state of {m.pipeline} in Airflow Variables" for m in manifests if m.state.backend == "variable"]
    why += [
        f"connector {u.connector} ({u.conn_id}) runs as an Airflow hook"
        for u in uses
        if u.connector not in ENGINES
    ]
    return why


def tool_findings(manifests: list[Manifest], uses: list[ConnectionUse]) -> list[Finding]:
    """The drivers (pip extras) the connectors need and Airflow where the loads need it."""
    found: list[Finding] = []
    for connector in dict.fromkeys(u.connector for u in uses):
        info = CONNECTORS.get(connector)
        if info is None:
            continue
        found.append(_extra_finding(connector, info.extra))
    needs_airflow = _airflow_needed(manifests, uses)
    if needs_airflow:
        if importlib.util.find_spec("airflow") is None:
            found.append(
                Finding(
                    "fail",
                    "tool",
                    "airflow",
                    f"Apache Airflow is not installed; needed for: {'; '.join(needs_airflow)}",
                    fix="pip install 'apache-airflow>=3'",
                )
            )
        else:
            version = importlib.metadata.version("apache-airflow")
            found.append(
                Finding("ok", "tool", "airflow", f"Apache Airflow {version} ({'; '.join(needs_airflow)})")
            )
            found += [_variables_finding(m) for m in manifests if m.state.backend == "variable"]
    return found


def _variables_finding(manifest: Manifest) -> Finding:
    """State in Airflow Variables: read one load's, as a run starts (read-only)."""
    from ..state import build_state_backend

    subject = f"{manifest.pipeline} state"
    try:
        build_state_backend(manifest.state, standalone=True).get(manifest.pipeline, manifest.loads[0].name)
    except Exception as exc:
        from ..hooks.connection import known_credentials

        message = known_credentials().redact(f"{type(exc).__name__}: {exc}".splitlines()[0])
        return Finding(
            "fail",
            "reachable",
            subject,
            f"Airflow Variables cannot be read: {message}",
            fix="run `airflow db migrate`, or point AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at Airflow's database",
        )
    return Finding("ok", "reachable", subject, "Airflow Variables can be read")


def _extra_finding(connector: str, extra: str) -> Finding:
    from ..hooks.registry import hook_class

    try:
        hook_class(connector, standalone=True)
    except MissingExtraError as exc:
        return Finding(
            "fail", "tool", connector, str(exc), fix=f"pip install 'airflow-provider-dpone[{extra}]'"
        )
    except ImportError as exc:  # Airflow itself, for the connectors that are Airflow hooks
        return Finding(
            "fail", "tool", connector, f"cannot import its hook: {exc}", fix="pip install 'apache-airflow>=3'"
        )
    return Finding("ok", "tool", connector, f"driver installed (extra '{extra}')")


def connection_findings(use: ConnectionUse) -> list[Finding]:
    """Every finding for one connection, from its connector's check (``CHECKS``)."""
    from ..hooks.registry import build_hook

    try:
        hook = build_hook(use.connector, use.conn_id, standalone=True)
        own = getattr(hook, "connection", None)  # an API hook's: a public API needs none
        if callable(own):
            own()
        else:
            hook.get_connection(use.conn_id)
    except MissingExtraError:
        return []  # the tools section says which extra to install
    except Exception as exc:
        return [
            Finding(
                "fail",
                "reachable",
                use.conn_id,
                f"connection '{use.conn_id}' cannot be read: {type(exc).__name__}: {exc}",
                fix=f"set AIRFLOW_CONN_{use.conn_id.upper()} or add the connection in Airflow",
            )
        ]
    try:
        module, _, name = CHECKS[use.connector].partition(":")  # every connector has one (a test)
        check = getattr(importlib.import_module(module), name)
        return list(check(hook, use))
    except Exception as exc:  # a check that breaks is a finding, never a traceback with secrets
        message = hook.redactor().redact(f"{type(exc).__name__}: {exc}")
        return [Finding("fail", "reachable", use.conn_id, f"the check failed: {message}")]
    finally:
        release = getattr(hook, "release", None)
        if release is not None:
            release()


def _bad_input(args: argparse.Namespace, errors: list[str]) -> int:
    """Manifests that do not validate: doctor checks valid ones only (exit 2)."""
    hint = "doctor checks valid manifests only: fix these first (`dpone validate`)"
    if args.format == "json":
        out(json.dumps({"errors": errors, "hint": hint}, indent=2))
    else:
        out("\n".join([*(f"error {e}" for e in errors), hint]))
    return EXIT_BAD_INPUT


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..dag_factory.files import validate_paths

    paths = args.paths or [DEFAULT_FOLDER]
    if not args.paths and not Path(DEFAULT_FOLDER).is_dir():
        return _bad_input(args, [f"name the manifests to check (no {DEFAULT_FOLDER} folder here)"])
    manifests, issues = validate_paths(paths)
    if issues or not manifests:
        errors = [str(i) for i in issues] or [f"no manifest files found in {' '.join(paths)}"]
        return _bad_input(args, errors)
    os.environ.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)  # an unreachable host fails fast
    uses = connection_uses(manifests)
    groups = [(f"{use.conn_id} ({use.connector})", connection_findings(use)) for use in uses]
    groups.append(("local tools", tool_findings(manifests, uses)))
    everything = [f for _, findings in groups for f in findings]
    if args.format == "json":
        data = {
            "manifests": [m.source_file for m in manifests],
            "connections": [
                {"conn_id": use.conn_id, "connector": use.connector, "findings": [f.to_dict() for f in found]}
                for use, (_, found) in zip(uses, groups, strict=False)
            ],
            "tools": [f.to_dict() for f in groups[-1][1]],
            "summary": summary(everything),
            "can_run": exit_code(everything) == 0,
        }
        out(json.dumps(data, indent=2))
    else:
        out(render(groups))
    return exit_code(everything)


def add_parser(add: Any) -> None:
    d = add("doctor", "check the connections, privileges, settings and tools the manifests' loads need")
    d.add_argument("paths", nargs="*", help=f"manifest files or folders (default: {DEFAULT_FOLDER})")
    d.set_defaults(func=cmd_doctor)
