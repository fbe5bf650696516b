"""The sensor, the schedule and the hold-back rules, with Dagster's own test APIs.

No pipeline run here: the published warehouse is a small DuckDB file holding only
`raw.landing_batches`, and runs are records in an ephemeral Dagster instance.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from orchestration.defs.automation import build_schedule, new_landing_files
from orchestration.lib import holdback, landing_batch
from orchestration.lib.model_store import apply_retention
from orchestration.lib.run_guard import begin_run
from orchestration.settings import load_settings
from tests.conftest import point_env_at

ORDERS = "order_id,member_id,ordered_at,amount\nO1,M1,2024-01-01,10\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    point_env_at(monkeypatch, tmp_path)
    monkeypatch.setenv("CRM_LANDING_SETTLE_SECONDS", "300")
    (tmp_path / "landing").mkdir()
    return tmp_path


def _land(env: Path, text: str = ORDERS, age_seconds: float = 3600) -> Path:
    path = env / "landing" / "orders.csv"
    path.write_text(text, encoding="utf-8")
    old = time.time() - age_seconds
    os.utime(path, (old, old))
    return path


def _landed_fingerprint(env: Path) -> str:
    """Land the orders file (settled) and return its batch fingerprint."""
    _land(env)
    return landing_batch.read_batch(env / "landing", settle_seconds=0, now=time.time()).fingerprint


def _publish(env: Path, fingerprint: str) -> None:
    """What a successful run leaves in the published warehouse."""
    with duckdb.connect(str(env / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists raw")
        con.execute(
            "create table if not exists raw.landing_batches (run_id varchar, as_of date, "
            "loaded_at timestamp, fingerprint varchar, orders_rows bigint, files json)"
        )
        con.execute(
            "insert into raw.landing_batches values ('r1', null, now(), ?, 1, '{}')", [fingerprint]
        )


def _tick(instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = new_landing_files(context)
    return result, context.cursor


# --- when is a batch ready -----------------------------------------------------------


def test_a_file_still_being_written_is_not_a_batch(env: Path) -> None:
    _land(env, age_seconds=10)
    batch = landing_batch.read_batch(env / "landing", settle_seconds=300, now=time.time())
    assert not batch.ready and "waiting until they have been unchanged for 300s" in batch.reason


def test_the_ready_marker_must_come_last_and_match_its_manifest(env: Path) -> None:
    orders = _land(env, age_seconds=10)
    marker = env / "landing" / "_READY"
    sha = landing_batch.file_sha256(orders)
    marker.write_text(f"file,sha256,rows\norders.csv,{sha},1\n", encoding="utf-8")
    batch = landing_batch.read_batch(env / "landing", settle_seconds=300, now=time.time())
    assert batch.ready  # no need to wait for the settle period
    marker.write_text(f"orders.csv,{'0' * 64},1\n", encoding="utf-8")
    batch = landing_batch.read_batch(env / "landing", settle_seconds=300, now=time.time())
    assert not batch.ready and "SHA-256 differs" in batch.reason
    later = time.time() + 5
    os.utime(orders, (later, later))  # a data file written after the marker
    batch = landing_batch.read_batch(env / "landing", settle_seconds=300, now=time.time())
    assert not batch.ready and "changed after _READY" in batch.reason


def test_touching_a_file_does_not_make_a_new_batch(env: Path) -> None:
    path = _land(env)
    cache: dict[str, str] = {}
    first = landing_batch.read_batch(
        env / "landing", settle_seconds=0, now=time.time(), hash_cache=cache
    )
    os.utime(path, (time.time() - 100, time.time() - 100))
    second = landing_batch.read_batch(
        env / "landing", settle_seconds=0, now=time.time(), hash_cache=cache
    )
    assert first.fingerprint == second.fingerprint
    assert len(cache) == 1  # the stale cache entry is dropped


# --- the sensor ---------------------------------------------------------------------


def test_switching_the_sensor_on_without_new_files_starts_nothing(env: Path) -> None:
    _land(env)
    batch = landing_batch.read_batch(env / "landing", settle_seconds=0, now=time.time())
    _publish(env, batch.fingerprint)
    with dg.DagsterInstance.ephemeral() as instance:
        result, _ = _tick(instance)  # no cursor: a fresh sensor, or a reset DAGSTER_HOME
    assert isinstance(result, dg.SkipReason) and "already published" in result.skip_message


def test_a_new_batch_is_one_run_tagged_with_its_fingerprint_and_as_of(env: Path) -> None:
    _land(env)
    _publish(env, "an older batch")
    with dg.DagsterInstance.ephemeral() as instance:
        request, cursor = _tick(instance)
    assert isinstance(request, dg.RunRequest)
    fp = request.tags["crm/landing_fingerprint"]
    assert request.run_key == f"{fp[:16]}-0"
    assert request.tags["crm/trigger"] == "sensor"
    as_of = request.run_config["resources"]["crm"]["config"]["as_of"]
    assert request.tags["crm/as_of"] == as_of
    assert request.tags["crm/warehouse"] == str(env / "warehouse.duckdb")
    assert json.loads(cursor)["hashes"]  # content hashes cached for the next tick


def _run(instance: dg.DagsterInstance, env: Path, fp: str, status, n: int):
    """A run of batch `fp` on this warehouse, recorded in the instance with `status`."""
    run_id = f"00000000-0000-4000-8000-{n:012d}"
    run = dg.DagsterRun(
        job_name="crm_job",
        run_id=run_id,
        status=status,
        tags={"crm/landing_fingerprint": fp, "crm/warehouse": str(env / "warehouse.duckdb")},
    )
    instance.add_run(run)
    return run


def test_a_busy_warehouse_delays_the_batch_but_does_not_lose_it(env: Path) -> None:
    fp = _landed_fingerprint(env)
    with dg.DagsterInstance.ephemeral() as instance:
        queued = _run(instance, env, fp, dg.DagsterRunStatus.STARTED, 1)
        guard = begin_run(env / "warehouse.duckdb", queued.run_id)  # the run holds the warehouse
        try:
            result, _ = _tick(instance)
        finally:
            guard.discard()
        assert isinstance(result, dg.SkipReason) and "queued or running" in result.skip_message
        # the run then failed because another program held the warehouse: asked again
        instance.report_run_failed(
            instance.get_run_by_id(queued.run_id),
            message="the warehouse x is open in another program (duckdb, pid 7)",
        )
        again, _ = _tick(instance)
        assert isinstance(again, dg.RunRequest) and again.run_key == f"{fp[:16]}-1"


def test_a_killed_run_does_not_block_its_batch(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.defs import automation

    monkeypatch.setattr(automation, "_SILENT_SECONDS", -1)  # it logged nothing for long
    fp = _landed_fingerprint(env)
    with dg.DagsterInstance.ephemeral() as instance:
        run = _run(
            instance, env, fp, dg.DagsterRunStatus.STARTED, 3
        )  # STARTED, but no process holds the warehouse
        request, _ = _tick(instance)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert isinstance(request, dg.RunRequest) and request.run_key == f"{fp[:16]}-1"


def test_a_live_run_that_released_the_lock_is_not_taken_for_killed(env: Path) -> None:
    fp = _landed_fingerprint(env)
    with dg.DagsterInstance.ephemeral() as instance:
        run = _run(
            instance, env, fp, dg.DagsterRunStatus.STARTED, 4
        )  # no lock (it is publishing), but it logged a moment ago
        result, _ = _tick(instance)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert isinstance(result, dg.SkipReason)


def test_a_batch_that_failed_on_bad_input_is_not_retried_every_minute(env: Path) -> None:
    fp = _landed_fingerprint(env)
    with dg.DagsterInstance.ephemeral() as instance:
        run = _run(instance, env, fp, dg.DagsterRunStatus.STARTED, 2)
        instance.report_run_failed(run, message="orders.csv: required column 'amount' is missing")
        result, _ = _tick(instance)
    assert isinstance(result, dg.SkipReason) and "failed" in result.skip_message


# --- the schedule: one as-of from the tick, in the business time zone ------------------


@pytest.mark.parametrize(
    ("tick", "as_of"),
    [
        (datetime(2026, 11, 30, 0, 0, 5, tzinfo=ZoneInfo("Pacific/Auckland")), "2026-11-29"),
        (datetime(2026, 11, 29, 23, 59, 55, tzinfo=ZoneInfo("Pacific/Auckland")), "2026-11-28"),
        # a late run (the daemon was down) still builds the day of its tick
        (datetime(2026, 11, 30, 2, 0, tzinfo=ZoneInfo("UTC")), "2026-11-29"),
    ],
)
def test_schedule_runs_as_of_the_day_before_its_tick(
    env: Path, monkeypatch: pytest.MonkeyPatch, tick: datetime, as_of: str
) -> None:
    monkeypatch.setenv("CRM_TIMEZONE", "Pacific/Auckland" if tick.tzinfo.key != "UTC" else "UTC")
    schedule = build_schedule()
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_config["resources"]["crm"]["config"]["as_of"] == as_of
    assert request.tags["crm/as_of"] == as_of and request.tags["crm/trigger"] == "schedule"


# --- hold-back rules -----------------------------------------------------------------


def _warehouse(tmp_path: Path, newest: str, rows: tuple[int, int] | None = None):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema staging; create schema raw")
    con.execute(f"create table staging.stg_shop__orders as select date '{newest}' as order_date")
    if rows:
        con.execute(
            "create table raw.landing_batches (run_id varchar, as_of date, loaded_at timestamp, "
            "fingerprint varchar, orders_rows bigint, files json)"
        )
        con.execute(
            "insert into raw.landing_batches values ('old', null, now() - interval 1 day, "
            "'a', ?, '{}'), ('now', null, now(), 'b', ?, '{}')",
            list(rows),
        )
    return con


def test_hold_back_on_stale_or_shrunk_input_unless_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_AS_OF", "2024-06-30")
    s = load_settings()
    with _warehouse(tmp_path, "2024-06-29", (1000, 900)) as con:
        assert all(v.passed for v in holdback.evaluate(con, s, "now"))
    (tmp_path / "a").mkdir()
    with _warehouse(tmp_path / "a", "2024-06-20", (1000, 500)) as con:
        verdicts = {v.name: v for v in holdback.evaluate(con, s, "now")}
    assert not verdicts["input_is_fresh"].passed
    assert "10 day(s) before the as-of date" in verdicts["input_is_fresh"].description
    assert not verdicts["input_has_not_shrunk"].passed
    assert "500 order rows landed against 1,000" in verdicts["input_has_not_shrunk"].description
    monkeypatch.setenv("CRM_ACCEPT_INPUT_CHANGE", "true")
    with duckdb.connect(str(tmp_path / "a" / "w.duckdb")) as con:
        accepted = holdback.evaluate(con, load_settings(), "now")
    assert all(v.passed for v in accepted)
    assert accepted[0].description.startswith("accepted by --accept-input-change")


def test_model_folders_past_retention_are_deleted_except_latest(tmp_path: Path) -> None:
    for name in ("2024-01-01_aaaaaaaa", "2024-02-01_bbbbbbbb", "2024-06-01_cccccccc", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "LATEST").write_text("2024-01-01_aaaaaaaa\n")
    deleted = apply_retention(tmp_path, keep_days=90, today=date(2024, 6, 30))
    assert deleted == ["2024-02-01_bbbbbbbb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2024-01-01_aaaaaaaa", "2024-06-01_cccccccc", "LATEST", "notes"
    ]  # fmt: skip
