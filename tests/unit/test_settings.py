from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestration.defs.project import dbt_vars
from orchestration.errors import CrmError
from orchestration.settings import PROJECT_ROOT, load_settings


def test_defaults_are_absolute_paths_under_data(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRM_LANDING_DIR", "CRM_WAREHOUSE", "CRM_EXPORT_DIR", "CRM_AS_OF", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.landing_dir == PROJECT_ROOT / "data" / "landing"
    assert s.warehouse == PROJECT_ROOT / "data" / "warehouse.duckdb"
    assert s.export_dir.is_absolute() and s.dagster_home == PROJECT_ROOT / "data" / "dagster_home"
    assert s.as_of == datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)


def test_relative_paths_resolve_against_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_WAREHOUSE", "elsewhere/wh.duckdb")
    assert load_settings().warehouse == PROJECT_ROOT / "elsewhere" / "wh.duckdb"


def test_as_of_override_and_dbt_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_AS_OF", "2024-06-30")
    monkeypatch.setenv("CRM_SILENT_AFTER_DAYS", "60")
    s = load_settings()
    assert s.as_of == date(2024, 6, 30)
    assert dbt_vars(s)["as_of_date"] == "2024-06-30"
    assert dbt_vars(s)["silent_after_days"] == 60
    assert "churn_after_days" not in dbt_vars(s)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("CRM_AS_OF", "30/06/2024", "CRM_AS_OF='30/06/2024' is not a date"),
        ("CRM_TIMEZONE", "Mars/Olympus", "not a known time zone"),
        ("CRM_TIME_UNIT", "month", "must be 'week' or 'day'"),
        ("CRM_FRESHNESS_DAYS", "soon", "is not a whole number"),
    ],
)
def test_bad_settings_have_clear_messages(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(CrmError, match=fragment):
        load_settings()


def test_dotenv_fills_unset_variables_only(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nexport CRM_FRESHNESS_DAYS=9  # days\nCRM_TIMEZONE='Europe/Berlin'\n\n", "utf-8"
    )
    monkeypatch.delenv("CRM_FRESHNESS_DAYS", raising=False)
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Tokyo")
    s = load_settings(env_file=env)
    assert s.freshness_days == 9 and s.timezone == "Asia/Tokyo"
    env.write_text("not a setting\n", "utf-8")
    with pytest.raises(CrmError, match=r"\.env: .*line 1.*write it as KEY=value"):
        load_settings(env_file=env)


def test_fields_given_by_the_caller_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_AS_OF", "2024-06-30")
    monkeypatch.setenv("CRM_WAREHOUSE", "/tmp/env.duckdb")
    s = load_settings(as_of="2024-01-31", warehouse=None)
    assert s.as_of == date(2024, 1, 31) and s.warehouse == Path("/tmp/env.duckdb")
    assert s.dagster_home == Path("/tmp/dagster_home-env")  # beside the warehouse, per stem
    moved = s.with_overrides(warehouse=Path("/tmp/work.duckdb"), as_of=None)
    assert moved.warehouse == Path("/tmp/work.duckdb") and moved.as_of == date(2024, 1, 31)
    assert moved.dagster_home == s.dagster_home  # the run's instance does not follow a copy


def test_as_of_is_fixed_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """'Yesterday' is decided once: a run crossing midnight keeps its date."""
    import orchestration.settings as settings_module

    monkeypatch.delenv("CRM_AS_OF", raising=False)
    s = load_settings()
    first = s.as_of

    class _Tomorrow(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) + timedelta(days=1)

    monkeypatch.setattr(settings_module, "datetime", _Tomorrow)
    assert s.as_of == first
    assert load_settings().as_of == first + timedelta(days=1)


def test_dbt_gets_the_warehouse_and_memory_cap_as_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DUCKDB_MEMORY_LIMIT", "7GB")
    v = dbt_vars(load_settings(warehouse=Path("/tmp/w.duckdb")))
    assert v["warehouse"] == "/tmp/w.duckdb" and v["duckdb_memory_limit"] == "7GB"
    assert [cl["name"] for cl in v["playbook"]["lists"]]  # the project's playbook


def test_score_horizons_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SCORE_HORIZONS", "14, 45,180")
    assert load_settings().score_horizons == (14, 45, 180)
    monkeypatch.setenv("CRM_SCORE_HORIZONS", "two weeks")
    with pytest.raises(CrmError, match="CRM_SCORE_HORIZONS='two weeks' give whole days"):
        load_settings()


def test_a_bad_as_of_flag_is_named_as_typed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from orchestration.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--as-of", "30/06/2024"])
    assert result.exit_code != 0
    assert "--as-of='30/06/2024' is not a date; use YYYY-MM-DD" in result.output
    assert not (tmp_path / "data").exists()  # refused before anything was set up
