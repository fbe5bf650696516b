"""Keep dbt's manifest in step with the SQL so definitions always load.

`dbt parse` runs only when a file under dbt_project/ is newer than the manifest
(or it is missing), so a fresh clone and an edited model both just work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestration.errors import CrmError
from orchestration.settings import DBT_PROJECT_DIR, load_settings

_WATCHED = ("models", "macros", "seeds", "tests", "dbt_project.yml", "profiles.yml")


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _WATCHED:
        p = project_dir / name
        paths = [p] if p.is_file() else (p.rglob("*") if p.is_dir() else [])
        for f in paths:
            if f.is_file():
                newest = max(newest, f.stat().st_mtime)
    return newest


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    manifest = project_dir / "target" / "manifest.json"
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project_dir):
        return manifest
    load_settings().export_env()
    dbt = Path(sys.executable).with_name("dbt")
    cmd = [str(dbt) if dbt.exists() else "dbt", "parse", "--quiet"]
    cmd += ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    proc = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True, env=os.environ)
    if proc.returncode != 0 or not manifest.exists():
        raise CrmError(
            "dbt parse failed, so the pipeline's SQL cannot be loaded:\n"
            + (proc.stdout + proc.stderr).strip()[-2000:]
        )
    return manifest
