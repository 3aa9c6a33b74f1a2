"""What every dpone hook shares to be built and tested the way Airflow does it, and how a hook
finds its connection outside Airflow.

``Connection.get_hook()`` builds a hook as ``HookClass(**{HookClass.conn_name_attr: conn_id})``;
dpone's own code passes ``conn_id=`` (or the id as the first argument). The UI's Test button
calls ``hook.test_connection()`` and shows its message, so the message is redacted.

Outside Airflow (``dpone run``, ``plan`` and ``state``) a load's hooks are the connectors'
standalone engines (``StandaloneConnection``). Their connection is read here from
``AIRFLOW_CONN_<ID>``, as a URI or as JSON, exactly as Airflow's environment-variable secrets
backend reads it, without importing Airflow (it takes seconds). Airflow is imported only when it
has to answer: when the variable is absent (a secrets backend, or the metadata database in a
server process), or when a secrets backend is configured, since Airflow asks that backend
before the environment. Every connection read is registered with ``known_credentials()``, which
the command line masks in its log output (Airflow masks its own task logs).
"""

from __future__ import annotations

import configparser
import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..contracts.errors import BadInputError
from ..contracts.redaction import Redactor

log = logging.getLogger(__name__)

CONN_ENV_PREFIX = "AIRFLOW_CONN_"
_EXTRA_KEY = "__extra__"  # a URI query holding the whole extra as JSON text
_TEAM_SEP = "___"  # AIRFLOW_CONN__<TEAM>___<ID>: a multi-team name, Airflow's to resolve
_SECRETS_BACKEND_ENV = (
    "AIRFLOW__SECRETS__BACKEND",
    "AIRFLOW__SECRETS__BACKEND_CMD",
    "AIRFLOW__SECRETS__BACKEND_SECRET",
)


def conn_id_of(hook: Any, given: str | None, alias: str | None) -> str:
    """The connection id a hook was given: as its ``conn_name_attr`` (or first argument), or
    as ``conn_id``; the hook's ``default_conn_name`` when neither. Both at once is an error."""
    if given is not None and alias is not None:
        raise TypeError(
            f"{type(hook).__name__}() got the connection id twice: "
            f"{hook.conn_name_attr}={given!r} and conn_id={alias!r}"
        )
    chosen = given if given is not None else alias
    return chosen if chosen is not None else hook.default_conn_name


def probe(redactor: Redactor, check: Callable[[], str]) -> tuple[bool, str]:
    """``(True, message)`` when ``check()`` returns, ``(False, the error)`` when it raises; the
    connection's credentials are masked in either message."""
    try:
        return True, redactor.redact(check())
    except Exception as exc:
        return False, redactor.redact(f"{type(exc).__name__}: {exc}")


# --- connections outside Airflow ---------------------------------------------------------------


@dataclass
class ConnectionRecord:
    """An Airflow connection as read from ``AIRFLOW_CONN_<ID>``: the fields and ``extra_dejson``
    of Airflow's ``Connection`` that hooks read. Its repr never shows the password or extras."""

    conn_id: str
    conn_type: str | None = None
    description: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    extra: str | None = field(default=None, repr=False)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extras as a dict; empty when there are none or they are not JSON (as Airflow)."""
        if not self.extra:
            return {}
        try:
            return json.loads(self.extra)  # type: ignore[no-any-return]
        except ValueError:
            log.error("connection '%s': its extra is not valid JSON; read as no extras", self.conn_id)
            return {}


_FIELDS = frozenset(f.name for f in fields(ConnectionRecord)) - {"conn_id"}


def _normalize_conn_type(conn_type: str) -> str:
    if conn_type == "postgresql":
        return "postgres"
    return conn_type.replace("-", "_")


def _hostname(parts: Any) -> str:
    """The host of a split URI, not lower-cased, and kept whole when it holds a path (a unix
    socket directory percent-encoded into the host)."""
    hostname = unquote(parts.hostname or "")
    if "/" in hostname:
        hostname = parts.netloc
        if "@" in hostname:
            hostname = hostname.rsplit("@", 1)[1]
        if ":" in hostname:
            hostname = hostname.split(":", 1)[0]
        hostname = unquote(hostname)
    return hostname


def _from_uri(conn_id: str, uri: str) -> ConnectionRecord:
    """Airflow's ``Connection.from_uri``: ``type://login:password@host:port/schema?extra=...``
    (``type://protocol://...`` keeps the protocol in the host)."""
    schemes = uri.count("://")
    if schemes > 2:
        raise ValueError("more than two '://'")
    with_protocol = schemes == 2
    conn_type = urlsplit(uri).scheme
    rest = uri.replace(f"{conn_type}://", "" if with_protocol else "//")
    if with_protocol:
        head = rest.split("://", 1)[0]
        if "@" in head or ":" in head:
            raise ValueError("a host protocol with credentials or a port in it")
    parts = urlsplit(rest)
    host = _hostname(parts)
    if host and with_protocol:
        host = f"{parts.scheme}://{host}"
    quoted_schema = parts.path[1:]
    extra = None
    if parts.query:
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        extra = query[_EXTRA_KEY] if _EXTRA_KEY in query else json.dumps(query)
    return ConnectionRecord(
        conn_id=conn_id,
        conn_type=_normalize_conn_type(conn_type),
        host=host,
        schema=unquote(quoted_schema) if quoted_schema else quoted_schema,
        login=unquote(parts.username) if parts.username else parts.username,
        password=unquote(parts.password) if parts.password else parts.password,
        port=parts.port,  # ValueError when not a number
        extra=extra,
    )


def _from_json(conn_id: str, value: str) -> ConnectionRecord:
    """Airflow's ``Connection.from_json``: the connection's fields as a JSON object."""
    kwargs = json.loads(value)  # starts with "{": an object, or not JSON
    extra = kwargs.pop("extra", None)
    if extra:
        kwargs["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    conn_type = kwargs.pop("conn_type", None)
    if conn_type:
        kwargs["conn_type"] = _normalize_conn_type(conn_type)
    port = kwargs.pop("port", None)
    if port:
        kwargs["port"] = int(port)
    unknown = sorted(set(kwargs) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; a connection has {sorted(_FIELDS)}")
    return ConnectionRecord(conn_id=conn_id, **kwargs)


def parse_connection(conn_id: str, value: str) -> ConnectionRecord:
    """An ``AIRFLOW_CONN_<ID>`` value (URI or JSON) as Airflow's secrets backends read it.
    ``BadInputError`` when Airflow could not read it either; the value is never in the message."""
    value = value.strip()
    try:
        if value.startswith("{"):
            return _from_json(conn_id, value)
        return _from_uri(conn_id, value)
    except (ValueError, TypeError) as exc:
        form = "JSON" if value.startswith("{") else "URI"
        reason = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else _safe_reason(exc)
        raise BadInputError(
            f"connection '{conn_id}': {env_name(conn_id)} is not a connection {form} Airflow can read: "
            f"{reason}"
        ) from None


def _safe_reason(exc: Exception) -> str:
    """Our own messages are safe to show; a library's (``int('...')``) may quote the value."""
    text = str(exc)
    return (
        text if text.startswith(("more than", "a host", "not a", "unknown field")) else "a bad port or field"
    )


def env_name(conn_id: str) -> str:
    return CONN_ENV_PREFIX + conn_id.upper()


def _airflow_config_path() -> str:
    path = os.environ.get("AIRFLOW_CONFIG")
    if not path:
        path = os.path.join(os.environ.get("AIRFLOW_HOME") or "~/airflow", "airflow.cfg")
    return os.path.expanduser(os.path.expandvars(path))


def custom_secrets_backend() -> bool:
    """Whether Airflow has a secrets backend configured (``[secrets] backend``, from the
    environment or airflow.cfg): Airflow asks it before the environment variables. An
    unreadable airflow.cfg counts as configured (Airflow then decides)."""
    if "AIRFLOW__SECRETS__BACKEND" in os.environ:  # overrides airflow.cfg, even when empty
        if os.environ["AIRFLOW__SECRETS__BACKEND"].strip():
            return True
    elif any(os.environ.get(name, "").strip() for name in _SECRETS_BACKEND_ENV[1:]):
        return True
    else:
        path = _airflow_config_path()
        try:
            stat = os.stat(path)
        except OSError:
            return False
        return _configured_in(path, stat.st_mtime_ns, stat.st_size)
    return False


@functools.lru_cache(maxsize=4)
def _configured_in(path: str, mtime_ns: int, size: int) -> bool:
    """Whether airflow.cfg at ``path`` (as of that mtime and size) names a secrets backend."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return True
    keys = ("backend", "backend_cmd", "backend_secret")
    return any(parser.get("secrets", k, fallback="").strip() for k in keys)


def env_connection(conn_id: str) -> ConnectionRecord | None:
    """The connection from ``AIRFLOW_CONN_<ID>`` when that is where Airflow would find it;
    None when the variable is absent or empty, or when Airflow may answer otherwise (a secrets
    backend is configured, or the id names a team's connection). Never imports Airflow."""
    value = os.environ.get(env_name(conn_id))
    if not value or not value.strip() or _TEAM_SEP in conn_id or custom_secrets_backend():
        return None
    return parse_connection(conn_id, value)


_KNOWN = Redactor()


def known_credentials() -> Redactor:
    """The credentials of every connection resolved in this process (log masking)."""
    return _KNOWN


def resolve_connection(conn_id: str) -> Any:
    """The connection ``conn_id``: read from ``AIRFLOW_CONN_<ID>`` when Airflow would read it
    from there, else Airflow's own lookup (Airflow is imported now). Its credentials are
    registered with ``known_credentials()``."""
    conn: Any = env_connection(conn_id)
    if conn is None:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    _KNOWN.add_connection(conn.password, conn.login, conn.extra_dejson)
    return conn


class StandaloneConnection:
    """The connection side of a connector's standalone engine (the hook without Airflow's base
    classes): its id, the connection (``resolve_connection``, read once) and a redactor."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._connection: Any = None

    @property
    def dpone_conn_id(self) -> str:
        return self.conn_id

    def get_connection(self, conn_id: str) -> Any:
        if conn_id != self.conn_id:
            return resolve_connection(conn_id)
        if self._connection is None:
            self._connection = resolve_connection(conn_id)
        return self._connection

    def redactor(self) -> Redactor:
        """A redactor knowing this connection's credentials."""
        return Redactor.of_connection(lambda: self.get_connection(self.conn_id))
