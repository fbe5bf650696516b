"""When is a landing batch complete, and which batch is it?

A batch is the set of landing files (orders*, members*, suppression*). It is
**ready** when either

- the upstream export wrote the marker `_READY` last (after every data file; a data
  file changed after the marker means the next batch is still being written). The
  marker may be empty, or a manifest: CSV lines `file,sha256,rows` (header optional;
  sha256 and rows may be empty), checked by the sensor and again on load; or
- there is no marker and no data file has changed for the settle period
  (`CRM_LANDING_SETTLE_SECONDS`).

Its **fingerprint** is a SHA-256 over the files' names and contents (not their
modification times): touching a file does not make a new batch, and the same batch
is one run. Content hashes are cached by (name, size, mtime) so an unchanged file is
not read again.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.errors import CrmError
from orchestration.lib.files import file_sha256
from orchestration.lib.landing import ENTITIES, SUFFIXES

READY_MARKER = "_READY"


@dataclass
class Batch:
    ready: bool
    reason: str
    fingerprint: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestEntry:
    sha256: str | None
    rows: int | None


def data_files(landing_dir: Path) -> list[Path]:
    if not landing_dir.is_dir():
        return []
    return sorted(
        p
        for p in landing_dir.iterdir()
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and any(p.name.lower().startswith(name) for name in ENTITIES)
    )


def read_manifest(landing_dir: Path) -> dict[str, ManifestEntry] | None:
    """The `_READY` manifest ({} for an empty marker), or None without a marker."""
    marker = landing_dir / READY_MARKER
    if not marker.is_file():
        return None
    entries: dict[str, ManifestEntry] = {}
    lines = marker.read_text(encoding="utf-8-sig").splitlines()
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or not row[0].strip() or (number == 1 and row[0].strip().lower() == "file"):
            continue
        name = row[0].strip()
        sha = row[1].strip().lower() if len(row) > 1 and row[1].strip() else None
        rows_text = row[2].strip() if len(row) > 2 else ""
        try:
            rows = int(rows_text) if rows_text else None
        except ValueError as exc:
            raise CrmError(
                f"{READY_MARKER} line {number}: rows {rows_text!r} is not a whole number; "
                "write the manifest as file,sha256,rows"
            ) from exc
        entries[name] = ManifestEntry(sha, rows)
    return entries


def fingerprint(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def read_batch(
    landing_dir: Path,
    *,
    settle_seconds: int,
    now: float,
    hash_cache: dict[str, str] | None = None,
) -> Batch:
    """Is the batch in `landing_dir` complete, and what is its fingerprint?

    `hash_cache` maps "name|size|mtime_ns" to a content hash and is updated in place.
    """
    files = data_files(landing_dir)
    if not files:
        return Batch(False, f"no landing files in {landing_dir}")
    stats = {p.name: p.stat() for p in files}
    manifest = read_manifest(landing_dir)
    if manifest is not None:
        marker_time = (landing_dir / READY_MARKER).stat().st_mtime_ns
        changed = [n for n, st in stats.items() if st.st_mtime_ns > marker_time]
        if changed:
            return Batch(
                False,
                f"{', '.join(changed)} changed after {READY_MARKER} was written: waiting for "
                "the upstream export to write a new marker",
            )
    else:
        newest = max(st.st_mtime for st in stats.values())
        if now - newest < settle_seconds:
            return Batch(
                False,
                f"landing files changed {now - newest:.0f}s ago; waiting until they have been "
                f"unchanged for {settle_seconds}s (CRM_LANDING_SETTLE_SECONDS) or a "
                f"{READY_MARKER} marker is written",
            )
    cache = hash_cache if hash_cache is not None else {}
    hashes: dict[str, str] = {}
    used = set()
    for path in files:
        st = stats[path.name]
        key = f"{path.name}|{st.st_size}|{st.st_mtime_ns}"
        if key not in cache:
            cache[key] = file_sha256(path)
        hashes[path.name] = cache[key]
        used.add(key)
    for key in [k for k in cache if k not in used]:
        del cache[key]  # keep the cache to the files as they are now
    if manifest:
        problem = check_manifest(manifest, hashes)
        if problem:
            return Batch(False, problem)
    return Batch(True, "ready", fingerprint(hashes), hashes)


def check_manifest(manifest: dict[str, ManifestEntry], hashes: dict[str, str]) -> str | None:
    """Why the files do not match the `_READY` manifest (None when they do)."""
    for name, entry in manifest.items():
        if name not in hashes:
            return f"{READY_MARKER} lists {name}, which is not in the landing folder (yet?)"
        if entry.sha256 and entry.sha256 != hashes[name]:
            return (
                f"{name}: its SHA-256 differs from the one in {READY_MARKER} (still being "
                "written, or a different export?)"
            )
    return None
