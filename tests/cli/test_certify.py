"""``dpone certify``: the repository's claims are earned and docs/certification.md is its output;
an unearned claim exits 1 naming what is missing; ``--live`` runs a profile with pytest and
records passed / failed / skipped; the GitHub workflows call what they should."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_dpone.cli.certify import HEADER, REGENERATE
from airflow_provider_dpone.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from airflow_provider_dpone.contracts.certification import Level
from airflow_provider_dpone.contracts.connectors import CONNECTORS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["certify", *argv])
    return code, capsys.readouterr().out


def test_the_repository_earns_every_claim_and_docs_certification_md_is_its_output(capsys) -> None:
    code, text = run(capsys, "--format", "markdown", "--root", str(ROOT))
    assert code == EXIT_OK, "a connector claims a level its evidence does not earn: run `dpone certify`"
    on_disk = (ROOT / "docs" / "certification.md").read_text(encoding="utf-8")
    assert text == on_disk, f"docs/certification.md is out of date: run `{REGENERATE}`"


def test_a_claim_above_the_evidence_exits_1_naming_the_unmet_requirements(capsys, monkeypatch) -> None:
    info = CONNECTORS["postgres"]
    claim = dataclasses.replace(info.certified, level=Level.PRODUCTION)
    monkeypatch.setitem(CONNECTORS, "postgres", dataclasses.replace(info, certified=claim))
    code, out = run(capsys, "--root", str(ROOT), "--connector", "postgres", "--connector", "kafka")
    assert code == EXIT_FAILED
    assert "FAIL  postgres           claims production-certified earns beta" in out
    assert (
        "unmet (production-certified) Live integration test profile behind integration_live: "
        "live: no recorded live run (dpone certify --live)" in out
    )
    assert "ok    kafka" in out and "unearned claims: postgres" in out
    code, out = run(capsys, "--root", str(ROOT), "--connector", "postgres", "--format", "json")
    entry = json.loads(out)["connectors"][0]
    assert code == EXIT_FAILED and entry["ok"] is False and entry["earned"] == "beta"
    assert {u["requirement"] for u in entry["unmet"]} == {"live_profile"}


def test_evidence_missing_from_the_checkout_earns_nothing(tmp_path: Path, capsys) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "docs").mkdir()
    code, out = run(capsys, "--root", str(tmp_path), "--connector", "clickhouse", "--format", "json")
    entry = json.loads(out)["connectors"][0]
    assert code == EXIT_FAILED and entry["earned"] is None and entry["claimed"] == "beta"
    first = entry["unmet"][0]
    assert first["requirement"] == "import" and "no such file" in first["reason"]
    assert entry["next_step"].startswith("for experimental: Importable without optional dependency leakage")


def test_no_checkout_or_a_bad_results_file_is_bad_input(tmp_path: Path, capsys) -> None:
    code = main(["certify", "--root", str(tmp_path)])
    assert (
        code == EXIT_BAD_INPUT and "no repository checkout with tests/ and docs/" in capsys.readouterr().err
    )
    bad = tmp_path / "results.json"
    bad.write_text("[1, 2]")
    assert main(["certify", "--root", str(ROOT), "--results", str(bad)]) == EXIT_BAD_INPUT
    assert main(["certify", "--root", str(ROOT), "--connector", "nope"]) == EXIT_BAD_INPUT


def test_connectors_certify_is_the_same_command_and_output_goes_to_a_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "matrix.json"
    code = main(["connectors", "certify", "--root", str(ROOT), "--format", "json", "--output", str(out)])
    assert code == EXIT_OK and capsys.readouterr().out == ""
    data = json.loads(out.read_text())
    assert [e["connector"] for e in data["connectors"]] == list(CONNECTORS)
    assert {e["type"] for e in data["connectors"]} >= {"source/sink/state/CDC", "API source", "sink/state"}


FAKE_LIVE = """
import os
import pytest

@pytest.mark.integration_live
def test_live_cbr_daily_rates():
    mode = os.environ.get("DPONE_LIVE_CBR")
    if not mode:
        pytest.skip("live test: set DPONE_LIVE_CBR")
    assert mode == "pass", f"the server refused {mode}"
"""


def _live(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code, out = run(capsys, "--live", "--connector", "cbr", "--root", str(tmp_path),
                    "--results", str(tmp_path / "live.json"), "--format", "json")  # fmt: skip
    return code, json.loads(out)


def _live_requirement(data: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in data["connectors"][0]["requirements"] if r["requirement"] == "live_profile")


def test_live_runs_the_profile_with_pytest_and_records_each_outcome(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "apis").mkdir(parents=True)
    (tmp_path / "tests" / "apis" / "test_cbr.py").write_text(FAKE_LIVE)

    monkeypatch.setenv("DPONE_LIVE_CBR", "pass")
    _, data = _live(tmp_path, capsys)
    latest = data["connectors"][0]["live_latest"]
    assert latest["result"] == "passed" and latest["tests"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert (
        latest["date"].endswith("Z") and latest["python"] and latest["dpone"] and "httpx" in latest["drivers"]
    )
    assert data["live_failed"] == [] and _live_requirement(data)["met"] is True

    monkeypatch.setenv("DPONE_LIVE_CBR", "secret-token-1234")
    code, data = _live(tmp_path, capsys)
    latest = data["connectors"][0]["live_latest"]
    assert code == EXIT_FAILED and data["live_failed"] == ["cbr"] and latest["result"] == "failed"
    assert "the server refused ***" in latest["reasons"][0] and _live_requirement(data)["met"] is False

    monkeypatch.delenv("DPONE_LIVE_CBR")
    code, data = _live(tmp_path, capsys)
    latest = data["connectors"][0]["live_latest"]
    assert latest["result"] == "skipped" and latest["env_missing"] == ["DPONE_LIVE_CBR"]
    assert "live test: set DPONE_LIVE_CBR" in latest["reasons"][0]
    assert data["live_failed"] == [] and _live_requirement(data)["met"] is False  # a skip is never a pass

    recorded = (tmp_path / "live.json").read_text()
    assert [r["result"] for r in json.loads(recorded)["runs"]] == ["passed", "failed", "skipped"]
    assert "secret-token-1234" not in recorded


def test_a_profile_whose_test_is_not_marked_fails_the_live_run(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "apis").mkdir(parents=True)
    (tmp_path / "tests" / "apis" / "test_cbr.py").write_text("def test_live_cbr_daily_rates():\n    pass\n")
    monkeypatch.setenv("DPONE_LIVE_CBR", "pass")
    code, data = _live(tmp_path, capsys)
    latest = data["connectors"][0]["live_latest"]
    assert code == EXIT_FAILED and latest["result"] == "failed" and "pytest exited 5" in latest["reasons"][0]
    assert "not marked integration_live" in _live_requirement(data)["reason"]


def _cbr_checkout(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "apis").mkdir(parents=True)
    (tmp_path / "tests" / "apis" / "test_cbr.py").write_text(FAKE_LIVE)
    return tmp_path / "live.json"


def test_a_hand_written_live_record_is_bad_input_naming_it(tmp_path: Path, capsys) -> None:
    results = _cbr_checkout(tmp_path)
    results.write_text(json.dumps({"runs": [{"connector": "cbr", "result": "passed"}]}))
    code = main(["certify", "--connector", "cbr", "--root", str(tmp_path), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert (
        "1 record(s) not written by `dpone certify --live`: run 1 (cbr): date None is not a UTC time" in err
    )
    assert "delete them (or the file)" in err


def test_a_recorded_run_of_other_tests_does_not_meet_the_live_requirement(tmp_path: Path, capsys) -> None:
    results = _cbr_checkout(tmp_path)
    old = "tests/apis/test_cbr.py::test_live_cbr_old_rates"
    record = {"connector": "cbr", "date": "2026-01-01T00:00:00Z", "result": "passed",
              "marker": "integration_live", "tests": {"passed": 1, "failed": 0, "skipped": 0},
              "outcomes": {old: "passed"}}  # fmt: skip
    results.write_text(json.dumps({"runs": [record]}))
    code, out = run(capsys, "--connector", "cbr", "--root", str(tmp_path), "--results", str(results),
                    "--format", "json")  # fmt: skip
    reason = _live_requirement(json.loads(out))["reason"]
    assert code == EXIT_FAILED and "ran other tests than the profile" in reason and old in reason


FAKE_SHEETS = """
import os
import pytest

pytestmark = pytest.mark.integration_live

def test_live_sheet():
    pass

@pytest.mark.parametrize("key", ["json", "file"])
def test_live_sheet_with_a_service_account(key):
    if not os.environ.get("DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY"):
        pytest.skip("set DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY")
"""


def test_a_partly_skipped_profile_is_partial_naming_each_skipped_test(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "apis").mkdir(parents=True)
    (tmp_path / "tests" / "apis" / "test_google_sheets.py").write_text(FAKE_SHEETS)
    monkeypatch.delenv("DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY", raising=False)
    code, out = run(capsys, "--live", "--connector", "google_sheets", "--root", str(tmp_path),
                    "--results", str(tmp_path / "live.json"), "--format", "json")  # fmt: skip
    data = json.loads(out)
    latest = data["connectors"][0]["live_latest"]
    sa = "tests/apis/test_google_sheets.py::test_live_sheet_with_a_service_account"
    assert latest["result"] == "partial" and latest["tests"] == {"passed": 1, "failed": 0, "skipped": 2}
    assert latest["outcomes"] == {
        sa: "skipped",
        "tests/apis/test_google_sheets.py::test_live_sheet": "passed",
    }
    assert latest["reasons"] == [f"skipped {sa}[json], {sa}[file]: set DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY"]
    assert data["live_failed"] == [] and code == EXIT_FAILED  # the claim fails: the checkout is empty
    assert _live_requirement(data)["met"] is False
    assert "latest run partial" in _live_requirement(data)["reason"]

    monkeypatch.setenv("DPONE_LIVE_GS_SERVICE_ACCOUNT_KEY", "{}")
    _, out = run(capsys, "--live", "--connector", "google_sheets", "--root", str(tmp_path),
                 "--results", str(tmp_path / "live.json"), "--format", "json")  # fmt: skip
    data = json.loads(out)
    assert data["connectors"][0]["live_latest"]["result"] == "passed" and _live_requirement(data)["met"]


def test_a_profile_test_pytest_does_not_run_fails_the_live_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "apis").mkdir(parents=True)
    (tmp_path / "tests" / "apis" / "test_google_sheets.py").write_text(
        "import pytest\n\n@pytest.mark.integration_live\ndef test_live_sheet():\n    pass\n\n"
        "def test_live_sheet_with_a_service_account():\n    pass\n"
    )
    _, out = run(capsys, "--live", "--connector", "google_sheets", "--root", str(tmp_path),
                 "--results", str(tmp_path / "live.json"), "--format", "json")  # fmt: skip
    data = json.loads(out)
    latest = data["connectors"][0]["live_latest"]
    assert latest["result"] == "failed" and data["live_failed"] == ["google_sheets"]
    assert latest["reasons"] == [
        "not run (not collected, or deselected by -m): "
        "tests/apis/test_google_sheets.py::test_live_sheet_with_a_service_account"
    ]


def test_the_generated_header_cites_files_that_exist() -> None:
    cited = re.findall(r"`((?:airflow_provider_dpone/)?contracts/\w+\.py)`", HEADER)
    assert "airflow_provider_dpone/contracts/certifications.py" in cited
    for path in cited:
        assert (ROOT / "airflow_provider_dpone" / path.removeprefix("airflow_provider_dpone/")).is_file(), (
            path
        )
    assert (ROOT / ".github" / "workflows" / "connector-certification.yml").is_file()


def _workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in workflow["jobs"][job]["steps"])


def test_ci_workflow_runs_lint_types_and_the_ci_script() -> None:
    ci = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert "bash .ci/run" in _runs(ci, "tests")
    lint = _runs(ci, "lint-and-types")
    assert "ruff check" in lint and "ruff format --check" in lint and "mypy" in lint
    for job in ci["jobs"].values():
        setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python")]
        assert setup and setup[0]["with"]["python-version"] == "3.11"


def test_certification_workflow_is_nightly_and_on_demand_with_offline_and_live_matrices() -> None:
    wf = _workflow("connector-certification.yml")
    assert wf["on"]["schedule"][0]["cron"] and "workflow_dispatch" in wf["on"]
    offline = _runs(wf, "offline")
    assert "dpone certify --format json" in offline and "dpone certify --format markdown" in offline
    uploads = [
        s["with"]["name"] for s in wf["jobs"]["offline"]["steps"] if "upload-artifact" in str(s.get("uses"))
    ]
    assert uploads == ["connector-certification-offline"]
    assert "dpone certify --live" in _runs(wf, "live")
    env = wf["jobs"]["live"]["env"]
    for name, info in CONNECTORS.items():  # every variable a live profile reads comes from a secret
        profile = info.certified.live
        for var in profile.env if profile else ():
            if var in ("DPONE_MSSQL_URI", "DPONE_BIGQUERY_KEYFILE"):  # set by the job's own steps
                assert var in _runs(wf, "live"), var
                continue
            assert env.get(var) == f"${{{{ secrets.{var} }}}}", f"{name}: {var} is not mapped from a secret"
