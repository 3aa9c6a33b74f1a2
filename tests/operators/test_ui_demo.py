"""The demo pipeline in the real Airflow UI, driven by a headless browser (integration tier).

Starts ``airflow standalone`` (no login) in a temporary AIRFLOW_HOME whose manifests folder
holds a copy of ``dags/manifests/demo_orders.yaml`` and one invalid manifest. The two demo
connections live in Airflow's metadata database with a unique secret token as the password (a
PostgreSQL role made for the test logs in with it); they are stored through the REST API,
since ``airflow connections add`` starts Airflow's CLI once per connection (15 s each on 2
cores). Then Debian's chromium, driven by playwright:

1. the DAG list shows ``demo_orders`` and ``INVALID MANIFEST broken_orders.yaml`` (tag
   ``dpone-invalid``); Admin > Providers links the provider's name to its docs, which its
   plugin serves (a page opens, and links on), and the Docs menu shows them inside Airflow;
2. Trigger (the button and its form) runs the demo: success, and the run report in the log;
3. the warehouse connection's Database is broken in its edit form, the shop changes, Trigger:
   the task fails and its log names the connection and the missing database;
4. the connection is fixed in the form, the failed task is Cleared (with its downstream
   task): the retry succeeds and the warehouse equals the shop (SQL: count and hash).

No page the browser shows, and no task log file, holds the secret token. State is polled
through the REST API; everything else is clicks. Needs ``apt-get install chromium`` and
``pip install playwright`` (the ``browser`` extra; never ``playwright install``), which
``scripts/test.sh`` installs; skips, saying which is missing, without them. Screenshots go to
``DPONE_UI_SCREENSHOTS`` (default: a pytest temporary directory), printed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from airflow_provider_dpone.demo.postgres_server import database_uri
from airflow_provider_dpone.demo.shop import change_orders, create_shop
from airflow_provider_dpone.demo.ui import ui_env
from tests.operators.ui_helpers import (
    airflow_exe,
    free_port,
    get_json,
    launch_browser,
    screenshot_dir,
    send_json,
    stop_process_group,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "demo_orders"
INVALID_FILE = "broken_orders.yaml"
INVALID_MANIFEST = """\
# Invalid on purpose: an unknown sink strategy. The DAG list shows it as a placeholder DAG.
pipeline: broken_orders
loads:
  - name: orders
    source: {connector: postgres, conn_id: dpone_demo_shop, table: public.orders}
    sink: {connector: postgres, conn_id: dpone_demo_dwh, table: raw.orders, strategy: upsert_please}
"""
SAME = "select count(*), sum(hashtext(id::text || status || amount::text)) from {}"
SAME_CUSTOMERS = "select count(*), sum(hashtext(id::text || name || coalesce(email, ''))) from {}"


@dataclass
class Demo:
    base: str
    home: Path
    token: str
    shop: str
    dwh: str
    dwh_db: str
    log: Path
    started: float = field(default_factory=time.monotonic)
    steps: list[str] = field(default_factory=list)

    def step(self, name: str) -> None:
        """Note when a step ended (printed at the end: where the test spends its time)."""
        self.steps.append(f"{time.monotonic() - self.started:5.1f}s {name}")

    def api(self, path: str) -> Any:
        return get_json(f"{self.base}/api/v2/{path}")

    def task_states(self, run_id: str) -> dict[str, tuple[str | None, int]]:
        tis = self.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]
        return {t["task_id"]: (t["state"], t["try_number"]) for t in tis}

    def wait_run(self, run_id: str, timeout: float = 90) -> str:
        """The run's final state (success or failed), polled through the REST API."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while True:
            with contextlib.suppress(OSError):  # a busy server answering late is no failure
                state = self.api(f"dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"run {run_id} still {state} after {timeout:.0f}s: {self.task_states(run_id)}; "
                    f"see {self.log}"
                )
            time.sleep(0.5)


def _role_sql(admin: str, dbname: str, *statements: sql.Composable) -> None:
    with psycopg.connect(database_uri(admin, dbname), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def _login_role(pg: Any, token: str) -> Iterator[str]:
    """A login role whose password is ``token`` (so it is the password on any server, trust
    auth or not): it reads the shop and owns the warehouse; dropped with what it made."""
    role = sql.Identifier(name := f"dpone_ui_{uuid.uuid4().hex[:8]}")
    admin_db = str(conninfo_to_dict(pg.admin).get("dbname") or "postgres")
    _role_sql(
        pg.admin, admin_db, sql.SQL("create role {} login password {}").format(role, sql.Literal(token))
    )
    try:
        _role_sql(
            pg.admin,
            pg.src_db,
            sql.SQL("grant usage on schema public to {}").format(role),
            sql.SQL("grant select on all tables in schema public to {}").format(role),
        )
        _role_sql(
            pg.admin,
            admin_db,
            sql.SQL("alter database {} owner to {}").format(sql.Identifier(pg.dst_db), role),
        )
        yield name
    finally:
        _role_sql(
            pg.admin,
            admin_db,
            sql.SQL("alter database {} owner to current_user").format(sql.Identifier(pg.dst_db)),
        )
        for db in (pg.src_db, pg.dst_db):
            _role_sql(pg.admin, db, sql.SQL("drop owned by {} cascade").format(role))
        _role_sql(pg.admin, admin_db, sql.SQL("drop role {}").format(role))


def _connection(conn_id: str, libpq_uri: str, login: str, token: str) -> dict[str, Any]:
    p = conninfo_to_dict(libpq_uri)
    return {
        "connection_id": conn_id,
        "conn_type": "dpone_postgres",
        "host": p.get("host") or "127.0.0.1",
        "port": int(p.get("port") or 5432),
        "login": login,
        "password": token,
        "schema": p["dbname"],
    }


def _standalone_env(home: Path, port: int, manifests: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # no login
        "AIRFLOW__API__WORKERS": "1",
        "DPONE_MANIFESTS_DIR": str(manifests),
        "DPONE_REPORT_DIR": str(home / "reports"),
    }
    return ui_env(env, "127.0.0.1", port)  # PATH, the API's host and port, the execution API URL


@pytest.fixture
def browser() -> Iterator[Any]:
    """First, so a missing chromium or playwright skips before Airflow starts."""
    with launch_browser() as launched:
        yield launched


@pytest.fixture
def demo(browser: Any, clean_pg: Any, tmp_path: Path) -> Iterator[Demo]:
    """The demo shop and an empty warehouse, and ``airflow standalone`` serving both DAGs."""
    create_shop(clean_pg.src, orders=20_000)
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "dpone_manifests.py", home / "dags")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    demo_yaml = (ROOT / "dags" / "manifests" / "demo_orders.yaml").read_text()
    # no automatic retry: the failure shows at once, and the test's Clear is the retry
    (manifests / "demo_orders.yaml").write_text(re.sub(r"(?m)^retries: \d+$", "retries: 0", demo_yaml))
    (manifests / INVALID_FILE).write_text(INVALID_MANIFEST)
    token = f"dpone-secret-{uuid.uuid4().hex}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "standalone.log"
    with _login_role(clean_pg, token) as login, log_path.open("wb") as log:
        server = subprocess.Popen(
            [airflow_exe(), "standalone"],
            env=_standalone_env(home, port, manifests),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with every component
        )
        try:
            demo = Demo(base, home, token, clean_pg.src, clean_pg.dst, clean_pg.dst_db, log_path)
            deadline = time.monotonic() + 120
            while True:  # the API server answers, and the DAG processor has stored both DAGs
                try:
                    dag_ids = {d["dag_id"] for d in demo.api("dags")["dags"]}
                    if {DAG_ID, "dpone_invalid__broken_orders"} <= dag_ids:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"airflow standalone did not come up: {log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            demo.step("airflow standalone up, both DAGs parsed")
            # The execution API (the tasks' API) builds its versioned routes on its first request,
            # 10-15 s of CPU that would stall the first task and every UI request meanwhile.
            get_json(f"{base}/execution/health", timeout=90)
            for conn_id, uri in (("dpone_demo_shop", clean_pg.src), ("dpone_demo_dwh", clean_pg.dst)):
                send_json(f"{base}/api/v2/connections", _connection(conn_id, uri, login, token))
            demo.step("execution API warm, connections stored")
            yield demo
        finally:
            stop_process_group(server, grace=5)


def _no_secret(page: Any, token: str) -> None:
    assert token not in page.content(), f"the secret token is in the page {page.url}"


def _trigger(page: Any, base: str, shots: Path | None = None) -> str:
    """Trigger demo_orders with the Trigger button and its form; the new run's id."""
    page.goto(f"{base}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    if shots is not None:
        dialog.screenshot(path=str(shots / "02-trigger-form.png"))
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/dags/{DAG_ID}/dagRuns")
    ) as answered:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert answered.value.ok, answered.value.text()
    return answered.value.json()["dag_run_id"]


def _task_log(page: Any, demo: Demo, run_id: str, task_id: str, shot: Path) -> str:
    """The task's page with its log; the log's text once the log is complete."""
    page.goto(f"{demo.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
    page.get_by_text("Post Execute").first.wait_for()  # the last group: the whole log is shown
    page.screenshot(path=str(shot), full_page=True)
    _no_secret(page, demo.token)
    return page.inner_text("body")


def _edit_database(page: Any, demo: Demo, conn_id: str, database: str, shot: Path) -> None:
    """Admin -> Connections -> Edit: the Database field (Airflow's schema), saved."""
    from playwright.sync_api import expect  # imported here: without playwright the test skips

    page.goto(f"{demo.base}/connections")
    page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    field = dialog.get_by_label("Database", exact=True)  # "Schema", relabelled by the dpone form
    expect(field).not_to_have_value("")  # the saved values are in: a fill is not overwritten
    field.fill(database)
    expect(field).to_have_value(database)
    dialog.screenshot(path=str(shot))
    _no_secret(page, demo.token)
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    saved = demo.api(f"connections/{conn_id}")
    assert saved["schema"] == database and saved["password"] != demo.token


def _docs_from_the_providers_page_and_the_docs_menu(page: Any, base: str, shots: Path) -> None:
    """Admin > Providers: the provider's name opens its docs (served by its plugin) in a new
    tab, and a page links on; the Docs menu's entry shows them inside Airflow."""
    page.goto(f"{base}/providers")
    link = page.get_by_role("link", name="airflow-provider-dpone", exact=True)
    link.wait_for()
    with page.context.expect_page() as opened:
        link.click()
    docs = opened.value
    docs.get_by_role("heading", name="airflow-provider-dpone documentation").wait_for()
    assert docs.url == f"{base}/dpone/", docs.url
    docs.get_by_role("link", name="Crash safety", exact=True).click()
    docs.get_by_role("heading", name="Crash safety", exact=True).wait_for()
    assert docs.url == f"{base}/dpone/docs/crash-safety.md", docs.url
    docs.screenshot(path=str(shots / "01b-docs-page.png"))
    docs.close()
    page.goto(f"{base}/")
    page.get_by_role("button", name="Docs").click()
    page.get_by_role("menuitem", name="dpone documentation").click()
    page.frame_locator("iframe").get_by_role(
        "heading", name="airflow-provider-dpone documentation"
    ).wait_for()
    page.screenshot(path=str(shots / "01c-docs-in-airflow.png"))


def _sums(uri: str, query: str) -> tuple:
    with psycopg.connect(uri) as conn:
        return tuple(conn.execute(query).fetchone() or ())


@pytest.mark.timeout(170)  # the whole test, set-up and teardown included; 2 min on 2 cores
def test_demo_in_the_ui_runs_fails_on_a_broken_connection_and_recovers_on_clear(
    browser: Any, demo: Demo, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture
) -> None:
    shots = screenshot_dir(tmp_path_factory, "ui-demo")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        # 1. The DAG list: the demo and the invalid manifest's placeholder.
        page.goto(f"{demo.base}/dags")
        invalid = page.get_by_text(f"INVALID MANIFEST {INVALID_FILE}", exact=True)
        invalid.wait_for()
        page.get_by_role("link", name=DAG_ID, exact=True).wait_for()
        page.screenshot(path=str(shots / "01-dag-list.png"))
        assert page.get_by_role("link", name="dpone-invalid").count() == 1
        _no_secret(page, demo.token)
        demo.step("DAG list checked")
        _docs_from_the_providers_page_and_the_docs_menu(page, demo.base, shots)
        demo.step("docs opened from Providers and the Docs menu")

        # 2. Trigger the demo from its page: success, the run report in the orders log.
        first = _trigger(page, demo.base, shots)
        demo.step("run 1 triggered")
        assert demo.wait_run(first) == "success", demo.task_states(first)
        demo.step("run 1 succeeded")
        text = _task_log(page, demo, first, "orders", shots / "03-run1-orders-log.png")
        assert "dpone demo_orders.orders [success] strategy=incremental_merge" in text
        assert re.search(r"finalize: \w+: 20,000 inserted", text), text[-2000:]
        assert "state: null -> " in text
        demo.step("run 1 report read in the log")

        # 3. Break the warehouse connection in its form; the shop changes; Trigger: it fails.
        missing = f"{demo.dwh_db}_missing"
        _edit_database(page, demo, "dpone_demo_dwh", missing, shots / "04-connection-broken.png")
        change_orders(demo.shop)
        second = _trigger(page, demo.base)
        demo.step("connection broken, run 2 triggered")
        assert demo.wait_run(second) == "failed"
        demo.step("run 2 failed")
        assert demo.task_states(second) == {"customers": ("failed", 1), "orders": ("upstream_failed", 0)}
        text = _task_log(page, demo, second, "customers", shots / "05-run2-failed-log.png")
        assert "dpone demo_orders.customers [failed]" in text
        error = next(line for line in text.splitlines() if line.startswith("error: "))
        assert "'dpone_demo_dwh'" in error and f'database "{missing}" does not exist' in error, error
        assert "state: unchanged" in text  # a failed run leaves the state as it was
        demo.step("run 2 error read in the log")

        # 4. Fix it in the form, Clear the failed task (and its downstream): the retry succeeds.
        _edit_database(page, demo, "dpone_demo_dwh", demo.dwh_db, shots / "06-connection-fixed.png")
        page.goto(f"{demo.base}/dags/{DAG_ID}/runs/{quote(second, safe='')}/tasks/customers")
        page.get_by_role("button", name="Press shift+c to clear").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Affected Tasks: 2").wait_for()  # customers and the downstream orders
        dialog.screenshot(path=str(shots / "07-clear-dialog.png"))
        with page.expect_response(
            lambda r: "/clearTaskInstances" in r.url and '"dry_run":false' in (r.request.post_data or "")
        ) as cleared:
            dialog.get_by_role("button", name="Confirm").click()
        assert cleared.value.ok, cleared.value.text()
        demo.step("connection fixed, task cleared")
        assert demo.wait_run(second) == "success", demo.task_states(second)
        demo.step("retry succeeded")
        assert demo.task_states(second) == {"customers": ("success", 2), "orders": ("success", 1)}
        text = _task_log(page, demo, second, "orders", shots / "08-retry-orders-log.png")
        assert "dpone demo_orders.orders [success]" in text and "state: {" in text
        assert re.search(r"finalize: \w+: 500 inserted, \d+ updated", text), text[-2000:]  # the changes

        # The warehouse equals the shop.
        shop = _sums(demo.shop, SAME.format("orders")), _sums(demo.shop, SAME_CUSTOMERS.format("customers"))
        dwh = (
            _sums(demo.dwh, SAME.format("raw.orders")),
            _sums(demo.dwh, SAME_CUSTOMERS.format("raw.customers")),
        )
        assert shop == dwh and shop[0][0] == 20_500
        leaked = [
            str(p)
            for p in (demo.home / "logs").rglob("*")
            if p.is_file() and demo.token in p.read_text("utf-8", "replace")
        ]
        assert not leaked, f"the secret token is in {leaked}"
        demo.step("warehouse equals the shop")
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
        raise
    finally:
        context.close()
        with capsys.disabled():
            print("\nUI demo steps (since the fixture began):\n  " + "\n  ".join(demo.steps))
            print(f"UI demo screenshots: {shots}\nairflow standalone output: {demo.log}")
