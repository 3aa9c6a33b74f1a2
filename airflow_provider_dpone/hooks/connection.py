"""What every dpone hook shares to be built and tested the way Airflow does it.

``Connection.get_hook()`` builds a hook as ``HookClass(**{HookClass.conn_name_attr: conn_id})``;
dpone's own code passes ``conn_id=`` (or the id as the first argument). The UI's Test button
calls ``hook.test_connection()`` and shows its message, so the message is redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contracts.redaction import Redactor


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
