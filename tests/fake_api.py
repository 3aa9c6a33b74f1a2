"""A fake REST API on a real socket: pagination of every kind, auth, OAuth2, faults on demand.

``FakeApi.records`` holds the data; ``fail`` queues responses (status, headers) returned before
the real one; ``log`` keeps every request (path, query, headers) for the tests to inspect.
``redirects`` answers a path with a redirect, ``link_base`` puts next links on another server,
``stuck_next`` is where ``/stuck`` always points, ``chunked``/``gzip`` change how bodies are sent.
``cookie`` is set on every answer, ``token_answer`` replaces the token endpoint's answer,
``raw_pages`` are served as they are at ``/raw?page=N``.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "tok-3f9a1c7e55"
API_KEY = "key-8d2b6e4410"
CLIENT = ("client-id-1", "client-secret-77a2c")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing a connection mid-body (a redirect or an oversized body left unread)
        is expected here; anything else is printed as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FakeApi:
    def __init__(self, records: list[dict] | None = None, auth: str = "bearer") -> None:
        self.reset(records, auth)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: as they are
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if api.cookie:
                    self.send_header("Set-Cookie", f"{api.cookie}; Path=/")
                if status == 204:
                    self.end_headers()
                    return
                if api.gzip:
                    data = gzip.compress(data)
                    self.send_header("Content-Encoding", "gzip")
                if api.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(data), 256):
                        piece = data[start : start + 256]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if urlparse(self.path).path != "/oauth/token":
                    self._send(404, {"error": "not found"})
                    return
                if api.token_answer is not None:
                    self._send(*api.token_answer)
                    return
                user, _, secret = (
                    base64.b64decode(self.headers.get("Authorization", "Basic ")[6:]).decode().partition(":")
                )
                if (user, secret) != CLIENT or form.get("grant_type") != ["client_credentials"]:
                    self._send(401, {"error": "invalid_client"})
                    return
                token = f"oauth-{len(api.tokens)}-{int(time.time() * 1000)}"
                api.tokens[token] = time.monotonic() + api.token_ttl
                self._send(200, {"access_token": token, "token_type": "bearer", "expires_in": api.token_ttl})

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                api.log.append({"path": url.path, "query": query, "headers": dict(self.headers)})
                if not api.authorized(self.headers, query):
                    self._send(401, {"error": "invalid credentials"})
                    return
                if len(api.log) in api.fail_at:
                    status = api.fail_at.pop(len(api.log))
                    self._send(status, {"error": f"injected {status}"})
                    return
                if api.fail:
                    status, headers = api.fail.pop(0)
                    self._send(status, {"error": f"injected {status}"}, headers)
                    return
                if url.path in api.redirects:
                    status, target = api.redirects[url.path]
                    location = f"{target}?{url.query}" if url.query else target
                    self._send(status, {"moved": location}, {"Location": location})
                    return
                status, body, headers = api.route(url.path, query, f"http://{self.headers['Host']}")
                self._send(status, body, headers)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, records: list[dict] | None = None, auth: str = "bearer") -> None:
        """Back to a fresh server's state (tests sharing one server between them)."""
        self.records = records if records is not None else []
        self.children: dict[str, list[dict]] = {}
        self.auth = auth
        self.fail: list[tuple[int, dict[str, str]]] = []
        self.fail_at: dict[int, int] = {}  # request number (1-based, data requests) -> status
        self.log: list[dict] = []
        self.tokens: dict[str, float] = {}  # issued oauth tokens -> expiry (monotonic)
        self.token_ttl = 3600.0
        self.redirects: dict[str, tuple[int, str]] = {}  # path -> (status, target; query kept)
        self.link_base: str | None = None  # next links (next_url, Link) on this server instead
        self.omit_empty = False  # /offset: an empty page has no "data" key at all
        self.stuck_next = "/stuck?page=2"  # /stuck: the next link (and cursor "c2") never advance
        self.chunked = False  # bodies without Content-Length (Transfer-Encoding: chunked)
        self.gzip = False  # bodies gzip-compressed (Content-Encoding: gzip)
        self.cookie: str | None = None  # "name=value" set (Set-Cookie) on every answer
        self.token_answer: tuple[int, bytes, dict[str, str]] | None = None  # /oauth/token, as it is
        self.raw_pages: list[bytes] = []  # /raw?page=N (1-based) answers these bytes
        self.omitted: set[str] = set()  # /accounts/<id>/orders of these ids: no "data" key
        self.holes: set[int] = set()  # /next?start=N of these N: no "data" key (the link kept)

    def authorized(self, headers: object, query: dict[str, str]) -> bool:
        get = headers.get  # type: ignore[attr-defined]
        if self.auth == "bearer":
            return get("Authorization") == f"Bearer {TOKEN}"
        if self.auth == "api_key_header":
            return get("X-Api-Key") == API_KEY
        if self.auth == "api_key_query":
            return query.get("api_key") == API_KEY
        if self.auth == "basic":
            return get("Authorization") == "Basic " + base64.b64encode(b"user:" + API_KEY.encode()).decode()
        if self.auth == "oauth2":
            token = (get("Authorization") or "").removeprefix("Bearer ")
            return self.tokens.get(token, 0) > time.monotonic()
        return True

    def _filtered(self, rows: list[dict], query: dict[str, str]) -> list[dict]:
        since = query.get("updated_since")  # inclusive, as most APIs' "since" filters
        if since:
            rows = [r for r in rows if r["updated_at"] >= since.replace("Z", "+00:00")]
        after = query.get("updated_after")  # exclusive
        if after:
            rows = [r for r in rows if r["updated_at"] > after.replace("Z", "+00:00")]
        return sorted(rows, key=lambda r: (r["updated_at"], r["id"]))

    def route(self, path: str, query: dict[str, str], base: str) -> tuple[int, object, dict[str, str]]:
        if path.startswith("/accounts/") and path.endswith("/orders"):
            account = path.split("/")[2]
            if account in self.omitted:
                return 200, {"meta": {"account": account}}, {}
            return 200, {"data": self.children.get(account, [])}, {}
        if path == "/accounts":
            return 200, {"data": [{"id": a} for a in sorted(self.children)]}, {}
        rows = self._filtered(self.records, query)
        if path == "/offset":
            start, size = int(query.get("offset", 0)), int(query.get("limit", 10))
            if self.omit_empty and not rows[start : start + size]:
                return 200, {"meta": {"total": len(rows)}}, {}
            return 200, {"data": rows[start : start + size]}, {}
        if path == "/pages":
            page, size = int(query.get("page", 1)), int(query.get("per_page", 10))
            return 200, {"items": rows[(page - 1) * size : page * size]}, {}
        if path == "/cursor":
            start = int(query.get("cursor", 0))
            chunk = rows[start : start + 7]
            nxt = str(start + 7) if start + 7 < len(rows) else None
            return 200, {"results": chunk, "meta": {"next_cursor": nxt}}, {}
        if path == "/link":
            start = int(query.get("from", 0))
            chunk = rows[start : start + 6]
            headers = {}
            if start + 6 < len(rows):
                there = self.link_base or base
                headers["Link"] = (
                    f'<{there}/link?from={start + 6}>; rel="next", <{base}/link?from=0>; rel="first"'
                )
            return 200, chunk, headers
        if path == "/next":
            start = int(query.get("start", 0))
            chunk = rows[start : start + 9]
            nxt = f"{self.link_base or ''}/next?start={start + 9}" if start + 9 < len(rows) else None
            if start in self.holes:
                return 200, {"links": {"next": nxt}}, {}
            return 200, {"data": chunk, "links": {"next": nxt}}, {}
        if path == "/raw":
            page = int(query.get("page", 1))
            return 200, self.raw_pages[page - 1] if page <= len(self.raw_pages) else b'{"data": []}', {}
        if path == "/same":  # ignores the page parameter: always the first page
            return 200, {"data": rows[: int(query.get("limit", 10))]}, {}
        if path == "/quiet":  # empty pages (the same bytes) whose Link advances, then the records
            start = int(query.get("from", 0))
            if start < 3:
                return 200, [], {"Link": f'<{base}/quiet?from={start + 1}>; rel="next"'}
            return 200, rows, {}
        if path in ("/no_content", "/empty"):
            return (204 if path == "/no_content" else 200), b"", {}
        if path == "/stuck":
            body = {"data": rows[:2], "links": {"next": self.stuck_next}, "meta": {"next_cursor": "c2"}}
            return 200, body, {}
        return 404, {"error": f"no route {path}"}, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
