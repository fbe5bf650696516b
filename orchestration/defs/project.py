"""The dbt project, declared once (dagster-dbt `DbtProject`), and its preparation.

`dagster dev` (`crm ui`) prepares the project itself (`prepare_if_dev`: `dbt parse`
writes target/manifest.json). Everything else that loads the definitions — `crm run`,
the tests, the benchmark — calls `prepare_if_stale()` first, which parses only when the
manifest is missing or older than a file of the dbt project. Nothing else runs at import.
"""

from __future__ import annotations

import fcntl
import sys
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from orchestration.errors import CrmError
from orchestration.lib.playbook import load_playbook
from orchestration.settings import DBT_PROJECT_DIR, Settings

#: The dbt installed beside this Python (so no PATH set-up is needed), else the one on PATH.
DBT_EXECUTABLE = (
    str(Path(sys.executable).with_name("dbt"))
    if Path(sys.executable).with_name("dbt").exists()
    else "dbt"
)
_WATCHED = ("models", "macros", "seeds", "tests", "dbt_project.yml", "profiles.yml")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


class CrmDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs it pays on every dbt step
    (~4-7 s of each, tiny shop): it runs `dbt --version` in a subprocess to learn the
    version (dbt asks PyPI for its latest release there), and it builds a dbt adapter in
    this process, used only to fetch row counts and column metadata, which this project
    computes itself (transform._table_metadata). The version is the installed dbt-core's.
    Both are private members of dagster-dbt (pinned in pyproject.toml); kept here, in one
    place, and tests/unit/test_dbt_parse_cache.py checks that neither runs."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Any) -> None:  # type: ignore[override]
        return None


def dbt_cli() -> DbtCliResource:
    return CrmDbtCliResource(
        project_dir=dbt_project, profiles_dir=DBT_PROJECT_DIR, dbt_executable=DBT_EXECUTABLE
    )


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _WATCHED:
        p = project_dir / name
        for f in [p] if p.is_file() else (p.rglob("*") if p.is_dir() else []):
            if f.is_file():
                newest = max(newest, f.stat().st_mtime)
    return newest


def prepare_if_stale(project: DbtProject = dbt_project) -> Path:
    """`dbt parse` when the manifest is missing or older than the project's SQL/YAML.

    One process at a time (a lock file in the target folder): two runs starting together
    after an edit must not read a manifest the other is still writing (a half-written
    manifest loses the asset graph's edges, e.g. staging before its raw table)."""
    target = project.project_dir / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _parse_if_stale(project)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _parse_if_stale(project: DbtProject) -> Path:
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir):
        return manifest
    invocation = dbt_cli().cli(
        ["parse", "--quiet"],
        target_path=project.target_path,
        raise_on_error=False,
    )
    output = [str(e.raw_event["info"].get("msg", "")) for e in invocation.stream_raw_events()]
    if not invocation.is_successful() or not manifest.exists():
        raise CrmError(
            "dbt parse failed, so the pipeline's SQL cannot be loaded:\n"
            + "\n".join(line for line in output if line).strip()[-2000:]
        )
    return manifest


def dbt_vars(s: Settings) -> dict[str, object]:
    """Everything a dbt invocation gets from the pipeline: the profile's warehouse file
    and memory cap (profiles.yml) and the business rules' vars (dbt_project.yml)."""
    out: dict[str, object] = {
        "warehouse": str(s.warehouse),
        "duckdb_memory_limit": s.duckdb_memory_limit,
        "as_of_date": s.as_of.isoformat(),
        "timezone": s.timezone,
        "holdout_days": s.holdout_days,
        "backtest_max_customers": s.backtest_max_customers,
        "min_order_date": s.min_order_date.isoformat(),
        "max_order_amount": (
            int(s.max_order_amount)
            if float(s.max_order_amount).is_integer()
            else s.max_order_amount
        ),
    }
    if s.silent_after_days is not None:
        out["silent_after_days"] = s.silent_after_days
    if s.churn_after_days is not None:
        out["churn_after_days"] = s.churn_after_days
    out["playbook"] = load_playbook(s.playbook).to_dbt_var()
    if s.rebuild_campaign_results:  # only then: the vars (and dbt's kept parse) stay the same
        out["rebuild_campaign_results"] = True
    return out
