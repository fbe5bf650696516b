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
    from orchestration.lib import exports
    from orchestration.runner import run_pipeline

    good = run_pipeline(groups=["ingest", "transform"])
    assert good.success, good.failure
    warehouse = env / "warehouse.duckdb"
    before = _sha(warehouse)

    # New data and a new as-of date; ingest, dbt and the model step succeed, then the
    # export step breaks (a bug): the whole run must leave no trace.
    with (env / "landing" / "orders.csv").open("a", encoding="utf-8") as fh:
        fh.write("O900,M01,2024-07-30 10:00:00,55.00,paid,tmall,,\n")
    monkeypatch.setenv("CRM_AS_OF", "2024-07-31")

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated bug in the export step")

    monkeypatch.setattr(exports, "stage_exports", broken)
    bad = run_pipeline()
    assert not bad.success
    assert "campaign_exports" in bad.failure and "simulated bug" in bad.failure
    assert "nothing from this run (as of 2024-07-31) was published" in bad.summary
    assert "lifecycle stages" not in bad.summary  # never an old summary as if new
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


def test_thin_data_publishes_rfm_and_lifecycle_and_says_why_no_lists(env: Path) -> None:
    """8 customers: the model is skipped with a WARN, everything else is published."""
    from orchestration.runner import run_pipeline

    outcome = run_pipeline()
    assert outcome.success, outcome.failure
    assert "CLV model skipped: only 8 customers" in outcome.summary
    with duckdb.connect(str(env / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.customer_rfm").fetchall()[0][0] == 8
        assert con.execute("select count(*) from marts.campaign_targets").fetchall() == [(0,)]
        reasons = {
            r[0]
            for r in con.execute("select distinct reason from marts.campaign_exclusions").fetchall()
        }
    assert any(r.startswith("list needs model scores") for r in reasons)


def test_second_run_waits_or_refuses(env: Path) -> None:
    import threading

    from orchestration.runner import run_pipeline

    guard = begin_run(env / "warehouse.duckdb", "someone-elses-run")
    try:
        with pytest.raises(CrmError, match="another run is using .*--no-wait"):
            run_pipeline(groups=["ingest"], wait=False)
    finally:
        guard.discard()
    # a run in progress: the next one waits for it, says so, and then runs
    guard = begin_run(env / "warehouse.duckdb", "someone-elses-run")
    lines: list[str] = []
    threading.Timer(1.5, guard.discard).start()
    outcome = run_pipeline(progress=lines.append, groups=["ingest"])
    assert outcome.success, outcome.failure
    assert any(line.startswith("waiting: run someone-elses-run") for line in lines)


def test_a_program_holding_the_warehouse_is_named(env: Path) -> None:
    from orchestration.runner import run_pipeline

    assert run_pipeline(groups=["ingest"]).success
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,time; c=duckdb.connect({str(env / 'warehouse.duckdb')!r}, "
         "read_only=True); print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        expected = rf"open in another program \(python.*pid {holder.pid}\)"
        with pytest.raises(CrmError, match=expected):
            run_pipeline(groups=["ingest"])
        assert time.monotonic() - started < 30
    finally:
        holder.kill()


def test_a_run_across_midnight_builds_one_day(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --as-of the run is as of yesterday: fixed once, even if midnight passes."""
    from datetime import datetime as real_datetime

    import dagster as dg

    from orchestration import settings

    monkeypatch.delenv("CRM_AS_OF")
    monkeypatch.setenv("CRM_TIMEZONE", "Pacific/Auckland")
    calls = []

    class Clock(real_datetime):
        @classmethod
        def now(cls, tz=None):
            calls.append(1)
            # the first reading is 1 s before local midnight, every later one after it
            wall = (
                real_datetime(2024, 7, 1, 23, 59, 59)
                if len(calls) == 1
                else real_datetime(2024, 7, 2, 0, 0, 1)
            )
            return wall.replace(tzinfo=tz)

    monkeypatch.setattr(settings, "datetime", Clock)
    from orchestration.runner import run_pipeline

    outcome = run_pipeline(groups=["ingest", "transform"])
    assert outcome.success, outcome.failure
    with duckdb.connect(str(env / "warehouse.duckdb"), read_only=True) as con:
        days = con.execute("select distinct as_of_date from marts.customer_lifecycle").fetchall()
    assert [d[0].isoformat() for d in days] == ["2024-06-30"]
    with dg.DagsterInstance.from_config(str(env / "dagster_home")) as instance:
        assert instance.get_run_by_id(outcome.run_id).tags["crm/as_of"] == "2024-06-30"
