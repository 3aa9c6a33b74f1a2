"""What doctor decides from BigQuery's answers: the permissions each load uses on its target,
the findings of a testIamPermissions answer (granted, lacking, no answer), datasets, locations,
dry runs and a failed first call. Pure: no client."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.sql import bigquery_doctor as bd

pytestmark = pytest.mark.unit
T = "p.raw.items"


def load(**sink: Any) -> Any:
    extra = sink.pop("_load", {})  # load-level keys (reconciliation, schema_evolution)
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": {"connector": "bigquery", "conn_id": "bq", "table": "raw.items", **sink},
    }
    return parse_manifest({"pipeline": "p", "loads": [{**body, **extra}]}).loads[0]


def test_every_strategy_reads_and_writes_its_target_by_dml_and_never_drops_it() -> None:
    for sink in (
        {"strategy": "full_refresh"},
        {"strategy": "incremental_append"},
        {"strategy": "incremental_merge", "unique_key": ["id"]},
        {"strategy": "snapshot_diff", "unique_key": ["id"], "_load": {"reconciliation": {"deletes": "hard"}}},
        {"strategy": "partition_replace", "partition_by": ["day"]},
        {"strategy": "replace", "replace": {"where": "day > '2026-01-01'"}},
    ):
        needs = bd.target_needs(load(**sink))
        assert needs.required == {bd.GET, bd.GET_DATA, bd.UPDATE_DATA}, sink
        assert needs.schema == {bd.UPDATE}, sink  # safe evolution (the default) may ALTER it
        assert bd.DELETE_TABLE not in needs.asked and bd.CREATE_TABLE not in needs.asked


def test_a_soft_delete_marker_is_altered_in_every_run_and_fail_mode_never_alters() -> None:
    soft = load(
        strategy="incremental_merge", unique_key=["id"], _load={"reconciliation": {"deletes": "soft"}}
    )
    assert bd.UPDATE in bd.target_needs(soft).required and not bd.target_needs(soft).schema
    strict = load(strategy="full_refresh", _load={"schema_evolution": {"mode": "fail"}})
    assert bd.target_needs(strict) == bd.TargetNeeds(frozenset({bd.GET, bd.GET_DATA, bd.UPDATE_DATA}))
    assert bd.target_needs(strict).asked == [bd.GET, bd.GET_DATA, bd.UPDATE_DATA]


NEEDS = bd.TargetNeeds(frozenset({bd.GET, bd.GET_DATA, bd.UPDATE_DATA}), frozenset({bd.UPDATE}))


def test_every_permission_granted_is_ok_with_its_source() -> None:
    found = bd.iam_findings("s", T, NEEDS, frozenset({bd.GET, bd.GET_DATA, bd.UPDATE_DATA, bd.UPDATE}))
    assert [f.status for f in found] == ["ok", "ok"]
    assert "testIamPermissions" in found[0].message and bd.UPDATE in found[1].message


def test_a_lacking_permission_fails_naming_it_and_a_grant() -> None:
    (found,) = bd.iam_findings("s", T, bd.TargetNeeds(bd.STATE), frozenset({bd.GET, bd.GET_DATA}))
    assert found.status == "fail" and bd.UPDATE_DATA in found.message and bd.GET_DATA not in found.message
    assert found.fix and "roles/bigquery.dataEditor" in found.fix and T in found.fix


def test_an_empty_answer_lacks_everything_and_a_missing_alter_is_a_warning() -> None:
    found = bd.iam_findings("s", T, NEEDS, frozenset())
    assert [f.status for f in found] == ["fail", "warn"]
    assert all(p in found[0].message for p in (bd.GET, bd.GET_DATA, bd.UPDATE_DATA))
    assert "ALTER TABLE" in found[1].message
    found = bd.iam_findings("s", T, NEEDS, frozenset({bd.GET, bd.GET_DATA, bd.UPDATE_DATA}))
    assert [f.status for f in found] == ["ok", "warn"]


def test_no_answer_is_not_known_never_ok() -> None:
    (found,) = bd.iam_findings("s", T, NEEDS, None, "tables.testIamPermissions answered 405 unknown error")
    assert found.status == "info" and "not known" in found.message and "405" in found.message


def test_datasets_existing_missing_or_refused() -> None:
    ok = bd.dataset_findings(
        "s", bd.Dataset("p.raw", True, "EU"), project="p", what="the target", creates=False
    )
    assert [(f.status, f.check) for f in ok] == [("ok", "object")] and "in EU" in ok[0].message
    made = bd.dataset_findings(
        "s", bd.Dataset("p.stg", True, "EU"), project="p", what="staging", creates=True
    )
    assert made[1].status == "info" and bd.CREATE_TABLE in made[1].message and "not known" in made[1].message
    (missing,) = bd.dataset_findings(
        "s", bd.Dataset("p.stg", False), project="p", what="staging", creates=True
    )
    assert (
        missing.status == "info" and bd.CREATE_DATASET in missing.message and "project p" in missing.message
    )
    (gone,) = bd.dataset_findings("s", bd.Dataset("p.raw", False), project="p", what="x", creates=False)
    assert gone.status == "fail"
    (denied,) = bd.dataset_findings(
        "s", bd.Dataset("p.raw", True, denied="403 Access Denied"), project="p", what="x", creates=True
    )
    assert (
        denied.status == "fail"
        and "403 Access Denied" in denied.message
        and bd.GET_DATASET in (denied.fix or "")
    )


def test_locations_must_agree_with_each_other_and_the_connection() -> None:
    eu, us = bd.Dataset("p.a", True, "EU"), bd.Dataset("p.b", True, "US")
    assert bd.location_findings("s", None, [eu, bd.Dataset("p.c", True, "eu")]) == []
    assert bd.location_findings("s", "eu", [eu, bd.Dataset("p.new", False)]) == []
    (apart,) = bd.location_findings("s", None, [eu, us])
    assert apart.status == "fail" and "p.a in EU" in apart.message and "p.b in US" in apart.message
    (elsewhere,) = bd.location_findings("s", "US", [eu])
    assert elsewhere.status == "fail" and "runs jobs in US" in elsewhere.message


def test_a_dry_run_shows_jobs_create_only_where_an_identity_was_checked() -> None:
    (ok,) = bd.dry_run_findings("s", bd.DryRun("select *", bytes=1234), project="p", reads=T)
    assert ok.status == "ok" and bd.CREATE_JOB in ok.message and "1,234 bytes" in ok.message
    plans, unknown = bd.dry_run_findings(
        "s", bd.DryRun("select 1", bytes=0, checked=False), project="p", reads=None
    )
    assert (plans.status, plans.check) == ("ok", "object")
    assert unknown.status == "info" and bd.CREATE_JOB in unknown.message and "not known" in unknown.message
    (refused,) = bd.dry_run_findings(
        "s", bd.DryRun("q", "403 Access Denied", denied=True), project="p", reads=T
    )
    assert (
        refused.status == "fail"
        and refused.check == "privilege"
        and "bigquery.jobUser" in (refused.fix or "")
    )
    (broken,) = bd.dry_run_findings("s", bd.DryRun("q", "400 Unrecognized name"), project="p", reads=T)
    assert broken.status == "fail" and broken.check == "object"


def test_a_failed_first_call_tells_unreachable_refused_and_absent_credentials_apart() -> None:
    (down,) = bd.connect_findings("bq", bd.UNREACHABLE, "connection refused", 0.5)
    assert (down.status, down.check, down.seconds) == ("fail", "reachable", 0.5)
    reached, refused = bd.connect_findings("bq", bd.REFUSED, "401 invalid credentials", 0.2)
    assert (reached.status, reached.check) == ("ok", "reachable") and refused.check == "authenticated"
    assert refused.status == "fail" and "refused" in refused.message
    (absent,) = bd.connect_findings("bq", bd.NO_CREDENTIALS, "no default credentials", 0.1)
    assert (absent.status, absent.check) == ("fail", "authenticated")


def test_gcs_staging_names_the_bucket_and_is_not_probed() -> None:
    found = bd.gcs_finding("s", "gs://bucket-a/runs/x")
    assert (
        found.status == "info"
        and "bucket bucket-a" in found.message
        and "storage.objects.get" in found.message
    )
