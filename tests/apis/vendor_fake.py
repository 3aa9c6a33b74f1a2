"""A base for vendor fakes: a real socket, a request log, faults on demand (status + headers)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

Reply = tuple[int, bytes, dict[str, str]]


class Query(dict):
    """A request's query: each key's last value (``query[key]``), and every value of a repeated
    key (``query.all(key)``), as an API that reads ``?k=a&k=b`` sees them."""

    def __init__(self, raw: str) -> None:
        self.multi = parse_qs(raw)
        super().__init__({k: v[-1] for k, v in self.multi.items()})

    def all(self, key: str) -> list[str]:
        return list(self.multi.get(key, []))


class VendorFake:
    """``route(method, path, query, headers, body) -> (status, body, headers)`` answers requests;
    ``faults`` queues replies sent first (e.g. a 429 with Retry-After, a 503)."""

    def __init__(self, route: Callable[..., Reply]) -> None:
        self.route = route
        self.faults: list[Reply] = []
        self.log: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = Query(url.query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.log.append(
                    {
                        "method": method,
                        "path": url.path,
                        "query": query,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, data, headers = (
                    fake.faults.pop(0)
                    if fake.faults
                    else fake.route(method, url.path, query, self.headers, body)
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:  # a larger one given: a body cut short
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
