"""A test-side HTTP fake of the Confluent Schema Registry REST API (no registry installs here).

It keeps subjects and schemas in memory and answers the calls confluent-kafka's client and
serializers make: register, look up, latest version, schema by id. ``/associations`` answers
404, as a registry without that feature does (the 2.16 serializers ask it first).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class SchemaRegistryFake:
    def __init__(self) -> None:
        self.schemas: dict[int, dict] = {}  # id -> {"schema": ..., "schemaType": ...}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema ids by version
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                code, body = fake.get(urlparse(self.path).path)
                self._reply(code, body)

            def do_POST(self) -> None:
                code, body = fake.post(urlparse(self.path).path, self._body())
                self._reply(code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _missing(what: str) -> tuple[int, dict]:
        codes = {"subject": 40401, "version": 40402, "schema": 40403}
        return 404, {"error_code": codes.get(what, 40400), "message": f"{what.capitalize()} not found"}

    def _version(self, subject: str, version: int) -> dict:
        schema_id = self.subjects[subject][version - 1]
        entry = self.schemas[schema_id]
        return {"subject": subject, "id": schema_id, "version": version, **entry}

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> int:
        code, body = self.post(f"/subjects/{subject}/versions", {"schema": schema, "schemaType": schema_type})
        assert code == 200, body
        return body["id"]

    def get(self, path: str) -> tuple[int, dict]:
        with self.lock:
            if path.startswith("/associations"):
                return 404, {"error_code": 404, "message": "Not found"}
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                entry = self.schemas.get(int(m.group(1)))
                return (200, entry) if entry else self._missing("schema")
            if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path):
                subject = unquote(m.group(1))
                if subject not in self.subjects:
                    return self._missing("subject")
                versions = self.subjects[subject]
                n = len(versions) if m.group(2) == "latest" else int(m.group(2))
                return (
                    (200, self._version(subject, n)) if 1 <= n <= len(versions) else self._missing("version")
                )
            if path == "/subjects":
                return 200, sorted(self.subjects)  # type: ignore[return-value]
            return 404, {"error_code": 404, "message": f"no route {path}"}

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            schema = {"schema": body.get("schema"), "schemaType": body.get("schemaType", "AVRO")}
            if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                subject = unquote(m.group(1))
                schema_id = next((i for i, s in self.schemas.items() if s == schema), None)
                if schema_id is None:
                    schema_id = len(self.schemas) + 1
                    self.schemas[schema_id] = schema
                versions = self.subjects.setdefault(subject, [])
                if schema_id not in versions:
                    versions.append(schema_id)
                return 200, {"id": schema_id}
            if m := re.fullmatch(r"/subjects/([^/]+)", path):
                subject = unquote(m.group(1))
                for n, schema_id in enumerate(self.subjects.get(subject, []), start=1):
                    if self.schemas[schema_id] == schema:
                        return 200, self._version(subject, n)
                return self._missing("schema") if subject in self.subjects else self._missing("subject")
            return 404, {"error_code": 404, "message": f"no route {path}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
