"""Certification rules (contracts/certification.py), the evidence resolver (cli/evidence.py), and
the importability every connector's experimental level cites as evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_dpone.cli.evidence import docs_section, resolve_test
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
    parse_evidence,
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
