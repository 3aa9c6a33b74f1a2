"""Connection form metadata the Airflow 3 UI renders (``conn-fields``, ``ui-field-behaviour``),
built for ``get_provider_info``: labelled, hinted fields, and the SaaS and FastTrack forms."""

from __future__ import annotations

from typing import Any


def field(
    label: str,
    description: str,
    kind: str = "string",
    *,
    secret: bool = False,
    examples: list[str] | None = None,
) -> dict[str, Any]:
    """One ``conn-fields`` entry: empty (``null``) means unset, so every type admits null."""
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if secret:
        schema["format"] = "password"
    if examples:
        schema["examples"] = examples
    return {"label": label, "description": description, "schema": schema}


def choice(label: str, description: str, options: dict[str | None, str]) -> dict[str, Any]:
    """A select: ``options`` maps each value (``None``: unset) to what the UI shows for it
    (without ``values_display`` the unset option reads "null")."""
    select = field(label, description)
    select["schema"]["enum"] = list(options)
    select["schema"]["values_display"] = {
        ("null" if value is None else value): shown for value, shown in options.items()
    }
    return select


def rest_tuning(test_path_hint: str, test_paths: list[str]) -> dict[str, Any]:
    """The extras of the REST hook every REST-based connection type may tune."""
    return {
        "test_path": field("Test path", test_path_hint, examples=test_paths or None),
        "timeout": field("Timeout (seconds)", "Per request; default 60.", "integer"),
        "max_retries": field("Max retries", "On transport errors, 429 and 5xx; default 5.", "integer"),
    }


def saas_form(
    name: str,
    class_name: str,
    title: str,
    base_url: str,
    password: str | None,
    *,
    test_paths: list[str],
    test_hint: str = "",
    headers_hint: str = "",
    login: str | None = None,
    refresh_token: bool = False,
    service_account: str = "",
    host_required: bool = False,
) -> dict[str, Any]:
    """The connection type of one SaaS API: the base URL defaults to the API's (hidden fields
    are those the API does not use; the auth kind is the catalogue's, not the form's, so there
    is no Authentication field: a value there would override the catalogue's)."""
    hidden = (
        ["schema", "port"] + (["login"] if login is None else []) + (["password"] if password is None else [])
    )
    relabeling = (
        {"host": "Base URL"}
        | ({"login": login} if login else {})
        | ({"password": password} if password else {})
    )
    suggested = ", ".join(test_paths) or test_hint
    hint = "What the Test button requests, relative to the base URL (default: the base URL itself, " + (
        f"which many APIs answer with 404). Suggested: {suggested}"
        if suggested
        else "which many APIs answer with 404)."
    )
    fields: dict[str, Any] = {}
    if service_account:  # Google: auth google signs a JWT with the key (rest_auth.GoogleAuth)
        fields["service_account_key"] = field(
            "Service account key (JSON)",
            "The service account's JSON key file, pasted whole (Cloud console: IAM > Service "
            f"accounts > Keys > Add key > JSON). {service_account} Leave empty to use the refresh token.",
            secret=True,
        )
        fields["service_account_subject"] = field(
            "Service account subject",
            "Optional: the user e-mail a domain-wide-delegated service account acts as.",
        )
    if refresh_token:
        fields["refresh_token"] = field(
            "OAuth refresh token", "The user's offline grant for this client.", secret=True
        )
    if headers_hint:
        fields["headers"] = field("HTTP headers", headers_hint, "object")
    fields |= rest_tuning(hint, test_paths)
    return {
        "connection-type": f"dpone_{name}",
        "hook-class-name": f"airflow_provider_dpone.apis.{name}.{class_name}",
        "hook-name": f"dpone {title}",
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": {"host": base_url if host_required else f"{base_url} (default)"},
        },
        "conn-fields": fields,
    }


def fasttrack_form() -> dict[str, Any]:
    """FastTrack: the dashboard is the connection's host and key; the flex host has its own."""
    entry = saas_form(
        "fasttrack",
        "FastTrackHook",
        "FastTrack",
        "https://dashboard.fstrk.io/api/partners",
        "Bot key (dashboard)",
        test_paths=[],
        test_hint="reports/?type=CASCADE_TRANSACTIONS&uuid=<bot uuid>&limit=1",
    )
    entry["conn-fields"] = {
        "flex_endpoint": field(
            "Flex base URL",
            "For flex_cms_ratings: your tenant's flex API, with its scheme. Gets only the X-Token.",
            examples=["https://<tenant>.flex.fstrk.io/api"],
        ),
        "flex_x_token": field(
            "Flex X-Token", "For flex_cms_ratings: sent as X-Token, only to the flex base URL.", secret=True
        ),
        **entry["conn-fields"],
    }
    return entry
