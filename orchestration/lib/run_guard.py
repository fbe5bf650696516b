"""Never worse than before: each run works on a copy of the warehouse.

A run takes an exclusive lock (a second run stops at once), copies the
warehouse to a working file, and every step of the run reads and writes that
copy. Only when the run finished without a failed step or blocking check is
the copy renamed over the warehouse (one atomic rename); otherwise it is
deleted and the last good tables stay exactly as they were.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestration.lib.warehouse import WarehouseBusyError, connect


@dataclass
class RunGuard:
    warehouse: Path
    work: Path
    lock_fd: int

    def publish(self) -> None:
        os.replace(self.work, self.warehouse)
        self._remove_wal()
        self.release()

    def discard(self) -> None:
        for p in (self.work, self.work.with_name(self.work.name + ".wal")):
            p.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self.lock_fd >= 0:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            os.close(self.lock_fd)
            self.lock_fd = -1

    def _remove_wal(self) -> None:
        # the copy was checkpointed on close; a WAL beside the old file is stale
        self.warehouse.with_name(self.warehouse.name + ".wal").unlink(missing_ok=True)
        wal = self.work.with_name(self.work.name + ".wal")
        if wal.exists():
            os.replace(wal, self.warehouse.with_name(self.warehouse.name + ".wal"))


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".run.lock")


#: Run locks this process already holds (taken by `wait_for_turn` before the run starts).
_HELD: dict[Path, int] = {}


def wait_for_turn(
    warehouse: Path,
    *,
    wait: bool = True,
    notify: Callable[[str], None] | None = None,
    poll_seconds: float = 2.0,
) -> None:
    """Take the warehouse's run lock for this process, waiting for another run to finish.

    With `wait=False` a held lock raises WarehouseBusyError at once. The lock is then
    used by the run's `begin_run` and released when the run ends (or by `release_turn`).
    """
    warehouse = warehouse.resolve()
    if warehouse in _HELD:
        return
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(warehouse), os.O_RDWR | os.O_CREAT, 0o644)
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError as exc:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
            if not wait:
                os.close(fd)
                raise WarehouseBusyError(
                    f"another run is using {warehouse} ({holder}); wait for it to finish "
                    "(crm run waits unless --no-wait), or point CRM_WAREHOUSE at another file"
                ) from exc
            if not told and notify is not None:
                notify(f"waiting: {holder} is using {warehouse} ...")
                told = True
            time.sleep(poll_seconds)
    _HELD[warehouse] = fd


def release_turn(warehouse: Path) -> None:
    fd = _HELD.pop(warehouse.resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def begin_run(warehouse: Path, run_id: str) -> RunGuard:
    """Lock the warehouse for this run and make the working copy."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    held = _HELD.pop(warehouse.resolve(), None)
    if held is not None:
        fd = held
    else:
        fd = os.open(lock_path(warehouse), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            raise WarehouseBusyError(
                f"another run is using {warehouse} ({holder or 'unknown run'}); wait for it to "
                "finish, or point CRM_WAREHOUSE at another file"
            ) from exc
    os.ftruncate(fd, 0)
    os.write(fd, f"run {run_id}, pid {os.getpid()}".encode())
    # one name for every run's copy (the lock allows one run at a time): dbt sees the same
    # profile from run to run and keeps its parse (see orchestration.defs.transform)
    work = warehouse.with_name(f".{warehouse.name}.run-copy")
    # holding the lock, any working copy (and its write-ahead log) is left over from a
    # killed run
    for stale in warehouse.parent.glob(f".{warehouse.name}.run-*"):
        if not stale.name.endswith(".lock"):
            stale.unlink(missing_ok=True)
    try:
        if warehouse.exists():
            # fold any write-ahead log into the file, then copy it
            with connect(warehouse, wait_seconds=5) as con:  # past a portal page's read
                con.execute("checkpoint")
            shutil.copyfile(warehouse, work)
        else:
            work.unlink(missing_ok=True)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    return RunGuard(warehouse=warehouse, work=work, lock_fd=fd)


def run_in_progress(warehouse: Path) -> bool:
    """Does some process hold the warehouse's run lock right now?"""
    path = lock_path(warehouse)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock if we got it
    return False
