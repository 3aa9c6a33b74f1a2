"""``runtime.perf_advice`` on recorded run reports: every figure an advice quotes is the report's
or the inspected table's own, and each rule fires on the runs that show its case.

The reports in tests/golden/perf_reports/ are real ``dpone run``s against the local PostgreSQL,
recorded by ``tests/golden/perf_reports/record.py`` (its docstring says how); nothing is edited.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_dpone.contracts.connectors import CONNECTORS
from airflow_provider_dpone.contracts.errors import ManifestError
from airflow_provider_dpone.contracts.manifest import LoadSpec, parse_manifest
from airflow_provider_dpone.runtime.perf_advice import advise
from airflow_provider_dpone.runtime.perf_model import (
    FINE,
    NOT_KNOWN,
    SUGGEST,
    Advice,
    Inspection,
    Limits,
    TableFacts,
)
from airflow_provider_dpone.runtime.report import RunReport

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "perf_reports"
SCENARIOS = sorted(p.stem for p in GOLDEN.glob("*.json"))


def recorded(name: str) -> tuple[dict[str, Any], LoadSpec, list[RunReport], list[Inspection]]:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    load = parse_manifest(data["manifest"]).loads[0]
    reports = [RunReport.from_dict(r) for r in data["reports"]]
    inspections = [
        Inspection(i["role"], i["table"], facts=_facts(i["facts"]), error=i["error"])
        for i in data["inspected"]
    ]
    return data, load, reports, inspections


def _facts(raw: dict[str, Any] | None) -> TableFacts | None:
    if raw is None:
        return None
    fixed = dict(raw, primary_key=tuple(raw["primary_key"]))
    fixed["unique_indexes"] = tuple(tuple(u) for u in raw["unique_indexes"])
    return TableFacts(**fixed)


def run(
    name: str, limits: Limits | None = None, inspect: bool = True
) -> tuple[LoadSpec, list[RunReport], list[Advice]]:
    _, load, reports, inspections = recorded(name)
    info = CONNECTORS[load.source.connector], CONNECTORS[load.sink.connector]
    return load, reports, advise(reports, load, *info, inspections if inspect else [], limits)


def topic(advice: list[Advice], name: str) -> list[Advice]:
    return [a for a in advice if a.topic == name]


def value(advice: Advice, field: str) -> Any:
    found = [e.value for e in advice.evidence if e.field == field]
    assert len(found) == 1, (field, advice.evidence)
    return found[0]


def _report_field(report: dict[str, Any], field: str) -> Any:
    parts = field.split(".")
    if parts[0] == "phases":
        phase = next(p for p in report["phases"] if p["name"] == parts[1])
        return phase[parts[2]]
    node: Any = report
    for part in parts:
        node = node[part]
    return node


def test_scenarios_are_recorded() -> None:
    assert {"merge_user_target", "lookback_heavy", "snapshot_diff", "full_large", "text_path"} <= set(
        SCENARIOS
    )


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_quoted_figure_is_the_reports_or_the_tables_own(name: str) -> None:
    data, load, reports, inspections = recorded(name)
    by_run = {f"report {r['run_id']}": r for r in data["reports"]}
    tables = {i.source_name(): i.facts for i in inspections}
    checked = 0
    for advice in advise(reports, load, CONNECTORS["postgres"], CONNECTORS["postgres"], inspections):
        for e in advice.evidence:
            if e.source in by_run and "(" not in e.field:
                assert _report_field(by_run[e.source], e.field) == e.value, (advice.topic, e)
                checked += 1
            elif e.source in tables and not e.field.startswith("type of"):
                assert (
                    getattr(tables[e.source], e.field) == e.value
                    or [list(u) for u in getattr(tables[e.source], e.field)] == e.value
                )
                checked += 1
            elif e.field.startswith("median "):
                phase = e.field.split(".")[1]
                good = [r for r in reports if r.status == "success"]
                assert e.value == round(
                    statistics.median(p.seconds for r in good for p in r.phases if p.name == phase), 4
                )
                checked += 1
            elif e.source == "manifest":
                checked += 1
    assert checked > 5


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_suggested_manifest_fragment_validates(name: str) -> None:
    """Merged into the recorded manifest, a suggested YAML fragment is a manifest that validates
    once its placeholders (``<bucket>``...) are filled in, and not before: an unfilled one cannot
    be deployed by mistake."""
    data, *_ = recorded(name)
    _, _, advice = run(name, Limits(parallel_min_seconds=0.1, seconds_per_range=0.05))
    fragments = [a.change.yaml for a in advice if a.change and a.change.yaml]
    for fragment in fragments:
        filled = re.sub(r"<([^>]+)>", lambda m: re.sub(r"\W+", "_", m.group(1)), fragment)
        manifest = copy.deepcopy(data["manifest"])
        _merge(manifest["loads"][0], yaml.safe_load(filled)["loads"][0])
        parse_manifest(manifest)
        if "s3://<" in fragment:
            unfilled = copy.deepcopy(data["manifest"])
            _merge(unfilled["loads"][0], yaml.safe_load(fragment)["loads"][0])
            with pytest.raises(ManifestError):
                parse_manifest(unfilled)


def _merge(into: dict[str, Any], tree: dict[str, Any]) -> None:
    for key, val in tree.items():
        if isinstance(val, dict) and isinstance(into.get(key), dict):
            _merge(into[key], val)
        else:
            into[key] = val


def test_a_user_made_merge_target_gets_its_unique_index_and_fillfactor() -> None:
    _, reports, advice = run("merge_user_target")
    index, fill = topic(advice, "merge_target")
    fin = reports[-1].sink["finalize"]
    assert (fin["method"], fin["rows_inserted"]) == ("update_insert", 0)  # what the run recorded
    assert index.verdict == SUGGEST and "the insert pass ran and inserted nothing" in index.finding
    assert value(index, "sink.finalize.method") == "update_insert"
    assert value(index, "unique_indexes") == []
    assert index.change is not None
    assert index.change.sql == (
        "create unique index concurrently merge_user_target__id__key on raw.merge_user_target (id)",
    )
    assert fill.verdict == SUGGEST and value(fill, "fillfactor") is None
    assert fill.change is not None and fill.change.sql == (
        "alter table raw.merge_user_target set (fillfactor = 90)",
    )
    assert value(fill, "hot_updates") == 0 and value(fill, "updates") == fin["rows_updated"]


def test_a_target_dpone_created_needs_nothing() -> None:
    _, reports, advice = run("merge_lookback")
    assert [a.verdict for a in topic(advice, "merge_target")] == [FINE, FINE]
    (path,) = topic(advice, "fast_path")
    assert path.verdict == FINE and value(path, "fast_path") == reports[-1].fast_path == "postgres_binary"
    (window,) = topic(advice, "window")
    assert window.verdict == FINE and "re-reads under 1% of the time span" in window.finding


def test_a_lookback_longer_than_the_watermarks_advance_is_flagged() -> None:
    load, reports, advice = run("lookback_heavy")
    (window,) = topic(advice, "window")
    recorded_window = reports[-1].source["window"]
    assert window.verdict == SUGGEST
    assert (
        window.change is not None
        and window.change.path == "loads[lookback_heavy].source.incremental.lookback"
    )
    assert load.source.incremental is not None
    assert value(window, "source.window.lookback_seconds") == recorded_window["lookback_seconds"]
    assert recorded_window["lookback_seconds"] == load.source.incremental.lookback == 3600

    advance = (
        dt.datetime.fromisoformat(recorded_window["upper"])
        - dt.datetime.fromisoformat(recorded_window["lower"])
    ).total_seconds()
    lookback = recorded_window["lookback_seconds"]
    assert f"re-reads {100 * lookback / (advance + lookback):.0f}% of the time span" in window.finding
    assert "not known from the reports" in (window.change.note or "")


def test_runs_that_stage_nothing_and_staging_kept_always() -> None:
    _, reports, advice = run("empty_runs")
    empty = sum(1 for r in reports if r.rows == 0)
    schedule = next(a for a in topic(advice, "window") if a.change and a.change.path == "schedule")
    assert schedule.verdict == SUGGEST and schedule.finding.startswith(
        f"{empty} of {len(reports)} successful runs"
    )
    (staging,) = topic(advice, "staging")
    assert staging.verdict == SUGGEST and staging.change is not None
    assert yaml.safe_load(staging.change.yaml or "") == {
        "loads": [{"name": "empty_runs", "sink": {"staging": {"keep": "on_failure"}}}]
    }


def test_a_user_type_array_explains_the_text_path() -> None:
    _, reports, advice = run("text_path")
    (path,) = topic(advice, "fast_path")
    assert reports[-1].fast_path == "postgres_text"
    assert path.verdict == SUGGEST and "array of a user-defined type" in path.finding
    assert value(path, "lineage.inputs[0].schema (array columns)") == ["moods"]


def test_a_dominant_finalize_and_a_full_read_of_mostly_unchanged_rows() -> None:
    _, reports, advice = run("snapshot_diff")
    (phases,) = topic(advice, "phases")
    finalize = reports[-1].find_phase("finalize")
    assert finalize is not None and finalize.seconds >= 0.5 * reports[-1].seconds
    assert phases.verdict == SUGGEST and phases.finding.startswith("finalize dominates")
    assert value(phases, "phases.finalize.seconds") == finalize.seconds
    assert "mass-delete guard" in phases.finding
    (window,) = topic(advice, "window")
    unchanged = reports[-1].sink["finalize"]["rows_unchanged"]
    assert window.verdict == SUGGEST and value(window, "sink.finalize.rows_unchanged") == unchanged
    assert window.change is not None and "updated_at" in (window.change.note or "")
    assert "mode: cdc" in (window.change.note or "")  # PostgreSQL's facts: cdc into a cdc_apply sink


def test_parallel_ranges_for_a_long_read_and_none_for_a_short_one() -> None:
    _, reports, advice = run("full_large")
    (short,) = topic(advice, "parallel")
    assert short.verdict == FINE  # well under the default 120 s
    limits = Limits(parallel_min_seconds=0.1, seconds_per_range=0.1, max_ranges=64)
    _, _, advice = run("full_large", limits)
    (split,) = topic(advice, "parallel")
    read = sum(p.seconds for p in reports[-1].phases if p.name in ("extract", "files", "stage"))
    expected = max(2, min(64, math.ceil(read / 0.1)))
    assert split.verdict == SUGGEST and split.change is not None
    tree = yaml.safe_load(split.change.yaml or "")["loads"][0]
    assert tree["parallel"] == {"partitions": expected, "by": "id"}  # the source's bigint primary key
    assert tree["sink"]["staging"]["files"]["uri"].startswith("s3://")
    _, _, blind = run("full_large", limits, inspect=False)
    (unknown,) = topic(blind, "parallel")
    assert "primary key was not inspected" in unknown.finding
    assert yaml.safe_load(unknown.change.yaml or "")["loads"][0]["parallel"]["by"] == "<primary-key column>"  # type: ignore[union-attr]


def test_failed_runs_are_listed_and_not_used_for_figures() -> None:
    _, reports, advice = run("failed")
    assert [r.status for r in reports] == ["success", "failed"]
    (runs,) = topic(advice, "runs")
    assert (
        runs.verdict == FINE
        and "1 successful; figures below are from the successful runs only" in runs.finding
    )
    assert value(runs, "error") == reports[-1].error
    (phases,) = topic(advice, "phases")
    assert {e.source for e in phases.evidence} == {f"report {reports[0].run_id}"}
    _, load, _, _ = recorded("failed")
    only_failed = advise(reports[1:], load, CONNECTORS["postgres"], CONNECTORS["postgres"])
    assert [(a.topic, a.verdict) for a in only_failed] == [("runs", NOT_KNOWN)]


def test_an_unreachable_target_is_not_known_but_the_reports_still_speak() -> None:
    _, load, reports, _ = recorded("merge_user_target")
    down = [
        Inspection("sink", "raw.merge_user_target", error="not reachable through 'dst': OperationalError")
    ]
    advice = advise(reports, load, CONNECTORS["postgres"], CONNECTORS["postgres"], down)
    (target,) = topic(advice, "merge_target")
    assert target.verdict == SUGGEST  # the report's idle insert pass says enough
    assert "not reachable through 'dst'" in target.finding and "insert pass ran" in target.finding
    _, load, reports, _ = recorded("merge_lookback")
    (target,) = topic(
        advise(reports, load, CONNECTORS["postgres"], CONNECTORS["postgres"], down), "merge_target"
    )
    assert target.verdict == NOT_KNOWN


def test_reports_of_another_configuration_are_said_to_be_so() -> None:
    data, _, reports, inspections = recorded("merge_lookback")
    manifest = copy.deepcopy(data["manifest"])
    manifest["loads"][0]["sink"]["strategy"] = "incremental_append"
    changed = parse_manifest(manifest).loads[0]
    (runs, *_) = advise(reports, changed, CONNECTORS["postgres"], CONNECTORS["postgres"], inspections)
    assert runs.verdict == NOT_KNOWN and "another configuration" in runs.finding
    assert value(runs, "strategy") == "incremental_merge"
