"""One contract suite for every state backend, against real stores."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dpone.contracts.state import RESUME_SUFFIX, CursorState, ResumeState, XminState

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


def _store_raw(backend, pg, pipeline: str, load: str, raw: str) -> None:
    """Write ``raw`` as the stored state, bypassing the backend (a hand edit, an old release)."""
    if backend.name == "variable":
        from airflow.models import Variable

        Variable.set(backend.key(pipeline, load), raw)
        return
    backend.commit(pipeline, load, XminState(1), "r")
    pg.execute(
        "dst",
        "update meta.dpone_state set state = %s::jsonb where pipeline = %s and load = %s",
        (raw, pipeline, load),
    )


def _where(backend, pipeline: str, load: str) -> str:
    if backend.name == "variable":
        return f"Airflow Variable 'dpone.{pipeline}.{load}'"
    return f"meta.dpone_state (pipeline='{pipeline}', load='{load}')"


# Every shape a JSON column can hold; invalid JSON text only fits a Variable (below).
CORRUPT = [
    ("[1, 2]", "a JSON array, not an object"),
    ('"2024-01-01"', "a JSON string, not an object"),
    ("42", "a JSON number, not an object"),
    ('{"cursor": "u", "value": "x"}', "no 'kind'"),
    ('{"kind": "lsn"}', "unknown kind 'lsn'"),
    ('{"kind": "cursor", "cursor": "u"}', "missing field 'value'"),
    ('{"kind": "cursor", "cursor": "u", "value": "x", "extra": 1}', "unexpected field 'extra'"),
    ('{"kind": "cursor", "cursor": "u", "value": 42}', "'value' must be text or null"),
    ('{"kind": "xmin", "xmin": "12"}', "'xmin' must be an integer"),
    ('{"kind": "offsets", "topic": "t", "offsets": ["0"]}', "'offsets' must map partition numbers"),
    ('{"kind": "offsets", "topic": "t", "offsets": {"0": 1.5}}', "'offsets' must map partition numbers"),
]


@pytest.mark.parametrize(("raw", "reason"), CORRUPT)
def test_corrupt_state_fails_clearly(backend, clean_pg, raw: str, reason: str) -> None:
    from airflow_provider_dpone.contracts.errors import StateError

    pipeline = f"c_{backend.name}"
    _store_raw(backend, clean_pg, pipeline, "a", raw)
    with pytest.raises(StateError) as err:
        backend.get(pipeline, "a")
    message = str(err.value)
    assert message.startswith(f"[DPONE303] stored state at {_where(backend, pipeline, 'a')} is unreadable")
    assert reason in message and "stored value: " in message
    assert "dpone state reset PATH --load a" in message
    # ``state show`` still lists it, flagged; a reset clears it.
    (listed,) = backend.list(pipeline, ["a"])
    assert listed["state"] == json.loads(raw) and reason in listed["error"]
    assert backend.reset(pipeline, "a") is True
    assert backend.get(pipeline, "a") is None


def test_variable_with_invalid_json_fails_clearly(clean_pg, airflow_db) -> None:
    from airflow_provider_dpone.contracts.errors import StateError
    from airflow_provider_dpone.state.variable import VariableStateBackend

    backend = VariableStateBackend()
    raw = '{"kind": "cursor", "cursor": "u", "value": "2024-01-01' + "x" * 500
    _store_raw(backend, clean_pg, "c_json", "a", raw)
    with pytest.raises(StateError) as err:
        backend.get("c_json", "a")
    message = str(err.value)
    assert "stored state at Airflow Variable 'dpone.c_json.a' is unreadable (not valid JSON" in message
    assert f"stored value: {raw[:200]}…" in message and raw[:201] not in message
    (listed,) = backend.list("c_json", ["a"])
    assert listed["state"] == raw and "not valid JSON" in listed["error"]


@pytest.mark.parametrize("raw", ["", "null"])
def test_empty_or_null_state_is_no_state(backend, clean_pg, raw: str) -> None:
    if backend.name == "table" and raw == "":
        raw = "null"  # a jsonb column cannot hold empty text
    pipeline = f"n_{backend.name}"
    _store_raw(backend, clean_pg, pipeline, "a", raw)
    assert backend.get(pipeline, "a") is None
    assert backend.list(pipeline, ["a"])[0]["state"] is None


def test_resume_checkpoint_round_trips(backend) -> None:
    pipeline = f"r_{backend.name}"
    record = ResumeState("run_7", {"page": 3, "until": "2026-01-01T00:00:00Z"}, 250)
    backend.commit(pipeline, "a" + RESUME_SUFFIX, record, "run_7")
    assert backend.get(pipeline, "a" + RESUME_SUFFIX) == record


def test_an_unreadable_airflow_database_is_an_error_never_no_state(tmp_path) -> None:
    """Airflow's Variable.get logs a database error and answers None; read as "no state" that
    would re-read a whole table or drop a change feed's slot. The backend raises instead (in a
    child process: Airflow reads its database setting once)."""
    import os
    import subprocess
    import sys

    code = (
        "from airflow_provider_dpone.state.variable import VariableStateBackend\n"
        "try:\n"
        "    print('read', VariableStateBackend().get('p', 'l'))\n"
        "except Exception as exc:\n"
        "    print('raised', type(exc).__name__)\n"
    )
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'empty.db'}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "raised OperationalError", done.stdout + done.stderr
