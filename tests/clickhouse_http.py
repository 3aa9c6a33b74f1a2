"""A small HTTP front over the in-process ClickHouse engine (chDB), for testing the HTTP path.

It speaks the part of ClickHouse's HTTP interface clickhouse-connect uses: the query in the
URL (``query=``) or the body, ``param_<name>`` bind parameters, ``database``, a few settings,
chunked insert bodies, the result in the query's FORMAT, and errors as HTTP 500 with the
exception text. Everything it runs, runs in the real engine.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\b", re.IGNORECASE)
_SETTINGS = {"date_time_input_format", "input_format_null_as_default", "max_block_size", "mutations_sync"}


class ChdbHttpFront:
    def __init__(self, path: str, user: str = "default", password: str = "") -> None:
        import chdb

        self.conn = chdb.connect(path)
        self.lock = threading.Lock()
        self.user, self.password = user, password
        self.requests: list[str] = []  # every statement received, for the tests to inspect
        self.fail_inserts = 0  # the next N inserts with data fail with a server error
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if urlparse(self.path).path == "/ping":
                    self._send(200, b"Ok.\n", {})
                    return
                self._handle(b"")

            def do_POST(self) -> None:
                self._handle(self._body())

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, body: bytes) -> None:
                params = dict(parse_qsl(urlparse(self.path).query, keep_blank_values=True))
                user = self.headers.get("X-ClickHouse-User", params.get("user", "default"))
                key = self.headers.get("X-ClickHouse-Key", params.get("password", ""))
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    import base64

                    user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
                if (user, key) != (front.user, front.password):
                    message = (
                        f"Code: 516. DB::Exception: {user}: Authentication failed. (AUTHENTICATION_FAILED)"
                    )
                    self._send(401, message.encode(), {"X-ClickHouse-Exception-Code": "516"})
                    return
                try:
                    out, fmt = front.run(params, body)
                except Exception as exc:  # the engine's own error text, as ClickHouse returns it
                    text = str(exc)
                    code = re.search(r"Code: (\d+)", text)
                    headers = {"X-ClickHouse-Exception-Code": code.group(1) if code else "1"}
                    self._send(500, text.encode(), headers)
                    return
                summary = json.dumps({"read_rows": "0", "written_rows": "0"})
                headers = {"X-ClickHouse-Summary": summary, "X-ClickHouse-Timezone": "UTC"}
                if fmt:
                    headers["X-ClickHouse-Format"] = fmt
                self._send(200, out, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def run(self, params: dict[str, str], body: bytes) -> tuple[bytes, str | None]:
        query = params.get("query")
        data: bytes | None = None
        if query is None:
            query = body.decode()
        elif body:
            if _INSERT.match(query):
                data = body
            else:
                query = f"{query}\n{body.decode()}"
        binds = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k in _SETTINGS}
        with self.lock:
            self.requests.append(query)
            if params.get("database"):
                self.conn.query(f"USE `{params['database']}`", "TabSeparated")
            for key, value in settings.items():
                self.conn.query(f"SET {key} = '{value}'", "TabSeparated")
            try:
                if data is not None:
                    if self.fail_inserts > 0:
                        self.fail_inserts -= 1
                        raise RuntimeError("Code: 999. DB::Exception: injected failure in the insert")
                    return self._insert(query, data), None
                match = _FORMAT.search(query)
                fmt = match.group(1) if match else "TabSeparated"
                statement = query[: match.start()] if match else query
                result = self.conn.query(statement, fmt, params=binds)
                return (result.bytes() if result is not None else b""), fmt
            finally:
                for key in settings:
                    self.conn.query(f"SET {key} = DEFAULT", "TabSeparated")

    def _insert(self, query: str, data: bytes) -> bytes:
        match = _FORMAT.search(query)
        if not match:
            raise ValueError("Code: 62. DB::Exception: INSERT without FORMAT")
        fd, path = tempfile.mkstemp(suffix=".raw")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            statement = f"{query[: match.start()]} FROM INFILE '{path}' FORMAT {match.group(1)}"
            self.conn.query(statement, "TabSeparated")
        finally:
            os.unlink(path)
        return b""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """``python -m tests.clickhouse_http DATA_DIR`` serves the front until killed (benchmarks)."""
    import sys

    front = ChdbHttpFront(os.path.realpath(sys.argv[1]))
    print(front.port, flush=True)
    front.thread.join()


if __name__ == "__main__":
    main()
