"""Loads through staged files (``sink.staging.files``): PostgreSQL to PostgreSQL via a local
directory, S3 (moto), GCS (its emulator) and Azure Blob (Azurite), and to ClickHouse via S3, the
files verified before the sink loads them, dropped or kept as the manifest says; a changed file
fails the load and leaves the target as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpone.contracts.errors import ManifestError, StagingEvidenceError
from airflow_provider_dpone.contracts.manifest import parse_manifest
from airflow_provider_dpone.runtime import file_staging
from airflow_provider_dpone.staging.files import MANIFEST
from tests.helpers import run_first_load as run
from tests.staging.store_contract import Directory

pytestmark = pytest.mark.integration

ITEMS = """
create table items (id bigint primary key, name text not null, amount numeric(12,2), tags jsonb,
                    at timestamptz not null, ratio numeric);
insert into items select g, 'item ' || g, g * 1.25, jsonb_build_object('g', g),
                         timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
                         case when g % 3 = 0 then null else round(g / 7.0, 6) end
from generate_series(1, 2500) g;
"""


def manifest(files: dict[str, Any], sink: dict[str, Any] | None = None) -> Any:
    body = {
        "name": "items",
        "source": {"connector": "postgres", "conn_id": "src", "table": "items"},
        "sink": {"connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "full_refresh",
                 "staging": {"files": files}, **(sink or {})},
    }  # fmt: skip
    return parse_manifest(
        {"pipeline": "staged", "state": {"backend": "table", "conn_id": "dst"}, "loads": [body]}
    )


def test_postgres_to_postgres_through_local_files(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ITEMS)
    files = {"uri": tmp_path.as_uri(), "rows_per_file": 1000, "retention": "keep", "format": "parquet"}
    report = run(manifest(files), "r1")
    assert report.status == "success" and report.rows == 2500
    assert report.fast_path == "csv"  # PostgreSQL's CSV COPY parsed by pyarrow: no row decoded in Python
    assert report.sink["files"]["files"] == 3 and report.sink["files"]["rows"] == 2500
    every = (
        "select sum(id), sum(amount), count(distinct tags), max(at), string_agg(ratio::text, ',' order by id)"
    )
    assert clean_pg.query("dst", f"{every} from raw.items") == clean_pg.query("src", f"{every} from items")
    (kept,) = (tmp_path / "staged" / "items" / "r1").iterdir()  # the try's own directory
    assert sorted(p.name for p in kept.iterdir()) == [
        MANIFEST,
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    run(manifest({"uri": tmp_path.as_uri()}), "r2")  # retention delete: the run's files go
    assert [list(d.iterdir()) for d in (tmp_path / "staged" / "items" / "r2").iterdir()] == [[]]


def test_postgres_to_postgres_stages_its_own_binary_copy(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ITEMS)
    report = run(manifest({"uri": tmp_path.as_uri(), "retention": "keep"}), "r1")  # format: auto
    assert report.status == "success" and report.rows == 2500
    assert report.fast_path == "postgres_binary"  # the COPY's bytes as they are: no row decoded at all
    assert report.sink["files"]["files"] == 1 and report.sink["files"]["rows"] == 2500
    every = (
        "select sum(id), sum(amount), count(distinct tags), max(at), string_agg(ratio::text, ',' order by id)"
    )
    assert clean_pg.query("dst", f"{every} from raw.items") == clean_pg.query("src", f"{every} from items")
    (kept,) = (tmp_path / "staged" / "items" / "r1").iterdir()
    assert sorted(p.name for p in kept.iterdir()) == [MANIFEST, "part-00000.pgcopy"]
    # a changed file: test_a_changed_file_fails_the_load_and_leaves_the_target (this format too)


def test_a_changed_file_fails_the_load_and_leaves_the_target(
    clean_pg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_pg.execute("src", ITEMS)
    run(manifest({"uri": tmp_path.as_uri()}), "r1")
    clean_pg.execute("src", "update items set name = 'changed'")
    stage = file_staging.stage_files

    def tampered(spec: Any, ctx: Any, extract: Any) -> Any:
        result = stage(spec, ctx, extract)
        first = (
            Path(result.artifact.manifest.uri.removeprefix("file://"))
            / result.artifact.manifest.files[0].name
        )
        first.write_bytes(first.read_bytes()[:-1] + b"\x00")  # changed after its manifest was written
        return result

    monkeypatch.setattr("airflow_provider_dpone.runtime.engine.stage_files", tampered)
    with pytest.raises(StagingEvidenceError, match="differs from the staging manifest"):
        run(manifest({"uri": tmp_path.as_uri()}), "r2")
    assert clean_pg.query("dst", "select count(*) filter (where name = 'changed') from raw.items") == [(0,)]
    (failed,) = (tmp_path / "staged" / "items" / "r2").iterdir()
    assert (failed / MANIFEST).exists()  # a failed load keeps its evidence


@pytest.mark.parametrize("fmt", ["parquet", "auto"])  # Parquet files; the binary COPY as one file
@pytest.mark.parametrize("where", ["s3_directory", "gcs_directory", "azure_directory"])
def test_postgres_to_postgres_through_object_storage(
    clean_pg: Any, where: str, fmt: str, request: pytest.FixtureRequest
) -> None:
    directory: Directory = request.getfixturevalue(where)
    clean_pg.execute("src", ITEMS)
    files = {"uri": directory.uri, "conn_id": directory.conn_id, "rows_per_file": 1000, "format": fmt}
    report = run(manifest(files), "r1")
    assert report.status == "success" and report.sink["files"]["files"] == (3 if fmt == "parquet" else 1)
    assert report.sink["files"]["uri"].startswith(f"{directory.uri}/staged/items/r1/")
    every = "select count(*), sum(id), sum(amount), count(distinct tags), max(at), string_agg(ratio::text, ',' order by id)"
    assert clean_pg.query("dst", f"{every} from raw.items") == clean_pg.query("src", f"{every} from items")
    assert directory.store().names() == []  # retention delete: the run's files are gone


def test_postgres_to_clickhouse_through_s3(clean_pg: Any, clean_ch: Any, s3_directory: Directory) -> None:
    clean_pg.execute("src", ITEMS)
    files = {"uri": s3_directory.uri, "conn_id": s3_directory.conn_id, "rows_per_file": 1000}
    m = manifest(files, {"connector": "clickhouse", "conn_id": "ch", "table": "raw.items"})
    report = run(m, "r1")
    assert report.status == "success" and report.sink["files"]["uri"].startswith(
        f"{s3_directory.uri}/staged/items/r1/"
    )
    assert clean_ch.query("select count(), sum(id) from raw.items") == [(2500, 3126250)]


def test_a_sink_that_cannot_load_files_is_refused_at_validate() -> None:
    with pytest.raises(
        ManifestError, match=r"sink\.staging\.files: connector 'kafka' does not load staged files"
    ):
        parse_manifest({"pipeline": "p", "loads": [{"name": "l", "source": {"connector": "postgres", "conn_id": "s", "table": "t"},
                        "sink": {"connector": "kafka", "conn_id": "k", "topic": "t", "strategy": "incremental_append",
                                 "staging": {"files": {"uri": "file:///tmp/x"}}}}]})  # fmt: skip
    with pytest.raises(ManifestError, match="a gs:// directory is gs://bucket/prefix"):
        manifest({"uri": "gs:///x"})


def test_a_kept_export_replays_into_the_sink(clean_pg: Any, tmp_path: Path) -> None:
    import yaml

    from airflow_provider_dpone.cli.main import main

    clean_pg.execute("src", ITEMS)
    staging = tmp_path / "staging"
    m = manifest({"uri": staging.as_uri(), "retention": "keep"})
    run(m, "r1")
    clean_pg.execute("dst", "update raw.items set name = 'damaged'")
    clean_pg.execute(
        "src", "delete from items"
    )  # the source moved on: the kept export is the batch to restore
    body = {"pipeline": "staged", "state": {"backend": "table", "conn_id": "dst"},
            "loads": [{**m.loads[0].model_dump(mode="json", by_alias=True, exclude_none=True), "sink": {
                "connector": "postgres", "conn_id": "dst", "table": "raw.items", "strategy": "full_refresh"}}]}  # fmt: skip
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(body))
    import shutil

    (original,) = (staging / "staged" / "items" / "r1").iterdir()
    copy = tmp_path / "copied"
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # a replay reads the files where --uri says, not where they were staged
    assert main(["replay", str(path), "--load", "items", "--uri", copy.as_uri()]) == 0
    assert clean_pg.query(
        "dst", "select count(*), count(*) filter (where name = 'damaged') from raw.items"
    ) == [(2500, 0)]
    assert (copy / MANIFEST).exists()  # a replay never deletes what it replayed
    next(copy.glob("part-00000.*")).write_bytes(b"gone")
    assert (
        main(["replay", str(path), "--load", "items", "--uri", copy.as_uri()]) == 1
    )  # DPONE312: nothing loaded
    assert clean_pg.query("dst", "select count(*) from raw.items") == [(2500,)]
    path.write_text(yaml.safe_dump({**body, "pipeline": "other"}))
    assert (
        main(["replay", str(path), "--load", "items", "--uri", copy.as_uri()]) != 0
    )  # staged by another pipeline


def test_the_csv_export_does_not_depend_on_the_session_settings(clean_pg: Any, tmp_path: Path) -> None:
    clean_pg.execute("src", ITEMS)
    clean_pg.execute("src", "alter table items add column f float8")
    clean_pg.execute("src", "update items set f = id / 3.0")
    db = f'"{clean_pg.src_db}"'
    clean_pg.execute("src", f"alter database {db} set extra_float_digits to 0")  # 15 digits, not all
    clean_pg.execute("src", f"alter database {db} set intervalstyle to 'sql_standard'")
    try:
        report = run(manifest({"uri": tmp_path.as_uri(), "format": "parquet"}), "r1")
    finally:
        clean_pg.execute("src", f"alter database {db} reset all")
    assert report.fast_path == "csv"
    every = "select sum(f), max(f), max(at), sum(amount), string_agg(ratio::text, ',' order by id)"
    assert clean_pg.query("dst", f"{every} from raw.items") == clean_pg.query("src", f"{every} from items")
