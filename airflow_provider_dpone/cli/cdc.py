"""``dpone cdc setup|status|drop``: the replication slots and publications of a manifest's
PostgreSQL change feeds (``incremental.mode: cdc``), and the feed health ``dpone state show``
adds to each such load."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from ..contracts.errors import BadInputError
from ..contracts.manifest import LoadSpec, Manifest
from ..contracts.strategies import IncrementalMode
from .output import EXIT_FAILED, EXIT_OK, out

UNHEALTHY = ("over", "lost", "missing", "unknown")


def feed_loads(manifest: Manifest, name: str | None) -> list[LoadSpec]:
    """The loads of ``manifest`` that read a PostgreSQL change feed (``name``: that one only)."""
    loads = [
        ld
        for ld in manifest.loads
        if ld.source.connector == "postgres"
        and ld.source.incremental is not None
        and ld.source.incremental.mode is IncrementalMode.CDC
        and (name is None or ld.name == name)
    ]
    if name is not None and not loads:
        raise BadInputError(
            f"--load: '{name}' is not a PostgreSQL cdc load of pipeline '{manifest.pipeline}'"
        )
    return loads


def _feed(manifest: Manifest, load: LoadSpec) -> tuple[Any, Any]:
    from ..hooks.registry import build_hook

    hook = build_hook(load.source.connector, load.source.conn_id, standalone=True)
    return hook, hook.cdc_feed(load.source, f"{manifest.pipeline}.{load.name}")


def feed_health(manifest: Manifest, load: LoadSpec, updated_at: Any = None) -> dict[str, Any]:
    """The slot's health for ``load``, with the age of its last committed position (from the
    state's ``updated_at``); an unreachable source is reported, never raised."""
    hook, feed = _feed(manifest, load)
    try:
        health = feed.health()
    except Exception as exc:
        return {"verdict": "unknown", "message": hook.redactor().redact(f"{type(exc).__name__}: {exc}")}
    finally:
        hook.release()
    committed = _timestamp(updated_at)
    if committed is not None:
        health["age_seconds"] = round((dt.datetime.now(dt.timezone.utc) - committed).total_seconds())
    return health


def _timestamp(value: Any) -> dt.datetime | None:
    """A state backend's ``updated_at`` (a datetime, or its text) as an aware datetime."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def health_line(health: dict[str, Any]) -> str:
    age = f", position committed {health['age_seconds']}s ago" if "age_seconds" in health else ""
    return f"cdc {health['verdict']}: {health['message']}{age}"


def cmd_cdc(args: argparse.Namespace) -> int:
    from ..dag_factory.files import load_manifest
    from ..state import build_state_backend

    manifest = load_manifest(args.path)
    loads = feed_loads(manifest, args.load)
    if not loads:
        raise BadInputError(f"{args.path}: no load reads a PostgreSQL change feed (incremental.mode: cdc)")
    found: list[dict[str, Any]] = []
    failed = False
    if args.action == "status":
        backend = build_state_backend(manifest.state, standalone=True)
        listed = {r["load"]: r for r in backend.list(manifest.pipeline, [ld.name for ld in loads])}
        for load in loads:
            health = feed_health(manifest, load, listed.get(load.name, {}).get("updated_at"))
            failed |= health["verdict"] in UNHEALTHY
            found.append({"load": load.name, **health})
        lines = [f"{manifest.pipeline}.{o['load']}: {health_line(o)}" for o in found]
    else:
        for load in loads:
            hook, feed = _feed(manifest, load)
            try:
                result = feed.setup() if args.action == "setup" else feed.drop()
            finally:
                hook.release()
            if args.action == "drop":  # its position is gone with the slot: the next run re-snapshots
                backend = build_state_backend(manifest.state, standalone=True)
                result["state_reset"] = backend.reset(manifest.pipeline, load.name)
            found.append({"load": load.name, **result})
        lines = [
            f"{manifest.pipeline}.{o['load']}: {json.dumps({k: v for k, v in o.items() if k != 'load'})}"
            for o in found
        ]
    if args.format == "json":
        out(json.dumps({"pipeline": manifest.pipeline, args.action: found}, default=str, indent=2))
    else:
        out("\n".join(lines))
    return EXIT_FAILED if failed else EXIT_OK


def add_parser(add: Any) -> None:
    c = add("cdc", "set up, check or drop the replication slots of PostgreSQL cdc loads")
    c.add_argument("action", choices=["setup", "status", "drop"])
    c.add_argument("path")
    c.add_argument("--load")
    c.set_defaults(func=cmd_cdc)
