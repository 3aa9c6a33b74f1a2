"""One contract suite for every state backend, against real stores."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.contracts.state import CursorState, XminState

pytestmark = pytest.mark.integration


@pytest.fixture(params=["variable", "table"])
def backend(request, clean_pg, airflow_db):
    if request.param == "variable":
        from airflow_provider_dpone.state.variable import VariableStateBackend

        return VariableStateBackend()
    from airflow_provider_dpone.state.table import TableStateBackend

    return TableStateBackend(conn_id="dst", table="meta.dpone_state")


def test_state_contract(backend) -> None:
    pipeline = f"p_{backend.name}"
    assert backend.get(pipeline, "a") is None
    assert backend.reset(pipeline, "a") is False
    backend.commit(pipeline, "a", CursorState("u", "2026-01-01", "timestamptz"), "run1")
    backend.commit(pipeline, "b", XminState(4294967301), "run1")
    assert backend.get(pipeline, "a") == CursorState("u", "2026-01-01", "timestamptz")
    backend.commit(pipeline, "a", CursorState("u", "2026-01-02", "timestamptz"), "run2")
    assert backend.get(pipeline, "a").value == "2026-01-02"
    listed = {r["load"]: r["state"] for r in backend.list(pipeline, ["a", "b"])}
    assert listed["a"]["value"] == "2026-01-02" and listed["b"]["xmin"] == 4294967301
    assert backend.reset(pipeline, "a") is True
    assert backend.get(pipeline, "a") is None
    assert backend.get(pipeline, "b") == XminState(4294967301)


def test_table_backend_is_created_on_first_commit_only(clean_pg) -> None:
    from airflow_provider_dpone.state.table import TableStateBackend

    backend = TableStateBackend(conn_id="dst", table="meta.dpone_state")
    assert backend.get("p", "a") is None
    assert clean_pg.query("dst", "select to_regclass('meta.dpone_state')") == [(None,)]
    backend.commit("p", "a", XminState(1), "r")
    assert clean_pg.query("dst", "select pipeline, load, state->>'kind' from meta.dpone_state") == [
        ("p", "a", "xmin")
    ]
