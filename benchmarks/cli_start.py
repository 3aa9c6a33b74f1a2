"""Benchmark: the ``dpone`` command end to end, from process start to exit, PostgreSQL -> PostgreSQL.

    .venv/bin/python benchmarks/cli_start.py [--rows 2000000] [--repeat 4] [--small-repeat 10]

Every process runs as an installed package does, with its bytecode compiled once: into a
temporary ``PYTHONPYCACHEPREFIX``, since a development shell may set
``PYTHONDONTWRITEBYTECODE`` (then every start compiles the project's modules again, about
0.15 s here; measured too, as its own row).

(a) A one-row full refresh by ``dpone run`` (connections from ``AIRFLOW_CONN_*``), wall time
of the whole process, ``--small-repeat`` times. Next to it, the same load in a fresh process
through the Airflow hooks (the operator's wiring: what ``dpone run`` did before it had the
standalone engine, Airflow imported first), ``python -c 'import airflow.sdk'`` alone, and
``dpone run`` without a bytecode cache. One extra untimed ``dpone run`` records the top-level
packages the command imported.

(b) A ``--rows`` full refresh of the ``events`` table of ``pg_to_pg.py`` (same table, same raw
pipe: ``psql \\copy ... to stdout (format binary)`` piped into ``psql \\copy ... from stdin``),
``--repeat`` interleaved trials: the pipe, then ``dpone run`` timed from process start to exit,
then the same load through the Airflow hooks in a fresh process (as in (a)). Each timed step
starts after a CHECKPOINT; end-to-end / pipe is the median of the trials' throughput ratios
(pipe seconds / dpone seconds).

Prints a table and writes JSON to benchmarks/results/cli_start.json. Targets (issue 16 item 6):
a one-row run under 1 s; the end-to-end full refresh at least 0.8x the pipe's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pg_to_pg import EVENTS, checkpoint, raw_pipe  # noqa: E402

from airflow_provider_dpone.demo.postgres_server import (  # noqa: E402
    airflow_conn_uri,
    recreate_database,
    resolve_postgres_uri,
)

DPONE = str(Path(sys.executable).with_name("dpone"))
ONE_ROW = "create table one (id bigint primary key, name text not null); insert into one values (1, 'a');"
# The CLI in a child process, reporting the top-level packages it imported (the untimed check).
CHECK_IMPORTS = (
    "import sys, json\n"
    "from airflow_provider_dpone.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('IMPORTED', json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    "sys.exit(code)\n"
)
# The same load through the Airflow hooks (the operator's wiring), in a fresh process.
VIA_AIRFLOW_HOOKS = (
    "import sys\n"
    "from airflow.sdk import BaseHook  # what the CLI imported first before the standalone engine\n"
    "from airflow_provider_dpone.dag_factory.files import load_manifest\n"
    "from airflow_provider_dpone.operators.wiring import assemble\n"
    "from airflow_provider_dpone.runtime.engine import run_load\n"
    "m = load_manifest(sys.argv[1])\n"
    "for load in m.loads:\n"
    "    assert run_load(m.pipeline, load, assemble(load, m.state), 'bench-hooks').status == 'success'\n"
)


def manifest(directory: Path, name: str, table: str) -> Path:
    doc = {
        "pipeline": f"cli_{name}",
        "state": {"backend": "table", "conn_id": "bench_dst"},
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "bench_src"},
            "sink": {"connector": "postgres", "conn_id": "bench_dst"},
        },
        "loads": [{"name": name, "source": {"table": table}, "sink": {"table": f"raw.{table}"}}],
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one process from start to exit, and its stdout; fails on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def dpone_run(path: Path, env: dict[str, str]) -> dict:
    """``dpone run PATH --format json``: wall seconds, and the load's own seconds and rows."""
    seconds, out = timed([DPONE, "run", str(path), "--format", "json"], env)
    report = json.loads(out)["reports"][0]
    assert report["status"] == "success", report
    return {"wall_seconds": seconds, "load_seconds": report["seconds"], "rows": report["rows"]}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def one_row(env: dict[str, str], work: Path, repeat: int) -> dict:
    path = manifest(work, "one", "one")
    # Warm: the target exists, the bytecode is compiled, the file cache holds the packages.
    dpone_run(path, env)
    timed([sys.executable, "-c", VIA_AIRFLOW_HOOKS, str(path)], env)
    imported = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS, "run", str(path)], env=env, capture_output=True, text=True
    ).stdout
    top = json.loads(imported.rpartition("IMPORTED ")[2])
    uncached = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
    uncached["PYTHONDONTWRITEBYTECODE"] = "1"
    print(f"[one row] {repeat} x dpone run, the Airflow hooks' process, import airflow.sdk", flush=True)
    runs, hooks, airflow, compiled = [], [], [], []
    for _ in range(repeat):  # interleaved, so a slow spell of the machine hits all of them
        runs.append(dpone_run(path, env))
        hooks.append(timed([sys.executable, "-c", VIA_AIRFLOW_HOOKS, str(path)], env)[0])
        airflow.append(timed([sys.executable, "-c", "import airflow.sdk"], env)[0])
        compiled.append(dpone_run(path, uncached)["wall_seconds"])
    walls = [r["wall_seconds"] for r in runs]
    return {
        "repeat": repeat,
        "imports_airflow": "airflow" in top,
        "imported_packages": top,
        "dpone_run_wall_seconds": summary(walls),
        "dpone_run_wall_trials": walls,
        "dpone_run_load_seconds": summary([r["load_seconds"] for r in runs]),
        "airflow_hooks_process_wall_seconds": summary(hooks),
        "airflow_hooks_process_wall_trials": hooks,
        "import_airflow_sdk_seconds": summary(airflow),
        "dpone_run_no_bytecode_cache_wall_seconds": summary(compiled),
    }


def full_refresh(src: str, dst: str, env: dict[str, str], work: Path, rows: int, repeat: int) -> dict:
    print(f"[{rows:,} rows] generating events ...", flush=True)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(EVENTS.replace("ROWS", str(int(rows))))
        size = conn.execute("select pg_total_relation_size('events')").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(dst, autocommit=True) as conn:  # the pipe's target has the source's DDL
        conn.execute(EVENTS.split(";")[0].replace("create table events", "create table events_shape"))
    path = manifest(work, "events", "events")
    pipes, runs, hooks = [], [], []
    for trial in range(1, repeat + 1):
        print(
            f"[{rows:,} rows] trial {trial}/{repeat}: raw psql binary COPY pipe, dpone run, "
            "the Airflow hooks' process",
            flush=True,
        )
        checkpoint(dst)
        pipes.append(raw_pipe(src, dst)[0])
        checkpoint(dst)
        runs.append(dpone_run(path, env))
        assert runs[-1]["rows"] == rows
        checkpoint(dst)
        hooks.append(timed([sys.executable, "-c", VIA_AIRFLOW_HOOKS, str(path)], env)[0])
    ratios = [p / r["wall_seconds"] for p, r in zip(pipes, runs, strict=True)]
    hooks_ratios = [p / h for p, h in zip(pipes, hooks, strict=True)]
    walls = [r["wall_seconds"] for r in runs]
    return {
        "rows": rows,
        "repeat": repeat,
        "source_table_bytes": size,
        "pipe_seconds": summary(pipes),
        "pipe_seconds_trials": pipes,
        "dpone_run_wall_seconds": summary(walls),
        "dpone_run_wall_trials": walls,
        "dpone_run_load_seconds": summary([r["load_seconds"] for r in runs]),
        "end_to_end_vs_pipe": statistics.median(ratios),
        "end_to_end_vs_pipe_trials": ratios,
        "airflow_hooks_process_wall_seconds": summary(hooks),
        "airflow_hooks_process_wall_trials": hooks,
        "airflow_hooks_end_to_end_vs_pipe": statistics.median(hooks_ratios),
        "airflow_hooks_end_to_end_vs_pipe_trials": hooks_ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=4, help="pipe / dpone pairs of the full refresh")
    parser.add_argument("--small-repeat", type=int, default=10, help="trials of the one-row load")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cli_start.json"))
    args = parser.parse_args()
    admin, origin = resolve_postgres_uri(ROOT / ".dpone" / "pgdata-bench")
    src = recreate_database(admin, "dpone_cli_src")
    dst = recreate_database(admin, "dpone_cli_dst")
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(ONE_ROW)
    with tempfile.TemporaryDirectory(prefix="dpone-cli-bench-") as tmp:
        work = Path(tmp)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".airflow")),
            "AIRFLOW_CONN_BENCH_SRC": airflow_conn_uri(src),
            "AIRFLOW_CONN_BENCH_DST": airflow_conn_uri(dst),
            "DPONE_REPORT_DIR": str(work / "reports"),
        }
        small = one_row(env, work, args.small_repeat)
        big = full_refresh(src, dst, env, work, args.rows, args.repeat)
    result = {"postgres": origin, "cpus": os.cpu_count(), "one_row": small, "full_refresh": big}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    s, b = small, big
    print(f"\nPostgreSQL: {origin}; wall seconds, process start to exit (median, min-max)")
    print(f"{'one-row load':<48} {'median':>8} {'min':>8} {'max':>8}")
    for label, key in (
        ("dpone run", "dpone_run_wall_seconds"),
        ("  of which the load itself", "dpone_run_load_seconds"),
        ("same load through the Airflow hooks", "airflow_hooks_process_wall_seconds"),
        ("python -c 'import airflow.sdk'", "import_airflow_sdk_seconds"),
        ("dpone run, no bytecode cache", "dpone_run_no_bytecode_cache_wall_seconds"),
    ):
        v = s[key]
        print(f"{label:<48} {v['median']:>8.2f} {v['min']:>8.2f} {v['max']:>8.2f}")
    print(f"dpone run imported Airflow: {s['imports_airflow']}")
    print(f"\n{b['rows']:,}-row full refresh ({b['repeat']} trials)")
    for label, key in (
        ("raw psql binary COPY pipe", "pipe_seconds"),
        ("dpone run, process start to exit", "dpone_run_wall_seconds"),
        ("  of which the load itself", "dpone_run_load_seconds"),
        ("same load through the Airflow hooks", "airflow_hooks_process_wall_seconds"),
    ):
        v = b[key]
        print(f"{label:<48} {v['median']:>8.2f} {v['min']:>8.2f} {v['max']:>8.2f}")
    for label, key in (
        ("dpone run", "end_to_end_vs_pipe"),
        ("Airflow hooks", "airflow_hooks_end_to_end_vs_pipe"),
    ):
        trials = ", ".join(f"{r:.2f}" for r in b[f"{key}_trials"])
        print(f"{label} end to end / pipe throughput: {b[key]:.2f}x (trials: {trials})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
