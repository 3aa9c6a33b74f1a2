"""``dpone doctor`` on a REST or SaaS API connection: one authenticated GET of the connection's
``test_path`` (else the API's base URL), told apart as unreachable, refused credentials (401/403:
wrong key, or a token without the scope), busy (429/5xx) or answered; then, for a SaaS source,
each load's resource against the vendor's catalogue (its options and the field the API filters
on). Only GETs are sent, to the connection's own origin."""

from __future__ import annotations

import time
from typing import Any

from ..contracts.doctor import ConnectionUse, Finding, LoadUse
from ..contracts.errors import BadInputError, DponeError
from .rest_http import AuthError, RetryableHTTPError

_BUSY = (" returned 429", " returned 5")


def _request(hook: Any, label: str) -> list[Finding]:
    has_test_path = bool(hook._extra().get("test_path"))
    started = time.monotonic()
    try:
        answer = str(hook.probe_request())
    except AuthError as exc:
        return [
            Finding("ok", "reachable", label, "the API answered", seconds=time.monotonic() - started),
            Finding(
                "fail",
                "authenticated",
                label,
                str(exc),
                fix="renew the key or token, or grant it the scope the API names",
            ),
        ]
    except RetryableHTTPError as exc:
        seconds = time.monotonic() - started
        if any(code in str(exc) for code in _BUSY):
            return [
                Finding(
                    "warn", "reachable", label, f"the API is busy: {exc}", fix="retry later", seconds=seconds
                )
            ]
        return [
            Finding(
                "fail",
                "reachable",
                label,
                str(exc),
                fix="check the connection's host and the network",
                seconds=seconds,
            )
        ]
    except BadInputError as exc:  # 404 and the like: it answered, the path tells nothing
        return [
            Finding(
                "warn",
                "authenticated",
                label,
                f"the API answered, but not with a success: {exc}",
                fix="set the connection's extra test_path to an endpoint that answers cheaply with these credentials",
                seconds=time.monotonic() - started,
            )
        ]
    found = [Finding("ok", "reachable", label, answer, seconds=time.monotonic() - started)]
    if has_test_path:
        found.append(
            Finding("ok", "authenticated", label, "test_path answered with the connection's credentials")
        )
    else:
        found.append(
            Finding(
                "info",
                "authenticated",
                label,
                "the base URL answered; whether the credentials are accepted shows on the first read",
                fix="set extra test_path to an endpoint that needs the credentials",
            )
        )
    return found


def _resource(hook: Any, use: LoadUse) -> Finding:
    subject, spec = f"{use.key} source", use.load.source
    try:
        resource = hook.resource(spec)
        hook.read_of(spec)  # as a run builds its read: options, cursor, the vendor's own checks
    except DponeError as exc:
        return Finding(
            "fail",
            "object",
            subject,
            str(exc),
            fix="check source.resource, source.options and source.incremental",
        )
    return Finding("ok", "object", subject, f"resource {resource.name} of {hook.api.title}")


def check(hook: Any, use: ConnectionUse) -> list[Finding]:
    """Every finding for one API connection and the loads that read it."""
    found = _request(hook, use.conn_id)
    if hasattr(hook, "api"):  # a SaaS catalogue
        found += [_resource(hook, load) for load in use.sources]
    return found
