"""The connection forms as the Airflow 3 UI renders them, in a real browser (nightly tier).

Starts ``airflow api-server`` in a temporary AIRFLOW_HOME (no login, Test button enabled),
drives Debian's chromium headless with playwright, and for every dpone connection type opens
"Add Connection", selects the type and reads what the form shows: labels, hints, placeholders,
hidden and relabelled standard fields, the select labels, the Extra JSON box. Then it saves a
Kafka connection through the form and presses Test on a dpone_postgres connection.

Needs ``apt-get install chromium`` and ``pip install playwright`` (the ``browser`` extra;
never ``playwright install``); skips, saying which is missing, without them. Run with
``.venv/bin/pytest -m nightly tests/operators/test_ui_connection_forms.py``; screenshots go
to ``DPONE_UI_SCREENSHOTS`` (default: a pytest temporary directory).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.get_provider_info import get_provider_info
from tests.operators.ui_helpers import (
    airflow_exe,
    free_port,
    get_json,
    launch_browser,
    screenshot_dir,
    skip,
    stop_process_group,
)

pytestmark = pytest.mark.nightly

CONNECTION_TYPES: list[dict[str, Any]] = get_provider_info()["connection-types"]
# standard field -> the label the UI gives it unless relabelled
STANDARD_LABELS = {
    "host": "Host",
    "port": "Port",
    "login": "Login",
    "password": "Password",
    "schema": "Schema",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def airflow_ui(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Airflow API server (and its UI) on a free local port; its base URL."""
    home = tmp_path_factory.mktemp("airflow-ui")
    port = free_port()
    env = os.environ | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = airflow_exe()
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=env, timeout=300)
    log = (home / "api-server.log").open("wb")
    server = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its workers
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get_json(f"{base}/api/v2/monitor/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the API server did not start: {(home / 'api-server.log').read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield base
    finally:
        stop_process_group(server)
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory, "ui-forms")


@pytest.fixture
def page(browser: Any, airflow_ui: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _add_connection(page: Any, base: str, hook_name: str, conn_id: str = "") -> Any:
    """The Add Connection dialog with ``hook_name`` selected."""
    page.goto(f"{base}/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    if conn_id:
        dialog.locator("input[name=connection_id]").fill(conn_id)
    dialog.get_by_role("combobox").fill(hook_name)
    page.get_by_role("option", name=hook_name, exact=True).click()
    dialog.get_by_role("button", name="Standard Fields", exact=True).wait_for()
    return dialog


def _open_section(dialog: Any, title: str) -> None:
    trigger = dialog.get_by_role("button", name=title, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    dialog.page.wait_for_timeout(300)


def _rendered_fields(dialog: Any) -> dict[str, dict[str, Any]]:
    """Each visible form field: label -> its inputs' placeholders, its hint, its text."""
    found: dict[str, dict[str, Any]] = {}
    for field in dialog.locator("[data-scope=field][data-part=root]").all():
        if not field.is_visible():
            continue
        label = field.locator("label").first
        if not label.count():
            continue
        name = label.inner_text().replace("*", "").strip()
        found[name] = {
            "placeholders": [
                i.get_attribute("placeholder") or ""
                for i in field.locator("input:not([type=hidden]), textarea").all()
            ],
            "hints": [h.inner_text().strip() for h in field.locator("[data-part=helper-text]").all()],
            "text": field.inner_text(),
        }
    return found


@pytest.mark.parametrize("entry", CONNECTION_TYPES, ids=[e["connection-type"] for e in CONNECTION_TYPES])
def test_the_form_renders_labels_hints_and_hidden_fields(
    page: Any, airflow_ui: str, shots: Path, entry: dict[str, Any]
) -> None:
    connection_type = entry["connection-type"]
    behaviour, fields = entry["ui-field-behaviour"], entry.get("conn-fields", {})
    dialog = _add_connection(page, airflow_ui, entry["hook-name"])

    _open_section(dialog, "Standard Fields")
    dialog.screenshot(path=str(shots / f"{connection_type}-standard.png"))
    standard = _rendered_fields(dialog)
    for field, default_label in STANDARD_LABELS.items():
        label = behaviour["relabeling"].get(field, default_label)
        if field in behaviour["hidden-fields"]:
            assert label not in standard, f"{connection_type}: {field} should be hidden"
            continue
        assert label in standard, f"{connection_type}: no field labelled {label!r} in {sorted(standard)}"
        if field in behaviour["relabeling"]:
            assert default_label not in standard or default_label in behaviour["relabeling"].values()
        if field in behaviour["placeholders"]:
            assert behaviour["placeholders"][field] in standard[label]["placeholders"]

    if fields:  # without conn-fields the UI has no "Extra Fields" section (the box below fails)
        _open_section(dialog, "Extra Fields")
        dialog.screenshot(path=str(shots / f"{connection_type}-extra.png"))
    extra = _rendered_fields(dialog)
    for name, field in fields.items():
        label = field["label"]
        assert label in extra, f"{connection_type}: {name} has no field labelled {label!r} in {sorted(extra)}"
        assert field["description"] in extra[label]["hints"], f"{connection_type}.{name}: hint missing"
        schema = field["schema"]
        if "enum" in schema:  # the select shows the unset option by its label, never "null"
            shown = extra[label]["text"]
            assert "null" not in shown.split(), f"{connection_type}.{name}: the select shows 'null'"
            assert schema["values_display"]["null"] in shown
        if schema.get("examples"):
            assert any(extra[label]["placeholders"]), f"{connection_type}.{name}: no placeholder"

    _open_section(dialog, "Extra Fields JSON")
    dialog.screenshot(path=str(shots / f"{connection_type}-json.png"))
    box = dialog.locator(".view-lines").last.inner_text().replace("\u00a0", " ")
    assert box.strip() != "{}", f"{connection_type}: the Extra JSON box is an empty {{}}"
    for name in fields:
        assert f'"{name}"' in box, f"{connection_type}: {name} missing from the Extra JSON box"


def test_a_kafka_connection_saved_from_the_form_keeps_librdkafka_keys(page: Any, airflow_ui: str) -> None:
    dialog = _add_connection(page, airflow_ui, "dpone Kafka", "ui_kafka")
    _open_section(dialog, "Extra Fields")
    dialog.locator("[data-scope=field][data-part=root]").filter(has_text="Bootstrap servers").locator(
        "input"
    ).fill("b1:9092,b2:9092")
    protocol = dialog.locator("[data-scope=field][data-part=root]").filter(has_text="Security protocol")
    protocol.locator("input[type=text]").click()
    page.get_by_role("option", name="SASL_SSL", exact=True).click()
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    saved = get_json(f"{airflow_ui}/api/v2/connections/ui_kafka")
    assert saved["conn_type"] == "dpone_kafka"
    extra = json.loads(saved["extra"])
    assert extra["bootstrap.servers"] == "b1:9092,b2:9092" and extra["security.protocol"] == "SASL_SSL"
    assert extra["sasl.mechanism"] is None  # left empty: unset


def test_the_test_button_on_a_postgres_connection(page: Any, airflow_ui: str, shots: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        skip("no PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) for the Test button")
    dialog = _add_connection(page, airflow_ui, "dpone PostgreSQL", "ui_pg")
    for label, value in (
        ("Host", "127.0.0.1"),
        ("Port", "5432"),
        ("Login", "postgres"),
        ("Database", "postgres"),
    ):
        dialog.get_by_label(label, exact=True).fill(value)
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    row = page.get_by_role("row").filter(has_text="ui_pg")
    with page.expect_response(lambda r: r.url.endswith("/connections/test")) as answered:
        row.get_by_role("button", name="Test Connection").click()
    assert answered.value.json() == {"status": True, "message": "select 1 returned (1,)"}
    toast = page.get_by_role("status").filter(has_text="Test Connection Successful")
    toast.wait_for()
    page.screenshot(path=str(shots / "dpone_postgres-test-button.png"))
    assert "select 1 returned (1,)" in toast.inner_text()
