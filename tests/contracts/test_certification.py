"""Certification rules (contracts/certification.py), the evidence resolver (cli/evidence.py), and
the importability every connector's experimental level cites as evidence."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_dpone.cli.evidence import Finder, docs_section, resolve_test
from airflow_provider_dpone.contracts.certification import (
    BY_KEY,
    REQUIREMENTS,
    Certification,
    Evidence,
    Found,
    Kind,
    Level,
    LiveProfile,
    assess,
    judge_live_run,
    parse_evidence,
    record_problems,
    unknown_keys,
)
from airflow_provider_dpone.contracts.connectors import CONNECTORS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
T = "tests/t.py::test_"  # a test id prefix for the fake finder
EXPERIMENTAL = {
    "import": (f"{T}import",),
    "extras_docs": ("docs/x.md#Install",),
    "config_examples": ("docs/x.md#Example",),
    "offline_tests": (f"{T}sql",),
}
BETA = {
    **EXPERIMENTAL,
    "credentials": (f"{T}creds",),
    "retry_docs": ("docs/x.md#Retries",),
    "type_mapping": (f"{T}types",),
    "incremental": ("n/a: read whole",),
    "local_integration": (f"{T}local",),
}
PAGE = "pip install 'airflow-provider-dpone[x]'\n```yaml\nsource: {connector: thing}\n```"


def finder(missing: frozenset[str] = frozenset(), live: Found | None = None) -> Callable[[Evidence], Found]:
    """Every test and docs section exists (with PAGE as text) but those in ``missing``."""

    def find(ev: Evidence) -> Found:
        if ev.kind is Kind.LIVE:
            return live or Found(False, "no recorded live run")
        if ev.ref in missing:
            return Found(False, "no such test function")
        return Found(True, "defined", PAGE)

    return find


def judge_all(cert: Certification, find: Callable[[Evidence], Found] | None = None):  # type: ignore[no-untyped-def]
    return assess("thing", cert, find or finder(), extra="x")


def test_an_unearned_claim_is_refused_naming_each_unmet_requirement() -> None:
    claim = Certification(
        Level.BETA, {k: v for k, v in BETA.items() if k not in ("type_mapping", "retry_docs")}
    )
    a = judge_all(claim)
    assert not a.ok and a.claimed is Level.BETA and a.earned is Level.EXPERIMENTAL
    assert [v.requirement.key for v in a.unearned] == ["retry_docs", "type_mapping"]
    assert all(v.reason == "no evidence declared" for v in a.unearned)
    assert a.next_step == "for beta: Retry/rate-limit behavior documented (no evidence declared)"


def test_every_requirement_of_the_level_and_below_earns_it() -> None:
    a = judge_all(Certification(Level.BETA, BETA))
    assert a.ok and a.earned is Level.BETA
    assert a.next_step.startswith("for production-certified: Live integration test profile")
    lower = judge_all(Certification(Level.EXPERIMENTAL, BETA))
    assert lower.ok and lower.next_step == "the evidence supports beta: raise the claim"


def test_a_stale_reference_fails_even_beside_evidence_that_holds() -> None:
    claim = Certification(Level.EXPERIMENTAL, {**EXPERIMENTAL, "offline_tests": (f"{T}sql", f"{T}gone")})
    a = judge_all(claim, finder(frozenset({f"{T}gone"})))
    assert a.earned is None and not a.ok
    assert a.unearned[0].reason == f"{T}gone: no such test function"
    assert a.next_step.startswith("for experimental: Offline construction tests")


def test_evidence_of_the_wrong_kind_or_form_does_not_count() -> None:
    docs_for_tests = judge_all(
        Certification(Level.EXPERIMENTAL, {**EXPERIMENTAL, "offline_tests": ("docs/x.md#SQL",)})
    )
    assert docs_for_tests.unearned[0].reason == "needs test evidence"
    typo = judge_all(
        Certification(Level.EXPERIMENTAL, {**EXPERIMENTAL, "import": ("tests/t.py:test_import",)})
    )
    assert "not a test id" in typo.unearned[0].reason
    assert parse_evidence("tests/a/b.py::Class::test_x") == Evidence(Kind.TEST, "tests/a/b.py::Class::test_x")
    assert parse_evidence("n/a:") is None and parse_evidence("docs/x.md") is None


def test_not_applicable_only_where_the_seed_allows_it() -> None:
    assert {r.key for r in REQUIREMENTS if r.may_not_apply} == {
        "credentials",
        "incremental",
        "local_integration",
    }
    a = judge_all(
        Certification(Level.EXPERIMENTAL, {**EXPERIMENTAL, "offline_tests": ("n/a: nothing to build",)})
    )
    assert a.unearned[0].reason.endswith("this requirement applies to every connector")
    both = judge_all(Certification(Level.BETA, {**BETA, "incremental": ("n/a: whole", f"{T}inc")}))
    assert [v.requirement.key for v in both.unearned] == ["incremental"]


def test_docs_must_name_the_extra_and_show_a_configuration() -> None:
    def find(ev: Evidence) -> Found:
        return Found(True, "section exists", "Install it somehow.\n```yaml\nsource: {connector: other}\n```")

    a = judge_all(Certification(Level.EXPERIMENTAL, EXPERIMENTAL), find)
    reasons = {v.requirement.key: v.reason for v in a.unearned}
    assert reasons["extras_docs"].endswith("does not name the 'x' extra")
    assert reasons["config_examples"].endswith("no code block with 'connector: thing'")


def test_the_live_requirement_needs_a_passed_run_of_integration_live_tests() -> None:
    profile = LiveProfile(env=("DPONE_X",), tests=(f"{T}live",))
    claim = Certification(Level.BETA, {**BETA, "live_profile": ("live",)}, live=profile)
    never = judge_all(claim).verdicts
    assert not next(v for v in never if v.requirement.key == "live_profile").met
    skipped = judge_all(
        claim, finder(live=Found(False, "latest run skipped 2026-01-01T00:00:00Z: DPONE_X unset"))
    )
    assert "skipped" in next(v for v in skipped.verdicts if v.requirement.key == "live_profile").reason
    passed = judge_all(claim, finder(live=Found(True, "latest run passed"))).verdicts
    assert next(v for v in passed if v.requirement.key == "live_profile").met
    local = Certification(
        Level.BETA, claim.evidence, live=LiveProfile(env=(), tests=(f"{T}live",), marker="integration")
    )
    verdict = next(
        v
        for v in judge_all(local, finder(live=Found(True, "passed"))).verdicts
        if v.requirement.key == "live_profile"
    )
    assert not verdict.met and "not integration_live" in verdict.reason
    no_profile = judge_all(Certification(Level.BETA, {**BETA, "local_integration": ("live",)}))
    assert no_profile.unearned[0].reason == "live: the connector declares no live profile"


def test_a_passed_live_run_also_counts_as_a_test() -> None:
    profile = LiveProfile(env=("DPONE_X",), tests=(f"{T}live",), marker="integration")
    claim = Certification(Level.BETA, {**BETA, "local_integration": ("live",)}, live=profile)
    assert judge_all(claim, finder(live=Found(True, "latest run passed"))).ok
    assert not judge_all(claim).ok


def test_levels_compare_as_their_names_and_typos_in_keys_are_found() -> None:
    assert Level.EXPERIMENTAL == "experimental" and f"{Level.PRODUCTION}" == "production-certified"
    assert [lv.rank for lv in Level] == [0, 1, 2]
    assert unknown_keys(Certification(Level.BETA, {"imports": ()})) == ["imports"]
    assert set(BY_KEY) == {r.key for r in REQUIREMENTS} and len(REQUIREMENTS) == 16


def test_every_declaration_names_known_requirements_and_live_tests_exist() -> None:
    for name, info in CONNECTORS.items():
        assert unknown_keys(info.certified) == [], name
        live = info.certified.live
        for test_id in live.tests if live else ():
            ref = resolve_test(ROOT, test_id)
            assert ref is not None and live is not None and live.marker in ref.markers, f"{name}: {test_id}"


def test_the_resolver_reads_functions_classes_and_markers(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\npytestmark = [pytest.mark.integration]\n\n"
        "@pytest.mark.integration_live\n@pytest.mark.skipif(True, reason='r')\ndef test_a():\n    pass\n\n"
        "async def test_b():\n    pass\n\n"
        "@pytest.mark.nightly\nclass TestC:\n    def test_d(self):\n        pass\n\n"
        "def helper():\n    def test_nested():\n        pass\n"
    )
    a = resolve_test(tmp_path, "tests/test_x.py::test_a")
    assert a is not None and a.markers == {"integration", "integration_live", "skipif"}
    assert a.never_runs == "marked skipif with a condition that is always true"
    assert resolve_test(tmp_path, "tests/test_x.py::test_b") is not None
    d = resolve_test(tmp_path, "tests/test_x.py::TestC::test_d")
    assert d is not None and d.markers == {"integration", "nightly"}
    assert resolve_test(tmp_path, "tests/test_x.py::test_nested") is None
    assert resolve_test(tmp_path, "tests/test_x.py::test_missing") is None
    assert resolve_test(tmp_path, "tests/nope.py::test_a") is None
    assert resolve_test(tmp_path, "tests/test_x.py") is None


def test_a_docs_section_ends_at_the_next_heading_of_its_level(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "p.md").write_text(
        "# Page\nintro\n## Install\npip it\n```bash\n# not a heading\n```\n### Detail\nmore\n## Next\nother\n"
    )
    section = docs_section(tmp_path, "docs/p.md#Install")
    assert (
        section is not None and "# not a heading" in section and "more" in section and "other" not in section
    )
    assert docs_section(tmp_path, "docs/p.md#not a heading") is None
    assert (
        docs_section(tmp_path, "docs/p.md#Missing") is None
        and docs_section(tmp_path, "docs/q.md#Page") is None
    )
    whole = docs_section(tmp_path, "docs/p.md#Page")
    assert whole is not None and whole.endswith("other")


NEVER = """
import pytest
from pytest import mark

@pytest.mark.skip(reason="later")
def test_skip(): pass

@pytest.mark.skipif(True, reason="r")
def test_skipif_true(): pass

@mark.skipif(reason="no condition: always")
def test_skipif_bare(): pass

@pytest.mark.xfail
def test_xfail(): pass

@pytest.mark.xfail(condition=1, reason="r")
def test_xfail_true(): pass

@pytest.mark.xfail(sys.platform == "win32", run=False)
def test_xfail_not_run(): pass

def test_skips_itself():
    x = 1
    pytest.skip("not yet")

class TestAll:
    pytestmark = [pytest.mark.unit, pytest.mark.skip]
    def test_in_skipped_class(self): pass
"""
RUNS = """
import os, sys
import pytest

@pytest.mark.skipif(not os.environ.get("DPONE_X"), reason="set DPONE_X")
def test_skipif_missing_service(): pass

@pytest.mark.xfail(sys.platform == "win32", reason="r")
def test_xfail_on_a_platform(): pass

@pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.skip)])
def test_one_param_skipped(x): pass

def test_skips_when_unset():
    if not os.environ.get("DPONE_X"):
        pytest.skip("set DPONE_X")

def helper(): pass

class Helpers:
    def test_not_collected(self): pass

class TestInit:
    def __init__(self): pass
    def test_not_collected(self): pass

class TestRuns:
    def test_method(self): pass
    def check(self): pass
"""


def test_a_test_that_can_never_run_or_is_not_collected_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_never.py").write_text(NEVER)
    (tmp_path / "tests" / "test_runs.py").write_text(RUNS)
    (tmp_path / "tests" / "test_whole.py").write_text(
        "import pytest\npytest.skip('no driver', allow_module_level=True)\ndef test_a(): pass\n"
    )
    for name in ("test_skip", "test_skipif_true", "test_skipif_bare", "test_xfail", "test_xfail_true",
                 "test_xfail_not_run", "test_skips_itself", "TestAll::test_in_skipped_class"):  # fmt: skip
        ref = resolve_test(tmp_path, f"tests/test_never.py::{name}")
        assert ref is not None and ref.never_runs, name
    whole = resolve_test(tmp_path, "tests/test_whole.py::test_a")
    assert whole is not None and whole.never_runs == "calls pytest.skip() unconditionally"
    for name in ("test_skipif_missing_service", "test_xfail_on_a_platform", "test_one_param_skipped",
                 "test_skips_when_unset", "TestRuns::test_method"):  # fmt: skip
        ref = resolve_test(tmp_path, f"tests/test_runs.py::{name}")
        assert ref is not None and ref.never_runs is None, name
    for name in ("helper", "Helpers::test_not_collected", "TestInit::test_not_collected", "TestRuns::check"):
        assert resolve_test(tmp_path, f"tests/test_runs.py::{name}") is None, name
    find = Finder(tmp_path, [], "thing", None)
    assert find(Evidence(Kind.TEST, "tests/test_never.py::test_skip")) == Found(
        False, "can never run: marked skip"
    )
    assert find(Evidence(Kind.TEST, "tests/test_runs.py::helper")) == Found(False, "no such test")
    assert find(Evidence(Kind.TEST, "tests/test_runs.py::test_skips_when_unset")).ok


def test_an_id_outside_tests_or_docs_is_not_evidence(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test_a():\n    pass\n")
    assert resolve_test(tmp_path, "tests/test_x.py::test_a") is not None
    for bad in ("tests/../tests/test_x.py::test_a", "tests/./test_x.py::test_a", "tests//test_x.py::test_a"):
        assert parse_evidence(bad) is None and resolve_test(tmp_path, bad) is None, bad
    assert parse_evidence("docs/../README.md#Install") is None
    assert parse_evidence("docs/apis/cbr.md#Example") == Evidence(Kind.DOCS, "docs/apis/cbr.md#Example")


def test_a_heading_without_text_is_not_a_documented_section(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "p.md").write_text(
        "# Page\n## Empty\n\n## Only headings\n### Sub\n\n## Nested\n### Detail\nsays it\n"
        "## Code\n```bash\n# a comment\n```\n## Last\n"
    )
    find = Finder(tmp_path, [], "thing", None)
    empty = Found(False, "the section is empty (a heading without text)")
    for heading in ("Empty", "Only headings", "Last"):
        assert find(Evidence(Kind.DOCS, f"docs/p.md#{heading}")) == empty, heading
    for heading in ("Nested", "Code", "Page"):
        assert find(Evidence(Kind.DOCS, f"docs/p.md#{heading}")).ok, heading


NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
PROFILE = LiveProfile(env=("DPONE_X",), tests=(f"{T}live_a", f"{T}live_b"))
RECORD = {
    "connector": "thing",
    "date": "2026-02-28T23:00:00Z",
    "result": "passed",
    "marker": "integration_live",
    "tests": {"passed": 2, "failed": 0, "skipped": 0},
    "outcomes": {f"{T}live_a": "passed", f"{T}live_b": "passed"},
}


def test_a_live_record_certify_could_not_have_written_is_named() -> None:
    assert record_problems(RECORD, NOW) == []
    assert judge_live_run(RECORD, PROFILE).ok
    bare = record_problems({"connector": "cbr", "result": "passed"}, NOW)
    assert [p.split(" ")[0] for p in bare] == ["date", "no", "tests", "outcomes"]
    for change, problem in (
        ({"date": "2026-02-28 23:00:00"}, "is not a UTC time"),
        ({"date": "2026-02-28T23:00:00+03:00"}, "is not a UTC time"),
        ({"date": "2027-01-01T00:00:00Z"}, "is in the future"),
        ({"result": "ok"}, "result 'ok' is not one of passed, partial, skipped, failed"),
        ({"tests": {"passed": 0, "failed": 0, "skipped": 0}}, "result 'passed' contradicts its tests"),
        ({"tests": {"passed": 1, "failed": 0, "skipped": 1}}, "contradicts its tests (passed 1, failed 0, skipped 1"),
        ({"tests": {"passed": True, "failed": 0, "skipped": 0}}, "tests is not"),
        ({"outcomes": {f"{T}live_a": "passed", f"{T}live_b": "skipped"}}, f"not passed: {T}live_b"),
        ({"outcomes": {}}, "outcomes is not"),
    ):  # fmt: skip
        problems = record_problems({**RECORD, **change}, NOW)
        assert any(problem in p for p in problems), (change, problems)


def test_a_live_run_counts_only_for_the_declared_profile() -> None:
    other = judge_live_run({**RECORD, "outcomes": {f"{T}live_a": "passed", f"{T}old": "passed"}}, PROFILE)
    assert (
        not other.ok
        and f"ran other tests than the profile (not in it: {T}live_b; no longer declared: {T}old)"
        in other.detail
    )
    local = judge_live_run({**RECORD, "marker": "integration"}, PROFILE)
    assert not local.ok and "ran -m integration, the profile is -m integration_live" in local.detail
    partial = {**RECORD, "result": "partial", "tests": {"passed": 1, "failed": 0, "skipped": 1},
               "outcomes": {f"{T}live_a": "passed", f"{T}live_b": "skipped"},
               "reasons": [f"skipped {T}live_b: set DPONE_X"]}  # fmt: skip
    found = judge_live_run(partial, PROFILE)
    assert not found.ok and found.detail.startswith("latest run partial 2026-02-28T23:00:00Z")
    assert f"skipped {T}live_b: set DPONE_X" in found.detail
    assert judge_live_run(None, PROFILE) == Found(False, "no recorded live run (dpone certify --live)")


# The drivers and official providers of each extra: blocked, importing the package and its
# connector metadata still works, and each hook either imports (its driver is imported lazily)
# or fails with MissingExtraError naming the extra.
BLOCKED = {
    "postgres": ("psycopg", "psycopg2", "airflow.providers.postgres"),
    "mssql": ("mssql_python", "airflow.providers.microsoft.mssql"),
    "clickhouse": ("clickhouse_connect",),
    "kafka": ("confluent_kafka", "airflow.providers.apache.kafka"),
    "bigquery": ("google.cloud.bigquery", "airflow.providers.google"),
    "rest": ("httpx", "tenacity", "airflow.providers.http"),
}
PROBE = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None
import airflow_provider_dpone, airflow_provider_dpone.contracts.connectors, airflow_provider_dpone.dag_factory
from airflow_provider_dpone.contracts.errors import MissingExtraError
from airflow_provider_dpone.hooks.registry import hook_class
out = {{}}
for connector in {connectors!r}:
    try:
        hook_class(connector)
        out[connector] = "imported"
    except MissingExtraError as exc:
        out[connector] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.parametrize("extra", sorted(BLOCKED))
def test_a_connector_imports_without_its_driver(extra: str) -> None:
    connectors = sorted(n for n, info in CONNECTORS.items() if info.extra == extra)
    assert connectors, f"no connector uses the {extra} extra"
    code = PROBE.format(blocked=BLOCKED[extra], connectors=connectors)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for connector, outcome in out.items():
        assert outcome == "imported" or f"airflow-provider-dpone[{extra}]" in outcome, (connector, outcome)


def test_every_connector_extra_is_probed() -> None:
    assert {info.extra for info in CONNECTORS.values()} <= set(BLOCKED)
