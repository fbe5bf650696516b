"""Known-answer tests for orchestration.lib.files (file hash, atomic writer)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from orchestration.lib.files import atomic_writer, file_sha256


def test_file_sha256_known_answer(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    assert file_sha256(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    big = tmp_path / "big.bin"
    data = os.urandom((1 << 22) + 17)  # more than one 4 MB chunk
    big.write_bytes(data)
    assert file_sha256(big) == hashlib.sha256(data).hexdigest()


def test_text_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text("old", encoding="utf-8")
    with atomic_writer(path) as fh:
        fh.write("新的 text\n")
        assert path.read_text(encoding="utf-8") == "old"  # not visible before the end
    assert path.read_bytes() == "新的 text\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["params.json"]


def test_binary_write(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    with atomic_writer(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n")
    assert path.read_bytes() == b"\x89PNG\r\n"


def test_error_keeps_old_file_and_removes_temporary(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(path) as fh:
            fh.write("half a file")
            raise RuntimeError("boom")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv"]


def test_error_without_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with atomic_writer(tmp_path / "new.csv", "wb"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_is_beside_the_target_and_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "LATEST"
    with atomic_writer(path) as fh:
        fh.write("v1\n")
        seen = sorted(p.name for p in tmp_path.iterdir())
    assert len(seen) == 1 and seen[0].startswith(".LATEST.") and seen[0].endswith(".tmp")
    assert len(synced) == 1
    assert path.read_text(encoding="utf-8") == "v1\n"


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_writer(tmp_path / "x.csv") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "x.csv").stat().st_mode & 0o777 == 0o644


def test_rejects_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_writer(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []
