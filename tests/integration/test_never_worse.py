"""A failed run leaves the warehouse byte-for-byte as it was; a second run stops at once."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from orchestration.errors import CrmError
from orchestration.lib.run_guard import begin_run
from tests.conftest import point_env_at

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small"
pytestmark = pytest.mark.integration


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "landing")
    point_env_at(monkeypatch, tmp_path)
    monkeypatch.setenv("CRM_AS_OF", "2024-06-30")
    return tmp_path


def test_failed_run_keeps_last_good_warehouse(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.runner import run_pipeline

    good = run_pipeline(groups=["ingest", "transform"])
    assert good.success, good.failure
    warehouse = env / "warehouse.duckdb"
    before = _sha(warehouse)

    # New data and a new as-of date; ingest and dbt succeed, then the CLV model's data
    # guard fails (the fixture has 8 customers): the whole run must leave no trace.
    with (env / "landing" / "orders.csv").open("a", encoding="utf-8") as fh:
        fh.write("O900,M01,2024-07-20 10:00:00,55.00,paid,tmall,,\n")
    monkeypatch.setenv("CRM_AS_OF", "2024-07-31")
    bad = run_pipeline()
    assert not bad.success
    assert "clv_model" in bad.failure and "customers" in bad.failure
    assert _sha(warehouse) == before
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert (
            con.execute("select distinct as_of_date from marts.customer_lifecycle")
            .fetchall()[0][0]
            .isoformat()
            == "2024-06-30"
        )
        assert con.execute("select count(*) from raw.orders").fetchall() == [(29,)]
    assert not list(env.glob(".warehouse.duckdb.run-*")), "working copy left behind"


def test_second_run_stops_at_once(env: Path) -> None:
    from orchestration.runner import run_pipeline

    guard = begin_run(env / "warehouse.duckdb", "someone-elses-run")
    try:
        with pytest.raises(CrmError, match="another run is using"):
            run_pipeline(groups=["ingest"])
    finally:
        guard.discard()
    assert run_pipeline(groups=["ingest"]).success  # free again
