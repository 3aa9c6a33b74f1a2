"""Benchmark: reading a Mindbox background export (start, poll, stream CSV files) vs a raw download.

    .venv/bin/python benchmarks/mindbox_export.py --rows 1000000

A local server (a child process on a real socket) answers the v3 export operation and serves
the export as two CSV files (``;``, BOM, like Mindbox). In one run it times:

- **raw**: the physical limit of this path in Python: ``httpx`` streams each file and
  ``csv.reader`` splits it into rows, nothing else;
- **dpone source**: ``MindboxHook.extract`` with typed ``source.fields``: start, poll, stream,
  header names, typed rows in batches of 10,000 (the batches are counted, not loaded);
- **dpone to PostgreSQL**: the same export through ``run_load`` into a PostgreSQL table.

Each runs in its own process, so its peak RSS is its own. Memory must stay flat as the file
grows (the files are never held whole). Prints a table and writes JSON to
benchmarks/results/mindbox_export.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "bench-secret"
FIELDS = {
    "customer_ids_mindbox_id": "int64",
    "customer_email": "string",
    "customer_full_name": "string",
    "customer_balance": "decimal(18,2)",
    "customer_change_date_time_utc": "timestamp",
}


def write_files(directory: Path, rows: int) -> list[Path]:
    header = [
        "CustomerIdsMindboxId",
        "CustomerEmail",
        "CustomerFullName",
        "CustomerBalance",
        "CustomerChangeDateTimeUtc",
    ]
    paths, half = [], rows // 2
    for index, (start, stop) in enumerate(((1, half + 1), (half + 1, rows + 1))):
        path = directory / f"{index}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out, delimiter=";")
            writer.writerow(header)
            for i in range(start, stop):
                writer.writerow(
                    [
                        i,
                        f"c{i}@example.com",
                        f"Customer number {i}",
                        f"{i % 100000 / 100:.2f}",
                        "2026-03-01 12:00:00",
                    ]
                )
        paths.append(path)
    return paths


def serve(directory: str, port_file: str) -> None:
    """The fake Mindbox: one export whose files are the CSVs in ``directory``."""
    files = sorted(Path(directory).glob("*.csv"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.headers.get("Authorization") != f"SecretKey {KEY}":
                return self._send(401, b"{}")
            if "exportId" not in request:
                return self._send(200, json.dumps({"status": "Success", "exportId": "bench"}).encode())
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            urls = [f"{host}/files/{f.name}?sig=x" for f in files]
            answer = {"status": "Success", "exportResult": {"processingStatus": "Ready", "urls": urls}}
            return self._send(200, json.dumps(answer).encode())

        def do_GET(self) -> None:
            path = Path(directory) / self.path.split("?")[0].rsplit("/", 1)[-1]
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as data:
                while chunk := data.read(1 << 20):
                    self.wfile.write(chunk)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_raw(url: str) -> dict:
    import httpx

    started, rows = time.perf_counter(), 0
    answer = httpx.post(
        f"{url}/v3/operations/sync", json={"exportId": "bench"}, headers={"Authorization": f"SecretKey {KEY}"}
    ).json()
    for link in answer["exportResult"]["urls"]:
        with httpx.stream("GET", link) as response:
            lines = (line + "\n" for line in response.iter_lines())
            reader = csv.reader(lines, delimiter=";")
            next(reader)
            rows += sum(1 for _ in reader)
    return {"seconds": time.perf_counter() - started, "rows": rows, "peak_rss_mb": _peak_mb()}


def _manifest(url: str, table: str | None):
    from airflow_provider_dpone.contracts.manifest import parse_manifest

    os.environ["AIRFLOW_CONN_MBX"] = json.dumps({"conn_type": "http", "host": url, "password": KEY})
    sink = (
        {"connector": "postgres", "conn_id": "bench_dst", "table": table, "strategy": "full_refresh"}
        if table
        else {
            "connector": "postgres",
            "conn_id": "bench_dst",
            "table": "raw.unused",
            "strategy": "full_refresh",
        }
    )
    return parse_manifest(
        {
            "pipeline": "bench",
            "state": {"backend": "table", "conn_id": "bench_dst"},
            "loads": [
                {
                    "name": "customers",
                    "source": {
                        "connector": "mindbox",
                        "conn_id": "mbx",
                        "resource": "export",
                        "fields": FIELDS,
                        "options": {
                            "endpoint_id": "Bench",
                            "operation": "Export.Customers",
                            "poll_interval": 0,
                        },
                    },
                    "sink": sink,
                }
            ],
        }
    )


def child_source(url: str) -> dict:
    from airflow_provider_dpone.apis.mindbox import MindboxHook

    spec = _manifest(url, None).loads[0].source
    started, rows, batches = time.perf_counter(), 0, 0
    for batch in MindboxHook(conn_id="mbx").extract(spec, None).artifact.batches:
        rows += len(batch)
        batches += 1
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "batches": batches,
        "peak_rss_mb": _peak_mb(),
    }


def child_load(url: str) -> dict:
    from airflow_provider_dpone.operators.wiring import assemble
    from airflow_provider_dpone.runtime.engine import run_load

    m = _manifest(url, "raw.mindbox_customers")
    parts = assemble(m.loads[0], m.state)
    started = time.perf_counter()
    report = run_load(m.pipeline, m.loads[0], parts, run_id=f"bench-{time.time_ns()}")
    return {"seconds": time.perf_counter() - started, "rows": report.rows, "peak_rss_mb": _peak_mb()}


def run_child(kind: str, url: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--url", url],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(rows: int, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"[{rows:,} rows] writing the export files ...", flush=True)
        files = write_files(Path(tmp), rows)
        size = sum(f.stat().st_size for f in files)
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", tmp, str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            print(f"[{rows:,} rows] raw httpx + csv.reader ...", flush=True)
            raw = run_child("raw", url, env)
            print(f"[{rows:,} rows] dpone source (typed batches) ...", flush=True)
            source = run_child("source", url, env)
            print(f"[{rows:,} rows] dpone export -> PostgreSQL ...", flush=True)
            load = run_child("load", url, env)
        finally:
            server.terminate()
            server.wait()
    assert raw["rows"] == source["rows"] == load["rows"] == rows, (raw, source, load)
    return {"rows": rows, "file_bytes": size, "raw": raw, "source": source, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--child", choices=["raw", "source", "load"])
    parser.add_argument("--url")
    parser.add_argument("--serve", nargs=2)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    if args.child:
        print(
            json.dumps({"raw": child_raw, "source": child_source, "load": child_load}[args.child](args.url))
        )
        return
    sys.path.insert(0, str(HERE.parent))
    from airflow_provider_dpone.demo.postgres_server import (
        airflow_conn_uri,
        recreate_database,
        resolve_postgres_uri,
    )

    admin, origin = resolve_postgres_uri(HERE.parent / ".dpone" / "pgdata-bench")
    dst = recreate_database(admin, "dpone_bench_mindbox")
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(HERE.parent / ".airflow")),
        "AIRFLOW_CONN_BENCH_DST": airflow_conn_uri(dst),
        "PYTHONPATH": str(HERE.parent),
    }
    print(f"PostgreSQL: {origin}", flush=True)
    results = [bench(n, env) for n in args.rows]
    print(
        f"{'rows':>10} {'MB':>6} {'raw s':>7} {'source s':>8} {'src/raw':>7} {'load s':>7} {'RSS raw':>7} {'RSS src':>7} {'RSS load':>8}"
    )
    for r in results:
        print(
            f"{r['rows']:>10,} {r['file_bytes'] / 2**20:>6.0f} {r['raw']['seconds']:>7.2f} {r['source']['seconds']:>8.2f} "
            f"{r['source']['seconds'] / r['raw']['seconds']:>6.2f}x {r['load']['seconds']:>7.2f} "
            f"{r['raw']['peak_rss_mb']:>7.0f} {r['source']['peak_rss_mb']:>7.0f} {r['load']['peak_rss_mb']:>8.0f}"
        )
    out = HERE / "results" / "mindbox_export.json"
    out.write_text(json.dumps({"results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
