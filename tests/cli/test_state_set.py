"""``dpone state set`` validates values; corrupt stored state fails clearly and can be fixed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from airflow_provider_dpone.contracts.state import CursorState, XminState

pytestmark = pytest.mark.integration

TZ_STATE = CursorState("updated_at", "2024-01-01 00:00:00+00", "timestamptz")


def write_manifest(tmp_path: Path, backend: str = "table") -> Path:
    state = {"backend": "table", "conn_id": "dst"} if backend == "table" else {"backend": "variable"}
    doc = {
        "pipeline": "setp",
        "state": state,
        "defaults": {
            "source": {"connector": "postgres", "conn_id": "src"},
            "sink": {"connector": "postgres", "conn_id": "dst"},
        },
        "loads": [
            {
                "name": "orders",
                "source": {"table": "orders", "incremental": {"mode": "cursor", "cursor": "updated_at"}},
                "sink": {"table": "raw.orders", "strategy": "incremental_merge", "unique_key": ["id"]},
            },
            {
                "name": "xorders",
                "source": {"table": "orders", "incremental": {"mode": "xmin"}},
                "sink": {"table": "raw.xorders", "strategy": "incremental_merge", "unique_key": ["id"]},
            },
        ],
    }
    path = tmp_path / "setp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def backend_for(path: Path):
    from airflow_provider_dpone.dag_factory.files import load_manifest
    from airflow_provider_dpone.state import build_state_backend

    return build_state_backend(load_manifest(path).state)


def state_set(capsys, path: Path, load: str, value: str) -> tuple[int, dict | None, str]:
    code = main(["state", "set", str(path), "--load", load, "--value", value, "--format", "json"])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


@pytest.mark.parametrize(
    ("load", "value", "reason"),
    [
        ("orders", "garbage", "'garbage' is not an ISO 8601 timestamp"),
        ("orders", "", "--value: empty"),
        ("orders", "null", "'null' is not a watermark"),
        ("orders", "[]", "'[]' is not a watermark"),
        ("orders", "{}", "no 'kind' field"),
        ("orders", "NaN", "'NaN' is not a watermark"),
        ("orders", "Infinity", "'Infinity' is not a watermark"),
        ("orders", "1e309", "'1e309' is not a watermark"),
        ("orders", "true", "'true' is not a watermark"),
        ("orders", "2024-02-30", "'2024-02-30' is not a valid date"),
        ("orders", "2024-13-01T00:00:00", "'2024-13-01T00:00:00' is not a valid timestamp"),
        ("orders", "42", "'42' is not an ISO 8601 timestamp"),
        (
            "orders",
            '{"kind": "cursor", "cursor": "updated_at", "value": "42", "value_type": "int64"}',
            "value_type 'int64' does not match the stored state's 'timestamptz'",
        ),
        ("xorders", "-1", "non-negative integer"),
        ("xorders", "1.5", "non-negative integer"),
        ("xorders", "abc", "non-negative integer"),
        ("xorders", '{"kind": "xmin", "xmin": -1}', "'xmin' must be between 0 and 2**64-1"),
    ],
)
def test_state_set_refuses_bad_values(clean_pg, tmp_path, capsys, load: str, value: str, reason: str) -> None:
    path = write_manifest(tmp_path)
    backend = backend_for(path)
    before = TZ_STATE if load == "orders" else XminState(77)
    backend.commit("setp", load, before, "r0")
    code, out, err = state_set(capsys, path, load, value)
    assert (code, out) == (EXIT_BAD_INPUT, None)
    assert err.startswith("error: [DPONE100] --value: ") and reason in err
    assert backend.get("setp", load) == before  # untouched


@pytest.mark.parametrize(
    ("load", "value", "after"),
    [
        ("orders", "2024-01-01T01:30:00Z", CursorState("updated_at", "2024-01-01T01:30:00Z", "timestamptz")),
        (
            "orders",
            "2024-01-01 01:30:00+03",
            CursorState("updated_at", "2024-01-01 01:30:00+03", "timestamptz"),
        ),
        ("orders", "2024-01-01T01:30:00", CursorState("updated_at", "2024-01-01T01:30:00", "timestamp")),
        ("orders", "2024-01-01", CursorState("updated_at", "2024-01-01", "date")),
        ("orders", "42", CursorState("updated_at", "42", "int64")),
        ("xorders", "900", XminState(900)),
        ("xorders", "18446744073709551615", XminState(2**64 - 1)),
    ],
)
def test_state_set_stores_the_value_with_its_type(clean_pg, tmp_path, capsys, load, value, after) -> None:
    path = write_manifest(tmp_path)
    code, out, _ = state_set(capsys, path, load, value)
    assert code == EXIT_OK and out["before"] is None
    stored = backend_for(path).get("setp", load)
    assert stored == after
    assert out["after"] == {"kind": after.kind, **after.__dict__}


def test_state_set_keeps_the_stored_cursor_type(clean_pg, tmp_path, capsys) -> None:
    path = write_manifest(tmp_path)
    backend = backend_for(path)
    backend.commit("setp", "orders", TZ_STATE, "r0")
    code, out, _ = state_set(capsys, path, "orders", "2024-06-01 00:00:00")
    assert code == EXIT_OK
    assert out["before"] == {"kind": "cursor", **TZ_STATE.__dict__}
    assert backend.get("setp", "orders") == CursorState("updated_at", "2024-06-01 00:00:00", "timestamptz")


def test_state_set_json_record_round_trips(clean_pg, tmp_path, capsys) -> None:
    path = write_manifest(tmp_path)
    record = {
        "kind": "cursor",
        "cursor": "updated_at",
        "value": "2024-03-01T00:00:00+00:00",
        "value_type": "timestamptz",
    }
    code, out, _ = state_set(capsys, path, "orders", json.dumps(record))
    assert code == EXIT_OK and out["after"] == record
    assert main(["state", "show", str(path), "--load", "orders", "--format", "json"]) == EXIT_OK
    (shown,) = json.loads(capsys.readouterr().out)["states"]
    assert shown["state"] == record and "error" not in shown
    assert backend_for(path).get("setp", "orders") == CursorState(
        "updated_at", "2024-03-01T00:00:00+00:00", "timestamptz"
    )
    # Without value_type, a record keeps the type the stored state holds.
    code, out, _ = state_set(
        capsys, path, "orders", json.dumps({**record, "value": "2024-03-02"} | {"value_type": None})
    )
    assert code == EXIT_BAD_INPUT  # when given, value_type is a type name
    bare = {"kind": "cursor", "cursor": "updated_at", "value": "2024-03-02"}
    code, out, _ = state_set(capsys, path, "orders", json.dumps(bare))
    assert code == EXIT_OK and out["after"] == {**bare, "value_type": "timestamptz"}


@pytest.mark.parametrize("backend_name", ["table", "variable"])
def test_corrupt_state_fails_the_run_clearly_and_state_set_fixes_it(
    clean_pg, airflow_db, tmp_path, capsys, backend_name: str
) -> None:
    path = write_manifest(tmp_path, backend_name)
    backend = backend_for(path)
    corrupt = '{"kind": "cursor", "cursor": "updated_at", "value": 17}'
    if backend_name == "variable":
        from airflow.models import Variable

        Variable.set("dpone.setp.orders", corrupt)
        where = "Airflow Variable 'dpone.setp.orders'"
    else:
        backend.commit("setp", "orders", XminState(1), "r0")
        clean_pg.execute("dst", "update dpone.state set state = %s::jsonb", (corrupt,))
        where = "dpone.state (pipeline='setp', load='orders')"
    clean_pg.execute("src", "create table orders (id int primary key, updated_at timestamptz)")

    assert main(["run", str(path), "--load", "orders", "--format", "json"]) == EXIT_FAILED
    out = capsys.readouterr().out
    report = json.loads(out[re.search(r"^\{$", out, re.M).start() :])  # after the task log, if any
    error = report["reports"][0]["error"]
    assert f"[DPONE303] stored state at {where} is unreadable (malformed cursor state: 'value' must" in error
    assert "stored value: {" in error and '"value": 17' in error  # as stored (jsonb reorders keys)
    assert "dpone state reset PATH --load orders" in error
    assert clean_pg.query("dst", "select to_regclass('raw.orders')") == [(None,)]

    assert main(["state", "show", str(path), "--load", "orders"]) == EXIT_OK
    assert "unreadable" in capsys.readouterr().out

    code, out, _ = state_set(capsys, path, "orders", "2024-01-01T00:00:00Z")
    assert code == EXIT_OK and out["before"] == json.loads(corrupt)
    assert backend.get("setp", "orders") == CursorState("updated_at", "2024-01-01T00:00:00Z", "timestamptz")
