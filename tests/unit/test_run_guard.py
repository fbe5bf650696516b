from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.errors import CrmError
from orchestration.lib.run_guard import begin_run, release_turn, wait_for_turn


def _make(path: Path, value: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create or replace table t as select ? as v", [value])


def _value(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select v from t").fetchall()[0][0]


def test_publish_replaces_and_discard_keeps(tmp_path: Path) -> None:
    wh = tmp_path / "warehouse.duckdb"
    _make(wh, 1)
    guard = begin_run(wh, "run-one-xxxx")
    _make(guard.work, 2)
    guard.discard()
    assert _value(wh) == 1 and not guard.work.exists()
    guard = begin_run(wh, "run-two-xxxx")
    _make(guard.work, 3)
    guard.publish()
    assert _value(wh) == 3 and not guard.work.exists()


def test_lock_and_stale_copies(tmp_path: Path) -> None:
    wh = tmp_path / "warehouse.duckdb"
    stale = tmp_path / ".warehouse.duckdb.run-deadbeef"
    stale.write_bytes(b"left over by a killed run")
    # the working copy's name is the same for every run (dbt keeps its parse): a killed
    # run's copy and write-ahead log must not reach the next run
    stale_log = tmp_path / ".warehouse.duckdb.run-copy.wal"
    stale_log.write_bytes(b"a killed run's log")
    guard = begin_run(wh, "run-three-x")
    assert not stale.exists() and not stale_log.exists()
    assert guard.work == tmp_path / ".warehouse.duckdb.run-copy"
    with pytest.raises(CrmError, match=r"another run is using .*\(run run-three-x"):
        wait_for_turn(wh, wait=False)
    with pytest.raises(CrmError, match="another run is using"):
        begin_run(wh, "run-four-xx")
    guard.discard()
    wait_for_turn(wh, wait=False)  # free again: this process holds the lock now ...
    guard = begin_run(wh, "run-five-xx")  # ... and its run uses it
    guard.discard()
    release_turn(wh)
