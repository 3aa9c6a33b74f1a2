"""The SaaS sources' pages (docs/apis/<connector>.md) and their inventory (docs/apis.md), read
against the code: each catalog's resources, the connector's default lookback, the catalog's
default pace, and where each field's canonical type lands in PostgreSQL and ClickHouse. A
resource, field or default added to the code without its docs fails here."""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest

from airflow_provider_dpone.apis.base import ApiSource
from airflow_provider_dpone.contracts.connectors import CONNECTORS
from airflow_provider_dpone.contracts.table import column_from_type_name
from airflow_provider_dpone.sql.clickhouse import ClickHouseDialect
from airflow_provider_dpone.sql.postgres import PostgresDialect

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEADINGS = ("Auth", "Resources", "Limits", "Pace", "Late data", "Type mapping", "Troubleshooting", "Example")
SAAS = sorted(name for name, info in CONNECTORS.items() if info.objects == "resource")
PG, CH = PostgresDialect(), ClickHouseDialect()


@cache
def catalog(name: str) -> ApiSource:
    module, hook = CONNECTORS[name].hook.split(":")
    return getattr(importlib.import_module(module), hook).api


@cache
def sections(name: str) -> dict[str, str]:
    """The page's ``## `` sections by heading, in page order (a repeated heading fails)."""
    text = (DOCS / "apis" / f"{name}.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    headings = parts[1::2]
    repeated = sorted({h for h in headings if headings.count(h) > 1})
    assert not repeated, f"docs/apis/{name}.md repeats the sections {repeated}"
    return dict(zip(headings, parts[2::2], strict=True))


def inventory_rows() -> dict[str, str]:
    """docs/apis.md's table rows by connector (its second cell)."""
    rows = {}
    for line in (DOCS / "apis.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2 and re.fullmatch(r"`\w+`", cells[1]):
            assert cells[1].strip("`") not in rows, f"docs/apis.md lists {cells[1]} twice"
            rows[cells[1].strip("`")] = line
    return rows


def duration(seconds: float) -> str:
    """A lookback as the pages write it: ``10 days``, ``1 day``."""
    days, rest = divmod(int(seconds), 86400)
    assert rest == 0, f"a default lookback of {seconds}s is not whole days: teach duration() its unit"
    return f"{days} day" if days == 1 else f"{days} days"


def test_the_saas_connectors_are_the_inventory() -> None:
    assert SAAS, "no connector with objects == 'resource'"
    assert sorted(inventory_rows()) == SAAS


@pytest.mark.parametrize("name", SAAS)
def test_page_has_the_sections_in_order(name: str) -> None:
    found = list(sections(name))
    missing = [h for h in HEADINGS if h not in found]
    assert not missing, f"docs/apis/{name}.md has no section {missing}"
    order = [h for h in found if h in HEADINGS]
    assert order == list(HEADINGS), f"docs/apis/{name}.md: sections in the order {order}"


@pytest.mark.parametrize("name", SAAS)
def test_every_resource_is_on_its_page_and_in_the_inventory(name: str) -> None:
    resources = list(catalog(name).resources)
    assert resources
    section, row = sections(name)["Resources"], inventory_rows()[name]
    assert [r for r in resources if f"`{r}`" not in section] == [], f"docs/apis/{name}.md ## Resources"
    assert [r for r in resources if f"`{r}`" not in row] == [], f"docs/apis.md, the row of {name}"


@pytest.mark.parametrize("name", SAAS)
def test_late_data_states_the_default_lookback(name: str) -> None:
    lookback = CONNECTORS[name].default_lookback
    section, row = sections(name)["Late data"], inventory_rows()[name]
    assert set(lookback) - {"*"} <= set(catalog(name).resources), "a lookback for no resource"
    if not lookback:
        assert "no default lookback" in section.lower(), f"docs/apis/{name}.md ## Late data"
        return
    for resource, seconds in lookback.items():
        assert duration(seconds) in section, f"docs/apis/{name}.md ## Late data: {duration(seconds)}"
        assert duration(seconds) in row, f"docs/apis.md, the row of {name}: {duration(seconds)}"
        if resource != "*":
            assert f"`{resource}`" in section and f"`{resource}`" in row, resource


@pytest.mark.parametrize("name", SAAS)
def test_pace_states_the_requests_per_second(name: str) -> None:
    extra = catalog(name).extra
    section, row = sections(name)["Pace"], inventory_rows()[name]
    rate = extra.get("requests_per_second")
    if rate is None:
        assert "no client-side pace" in section.lower(), f"docs/apis/{name}.md ## Pace"
        assert "unpaced" in row, f"docs/apis.md, the row of {name}: unpaced"
        return
    assert f"at most {rate:g} request" in section, f"docs/apis/{name}.md ## Pace: {rate:g} a second"
    assert f"{rate:g} a second" in row, f"docs/apis.md, the row of {name}: {rate:g} a second"
    if extra.get("burst"):
        assert f"bursts of up to {extra['burst']}" in section, f"docs/apis/{name}.md ## Pace: the burst"
        assert f"burst {extra['burst']}" in row, f"docs/apis.md, the row of {name}: the burst"


@pytest.mark.parametrize("name", SAAS)
def test_type_mapping_names_each_field_and_where_its_type_lands(name: str) -> None:
    section = sections(name)["Type mapping"]
    declared: dict[str, str] = {}
    for resource in catalog(name).resources.values():
        if resource.parent:  # a fan-out's parent id leads each row
            declared[resource.parent["as"]] = "string"
        if not resource.fields:  # columns the manifest declares; else one json `record`
            declared["record"] = "json"
        declared |= resource.fields
    for field, kind in declared.items():
        column = column_from_type_name(field, kind)
        row = f"| `{kind.replace(' ', '')}` | `{PG.native_type(column)}` | `{CH.base_type(column)}` |"
        assert row in section, f"docs/apis/{name}.md ## Type mapping has no row {row}"
        assert f"`{field}`" in section, f"docs/apis/{name}.md ## Type mapping does not name `{field}`"
