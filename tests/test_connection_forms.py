"""The connection forms' metadata has the shape the Airflow 3 UI needs (no browser: the browser
check is tests/operators/test_ui_connection_forms.py, in the nightly tier).

What the UI renders comes from ``/ui/connections/hook_meta`` (``HookMetaService``): standard
fields (host, port, login, password, schema) can be hidden, relabelled and given a placeholder;
``conn-fields`` become the "Extra Fields" section, labelled by ``schema.title`` with the
description as the hint under the input; an enum is a select whose option labels come from
``schema.values_display`` (without it the unset option reads "null").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.get_provider_info import get_provider_info

pytestmark = pytest.mark.unit

CONNECTION_TYPES: list[dict[str, Any]] = get_provider_info()["connection-types"]
TYPES = [entry["connection-type"] for entry in CONNECTION_TYPES]
SAAS = [
    t
    for t in TYPES
    if t not in {"dpone_postgres", "dpone_mssql", "dpone_clickhouse", "dpone_kafka", "dpone_rest"}
]
# standard field -> its key in the UI's StandardHookFields
STANDARD = {"host": "host", "port": "port", "login": "login", "password": "password", "schema": "url_schema"}


def _entry(connection_type: str) -> dict[str, Any]:
    return next(e for e in CONNECTION_TYPES if e["connection-type"] == connection_type)


@pytest.fixture(scope="module")
def hook_meta() -> dict[str, Any]:
    """The UI's form metadata, built by Airflow as the API server builds it."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    return {m.connection_type: m for m in HookMetaService.hook_meta_data()}


def test_every_dpone_type_is_listed() -> None:
    assert len(TYPES) == len(set(TYPES)) == 15
    assert {"dpone_postgres", "dpone_mssql", "dpone_clickhouse", "dpone_kafka", "dpone_rest"} < set(TYPES)
    names = [e["hook-name"] for e in CONNECTION_TYPES]
    assert len(names) == len(set(names)), "the UI's type selector shows hook names: they must differ"


def test_connection_types_validate_against_airflows_provider_schema() -> None:
    """Airflow's own schema of declarative connection types (provider.yaml.schema.json)."""
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    item = schema["properties"]["connection-types"]["items"]
    for entry in CONNECTION_TYPES:
        jsonschema.validate(entry, item)


@pytest.mark.parametrize("connection_type", TYPES)
def test_every_custom_field_has_a_label_a_hint_and_an_unset_value(connection_type: str) -> None:
    fields = _entry(connection_type).get("conn-fields", {})
    # Without conn-fields the form's only extras input is the bare Extra JSON box ("{}").
    assert fields, f"{connection_type}: no conn-fields, the form shows only an empty {{}} box"
    for name, field in fields.items():
        assert field["label"].strip(), name
        assert len(field.get("description", "").strip()) >= 10, f"{connection_type}.{name}: no hint"
        types = field["schema"]["type"]
        assert isinstance(types, list) and "null" in types, f"{name}: an empty input must be storable"
        examples = field["schema"].get("examples")
        if examples is not None:
            assert "string" in types and examples and all(isinstance(x, str) and x for x in examples)


@pytest.mark.parametrize("connection_type", TYPES)
def test_every_select_names_each_option_including_unset(connection_type: str) -> None:
    for name, field in _entry(connection_type).get("conn-fields", {}).items():
        schema = field["schema"]
        if "enum" not in schema:
            continue
        shown = schema.get("values_display", {})
        keys = ["null" if v is None else v for v in schema["enum"]]
        assert set(shown) == set(keys), (
            f"{connection_type}.{name}: options without a label {set(keys) - set(shown)}"
        )
        assert shown.get("null", "(").startswith("("), f"{name}: the unset option reads like a value"
        assert all(text.strip() and text != "null" for text in shown.values()), name


@pytest.mark.parametrize("connection_type", TYPES)
def test_standard_fields_customised_are_ones_the_ui_renders(connection_type: str) -> None:
    behaviour = _entry(connection_type)["ui-field-behaviour"]
    for key in ("relabeling", "placeholders"):
        extra = set(behaviour[key]) - set(STANDARD)
        assert not extra, f"{connection_type}: the UI ignores {key} of {extra}"
    hidden = set(behaviour["hidden-fields"])
    assert hidden <= set(STANDARD), f"the UI cannot hide {hidden - set(STANDARD)}"
    assert not hidden & (set(behaviour["relabeling"]) | set(behaviour["placeholders"]))
    # a field shown under its default label must be one the hook reads under that meaning
    assert "schema" in hidden or "schema" in behaviour["relabeling"], "the UI would say just 'Schema'"


@pytest.mark.parametrize("connection_type", TYPES)
def test_the_ui_metadata_carries_labels_hints_and_hidden_fields(connection_type: str, hook_meta) -> None:
    """What ``/ui/connections/hook_meta`` hands the form for this type."""
    entry, meta = _entry(connection_type), hook_meta[connection_type]
    assert meta.hook_name == entry["hook-name"]
    behaviour = entry["ui-field-behaviour"]
    for field, ui_key in STANDARD.items():
        shown = getattr(meta.standard_fields, ui_key)
        if field in behaviour["hidden-fields"]:
            assert shown is not None and shown.hidden, f"{connection_type}: {field} not hidden"
            continue
        assert shown is None or not shown.hidden
        if field in behaviour["relabeling"]:
            assert shown.title == behaviour["relabeling"][field]
        if field in behaviour["placeholders"]:
            assert shown.placeholder == behaviour["placeholders"][field]
    assert meta.extra_fields is not None
    assert set(meta.extra_fields) == set(entry["conn-fields"])
    for name, field in entry["conn-fields"].items():
        rendered = meta.extra_fields[name]
        assert (
            rendered["schema"]["title"] == field["label"] and rendered["description"] == field["description"]
        )
        assert rendered["value"] is None  # the form starts empty: unset
        if "enum" in field["schema"]:
            assert rendered["schema"]["values_display"] == field["schema"]["values_display"]


def test_saas_forms_leave_the_auth_kind_to_the_catalogue() -> None:
    """A SaaS hook lays the connection's extras over its catalogue's (``auth``, key header or
    parameter): a form field of that name would override how the API authenticates."""
    from airflow_provider_dpone.apis.base import ApiHook

    for connection_type in SAAS:
        entry = _entry(connection_type)
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(__import__(module, fromlist=[name]), name)
        assert issubclass(hook, ApiHook)
        assert not set(entry["conn-fields"]) & set(hook.api.extra), connection_type
        assert {"test_path", "timeout", "max_retries"} <= set(entry["conn-fields"]), connection_type


def test_a_form_saved_empty_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The form stores every untouched conn-field as ``null``: the hooks read that as unset
    (Kafka needs its bootstrap servers: only they are filled)."""
    from airflow_provider_dpone.apis.cbr import CbrHook
    from airflow_provider_dpone.hooks.kafka import DponeKafkaHook
    from airflow_provider_dpone.hooks.rest import DponeRestHook

    def saved_empty(conn_id: str, connection_type: str, filled: dict | None = None, **standard: Any) -> None:
        extra = dict.fromkeys(_entry(connection_type)["conn-fields"]) | (filled or {})
        value = {"conn_type": connection_type, "extra": extra, **standard}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))

    saved_empty("form_rest", "dpone_rest", host="https://api.example.com/")
    assert DponeRestHook("form_rest")._extra() == {}
    saved_empty("form_cbr", "dpone_cbr")
    assert CbrHook("form_cbr")._extra() == CbrHook.api.extra  # the catalogue's auth survives
    saved_empty("form_kafka", "dpone_kafka", {"bootstrap.servers": "b1:9092"})
    assert DponeKafkaHook("form_kafka").client_config() == {"bootstrap.servers": "b1:9092"}


@pytest.mark.parametrize("connection_type", ["dpone_google_sheets", "dpone_google_ads"])
def test_google_forms_take_a_masked_service_account_key_beside_the_refresh_token(
    connection_type: str,
) -> None:
    fields = _entry(connection_type)["conn-fields"]
    key = fields["service_account_key"]
    assert key["label"] == "Service account key (JSON)" and key["schema"]["format"] == "password"
    assert "JSON key" in key["description"] and "client_email" in key["description"]
    assert fields["refresh_token"]["schema"]["format"] == "password" and "service_account_subject" in fields
