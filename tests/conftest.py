"""Shared fixtures: isolated CRM_* paths per test, so nothing touches data/."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


PATHS = {
    "CRM_LANDING_DIR": "landing",
    "CRM_WAREHOUSE": "warehouse.duckdb",
    "CRM_EXPORT_DIR": "exports",
    "CRM_MODELS_DIR": "models",
    "DAGSTER_HOME": "dagster_home",
}


def point_env_at(mp: pytest.MonkeyPatch, root: Path, as_of: str | None = None) -> None:
    """Every CRM_* path under `root` (landing files go to root/landing)."""
    for name, sub in PATHS.items():
        mp.setenv(name, str(root / sub))
    if as_of:
        mp.setenv("CRM_AS_OF", as_of)


@pytest.fixture
def crm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every CRM_* path at a temp folder; returns that folder."""
    monkeypatch.setenv("CRM_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("CRM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("CRM_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("CRM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    for name in ("CRM_AS_OF", "CRM_SILENT_AFTER_DAYS", "CRM_CHURN_AFTER_DAYS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "landing").mkdir()
    return tmp_path


def pytest_sessionstart(session: pytest.Session) -> None:
    """dbt's manifest in step with the SQL before any test module loads the definitions
    (as `crm run` does; `dagster dev` prepares it itself)."""
    from orchestration.defs.project import prepare_if_stale

    prepare_if_stale()
