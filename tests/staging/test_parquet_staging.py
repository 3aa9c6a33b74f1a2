"""An export staged as Parquet files with its manifest (contracts/staging_manifest.py,
staging/files.py) on the local store: written with its evidence, read back only as the manifest
vouches, a missing or altered file refused before any of its rows are used, cleaned up or kept
as the manifest says."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_dpone.contracts.errors import BadInputError, StagingEvidenceError
from airflow_provider_dpone.contracts.staging_manifest import StagedFile, manifest_from_json
from airflow_provider_dpone.contracts.table import CanonicalType, Column, TableSchema
from airflow_provider_dpone.staging.files import (
    MANIFEST,
    clean_up,
    load_manifest,
    read_parquet,
    stage_parquet,
)
from airflow_provider_dpone.staging.store import LocalStore, store_for

pytestmark = pytest.mark.unit

SCHEMA = TableSchema(
    (
        Column("id", CanonicalType.INT64, nullable=False),
        Column("name", CanonicalType.STRING),
        Column("amount", CanonicalType.DECIMAL, precision=12, scale=2),
        Column("at", CanonicalType.TIMESTAMPTZ),
        Column("tags", CanonicalType.ARRAY, element=CanonicalType.STRING),
    ),
    ("id",),
)
UTC = dt.timezone.utc


def rows(first: int, last: int) -> list[tuple]:
    return [(i, f"n{i}", Decimal(i) / 4, dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=i), ["a", str(i)])
            for i in range(first, last + 1)]  # fmt: skip


def test_batches_become_files_with_their_evidence_and_read_back_equal(tmp_path: Path) -> None:
    store = store_for(tmp_path.as_uri())
    window = {"mode": "cursor", "lower": None, "upper": "2026-01-02"}
    manifest = stage_parquet(store, SCHEMA, [rows(1, 150), rows(151, 250)], rows_per_file=100, window=window)
    assert [f.rows for f in manifest.files] == [100, 100, 50] and manifest.rows == 250
    assert store.names() == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    again = load_manifest(store)
    assert again == manifest and again.window == window and again.schema == SCHEMA
    back = [r for table in read_parquet(store, again) for r in table.to_pylist()]
    assert [tuple(r.values()) for r in back] == rows(1, 250)


def test_a_missing_or_altered_file_is_refused_before_its_rows_are_used(tmp_path: Path) -> None:
    store = store_for(tmp_path.as_uri())
    manifest = stage_parquet(store, SCHEMA, [rows(1, 30)], rows_per_file=10)
    second = tmp_path / manifest.files[1].name
    data = bytearray(second.read_bytes())
    data[-20] ^= 0xFF  # one flipped byte, same size
    second.write_bytes(bytes(data))
    tables = read_parquet(store, manifest)
    assert next(tables).num_rows == 10  # the first file is intact
    with pytest.raises(StagingEvidenceError, match=r"part-00001.parquet differs from the staging manifest"):
        next(tables)
    second.unlink()
    with pytest.raises(
        StagingEvidenceError, match=r"part-00001.parquet is listed in the staging manifest but missing"
    ):
        list(read_parquet(store, manifest))
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(
        StagingEvidenceError, match=r"has no manifest\.json: the export there never completed"
    ):
        load_manifest(store)


def test_files_are_deleted_after_a_success_kept_after_a_failure_or_when_kept(tmp_path: Path) -> None:
    store = store_for(tmp_path.as_uri())
    manifest = stage_parquet(store, SCHEMA, [rows(1, 5)])
    assert clean_up(store, manifest, succeeded=False) == [] and len(store.names()) == 2
    assert (
        clean_up(store, manifest, succeeded=True) == [MANIFEST, "part-00000.parquet"] and store.names() == []
    )
    kept = stage_parquet(store, SCHEMA, [rows(1, 5)], retention="keep")
    assert clean_up(store, kept, succeeded=True) == [] and len(store.names()) == 2
    empty = stage_parquet(store_for((tmp_path / "empty").as_uri()), SCHEMA, [])
    assert empty.files == () and empty.rows == 0


def test_a_manifest_read_back_names_its_first_wrong_field(tmp_path: Path) -> None:
    good = json.loads(stage_parquet(store_for(tmp_path.as_uri()), SCHEMA, [rows(1, 3)]).to_json())
    cases = {
        "version": ({"version": 2}, "this dpone reads version 1"),
        "format": ({"format": "xlsx"}, "'xlsx' is not one of parquet, csv, postgres_binary"),
        "uri": ({"uri": "ftp://x/y"}, "scheme 'ftp' is not one of"),
        "files[0].sha256": ({"files": [{**good["files"][0], "sha256": "ABC"}]}, "is not a SHA-256"),
        "files[0].name": (
            {"files": [{**good["files"][0], "name": "../etc/passwd"}]},
            "is not a relative file name",
        ),
        "files[0].rows": ({"files": [{**good["files"][0], "rows": -1}]}, "is not a non-negative integer"),
        "files": ({"files": [good["files"][0], good["files"][0]]}, "is listed twice"),
        "schema.primary_key": (
            {"schema": {**good["schema"], "primary_key": ["nope"]}},
            "is not a list of the columns",
        ),
        "schema.columns[0].type": (
            {"schema": {"columns": [{"name": "id", "type": "int128"}]}},
            "not a canonical type",
        ),
    }
    for field, (change, message) in cases.items():
        with pytest.raises(BadInputError) as refused:
            manifest_from_json(json.dumps({**good, **change}))
        assert f"staging manifest: {field}: " in str(refused.value) and message in str(refused.value)


def test_the_local_store_stays_in_its_directory_and_writes_whole_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path.as_uri())
    with pytest.raises(BadInputError, match="leaves"):
        store.write("../outside", [b"x"])

    def broken() -> list[bytes]:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.write("half.parquet", (chunk for chunk in broken()))
    assert store.names() == [] and store.read("half.parquet") is None
    assert StagedFile("a", 1, 1, "0" * 64).name == "a"


def test_postgres_csv_is_parsed_as_postgres_writes_it(tmp_path: Path) -> None:
    from airflow_provider_dpone.staging.files import stage_csv

    schema = TableSchema((Column("id", CanonicalType.INT64, nullable=False), Column("s", CanonicalType.STRING),
                          Column("f", CanonicalType.FLOAT64), Column("b", CanonicalType.BOOLEAN),
                          Column("j", CanonicalType.JSON)), ("id",))  # fmt: skip
    # what COPY ... (FORMAT csv) writes: NULL unquoted and empty, an empty string quoted
    csv = b'1,NULL,NaN,t,"{""k"": 1}"\n2,"",Infinity,f,\n3,,1.5,,"[1, 2]"\n4,"a,b\nc",-0.25,t,null\n'
    store = store_for(tmp_path.as_uri())
    manifest = stage_csv(store, schema, [csv[:7], csv[7:30], csv[30:]], rows_per_file=3)
    assert [f.rows for f in manifest.files] == [3, 1]
    back = [r for t in read_parquet(store, manifest) for r in t.to_pylist()]
    assert [r["s"] for r in back] == ["NULL", "", None, "a,b\nc"]
    assert back[0]["f"] != back[0]["f"] and back[1]["f"] == float("inf")  # NaN stays NaN, not NULL
    assert [r["b"] for r in back] == [True, False, None, True]
    assert [r["j"] for r in back] == ['{"k": 1}', None, "[1, 2]", "null"]


def test_a_row_whose_only_column_is_null_is_a_row(tmp_path: Path) -> None:
    from airflow_provider_dpone.staging.files import stage_csv

    one = TableSchema((Column("s", CanonicalType.STRING),))
    manifest = stage_csv(store_for(tmp_path.as_uri()), one, [b'x\n\n""\ny\n'])  # NULL is an empty line
    back = [r["s"] for t in read_parquet(store_for(tmp_path.as_uri()), manifest) for r in t.to_pylist()]
    assert back == ["x", None, "", "y"]


def test_an_empty_csv_export_stages_as_a_manifest_of_no_files(tmp_path: Path) -> None:
    from airflow_provider_dpone.staging.files import stage_csv

    one = TableSchema((Column("s", CanonicalType.STRING),))
    manifest = stage_csv(store_for(tmp_path.as_uri()), one, [b"", b""])  # nothing past the watermark
    assert manifest.files == () and manifest.rows == 0
    assert store_for(tmp_path.as_uri()).names() == [MANIFEST]
