"""The mass-delete guard's count is planned as an anti-join on the real server: a ``not exists``
inside an aggregate's FILTER was a scan of the key set per target row (minutes at 100,000 rows)."""

from __future__ import annotations

import pytest

from airflow_provider_dpone.sql.postgres import POSTGRES
from tests.conftest import PgEnv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("active", ["", "t.deleted_at is null or t.id < 0"])
def test_the_missing_key_count_is_an_anti_join(clean_pg: PgEnv, active: str) -> None:
    pg = clean_pg
    pg.execute("dst", "create schema raw; create schema dpone_staging")
    pg.execute("dst", "create table raw.t (id int primary key, deleted_at timestamptz)")
    pg.execute("dst", "create table dpone_staging.k (id int)")  # a staged key set has no index
    pg.execute("dst", "insert into raw.t select g, null from generate_series(1, 20000) g")
    pg.execute("dst", "insert into dpone_staging.k select g from generate_series(1, 19000) g")
    pg.execute("dst", "analyze raw.t; analyze dpone_staging.k")
    statement = POSTGRES.count_missing_keys(
        POSTGRES.table("raw", "t"), POSTGRES.table("dpone_staging", "k"), ["id"], active=active
    )
    plan = "\n".join(r[0] for r in pg.query("dst", f"explain {statement}"))
    assert "Anti Join" in plan, plan
    expected = (1000, 20000)
    assert pg.query("dst", statement) == [expected]
