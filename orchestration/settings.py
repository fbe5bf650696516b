"""One typed settings object for the whole pipeline.

Every value comes from an environment variable with a documented default (see
`.env.example`). Paths are resolved to absolute paths once, here, so dbt (which
runs in its own working directory) and Dagster agree on where things are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestration.errors import CrmError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
#: The business time zone unless CRM_TIMEZONE says otherwise (dbt's own default, for a
#: bare `dbt build`, is the `timezone` var in dbt_project.yml).
DEFAULT_TIMEZONE = "Asia/Shanghai"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value if value else default


def _path(name: str, default: str) -> Path:
    raw = Path(_env(name, default)).expanduser()
    return raw if raw.is_absolute() else (PROJECT_ROOT / raw).resolve()


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError as exc:
        raise CrmError(
            f"{name}={raw!r} is not a whole number; set it like {name}={default}"
        ) from exc
    if value < minimum:
        raise CrmError(f"{name}={value} must be at least {minimum}")
    return value


def _optional_int(name: str) -> int | None:
    raw = _env(name, "")
    return _int(name, 0, minimum=1) if raw else None


def _float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise CrmError(f"{name}={raw!r} is not a number; set it like {name}={default}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise CrmError(f"{name}={raw!r} must be true or false")


def parse_as_of(raw: str, source: str = "CRM_AS_OF") -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise CrmError(f"{source}={raw!r} is not a date; use YYYY-MM-DD, e.g. 2024-06-30") from exc


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one pipeline run."""

    landing_dir: Path
    warehouse: Path
    export_dir: Path
    models_dir: Path
    dagster_home: Path
    timezone: str
    as_of_override: date | None
    schedule_cron: str
    freshness_days: int
    time_unit: str
    holdout_days: int
    silent_after_days: int | None
    churn_after_days: int | None
    discount_rate_monthly: float
    min_customers: int
    min_repeat_customers: int
    playbook: Path
    export_hashed_audience: bool
    export_retention_days: int
    duckdb_memory_limit: str
    min_order_date: date
    max_order_amount: float
    landing_settle_seconds: int
    max_rows_drop: float
    max_parameter_change: float
    accept_input_change: bool
    model_retention_days: int
    dbt_project_dir: Path = field(default=DBT_PROJECT_DIR)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def as_of(self) -> date:
        """The run's as-of date: CRM_AS_OF, or yesterday in the business timezone."""
        if self.as_of_override is not None:
            return self.as_of_override
        return datetime.now(self.tz).date() - timedelta(days=1)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def dbt_vars(self) -> dict[str, object]:
        """Variables handed to every dbt invocation."""
        out: dict[str, object] = {
            "as_of_date": self.as_of.isoformat(),
            "timezone": self.timezone,
            "holdout_days": self.holdout_days,
            "min_order_date": self.min_order_date.isoformat(),
            "max_order_amount": (
                int(self.max_order_amount)
                if float(self.max_order_amount).is_integer()
                else self.max_order_amount
            ),
        }
        if self.silent_after_days is not None:
            out["silent_after_days"] = self.silent_after_days
        if self.churn_after_days is not None:
            out["churn_after_days"] = self.churn_after_days
        return out

    def ensure_dagster_home(self) -> Path:
        """Create DAGSTER_HOME with the project's dagster.yaml (telemetry off, run queue).

        The file is (re)written while it is still the project's own copy (its first line);
        a dagster.yaml edited by hand (first line removed) is left alone.
        """
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        template = Path(__file__).with_name("dagster.yaml").read_text(encoding="utf-8")
        cfg = self.dagster_home / "dagster.yaml"
        current = cfg.read_text(encoding="utf-8") if cfg.exists() else None
        ours = (
            current is None
            or current.startswith(template.splitlines()[0])
            or (current.strip() == "telemetry:\n  enabled: false")
        )
        if ours and current != template:
            cfg.write_text(template, encoding="utf-8")
        return self.dagster_home

    def export_env(self) -> None:
        """Publish the paths dbt's profiles.yml and Dagster read from the environment.

        CRM_ACTIVE_WAREHOUSE is the file this run writes (a working copy during a
        run, see orchestration.lib.run_guard); CRM_WAREHOUSE stays the user's setting.
        """
        os.environ["CRM_ACTIVE_WAREHOUSE"] = str(self.warehouse)
        os.environ["CRM_DUCKDB_MEMORY_LIMIT"] = self.duckdb_memory_limit
        os.environ["DAGSTER_HOME"] = str(self.dagster_home)
        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


def run_tags(s: Settings) -> dict[str, str]:
    """Tags every run carries, however it was started: the UI filters and the run queue
    (one run per warehouse at a time, see dagster.yaml) key on them."""
    return {
        "crm/as_of": s.as_of.isoformat(),
        "crm/warehouse": str(s.warehouse),
        "crm/landing": str(s.landing_dir),
    }


def load_dotenv(path: Path = PROJECT_ROOT / ".env") -> None:
    """Read the project's .env into the environment (python-dotenv: `export`, quotes and
    inline comments as in a shell). Variables already set in the environment win (as
    with `dagster dev`, which reads the same file for the UI). A line it cannot read
    stops with its line number instead of being skipped."""
    import logging

    import dotenv

    if not path.is_file():
        return
    problems: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            problems.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    log = logging.getLogger("dotenv.main")
    log.addHandler(handler)
    try:
        values = dotenv.dotenv_values(path, encoding="utf-8")
    finally:
        log.removeHandler(handler)
    if problems:
        raise CrmError(f"{path.name}: {problems[0]}; write it as KEY=value")
    for key, value in values.items():
        if value is not None:
            os.environ.setdefault(key, value)


def _default_dagster_home(warehouse: Path) -> Path:
    """Dagster's storage beside the warehouse, one per warehouse: `data/dagster_home` for
    `data/warehouse.duckdb`, `data/dagster_home-cdnow` for `data/cdnow.duckdb`. So a run on
    another warehouse never shows its status on the default warehouse's assets."""
    suffix = "" if warehouse.stem == "warehouse" else f"-{warehouse.stem}"
    return warehouse.parent / f"dagster_home{suffix}"


def load_settings() -> Settings:
    """Read the settings from the environment (defaults live under `data/`)."""
    timezone = _env("CRM_TIMEZONE", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CrmError(
            f"CRM_TIMEZONE={timezone!r} is not a known time zone; use an IANA name "
            "such as Asia/Shanghai or Europe/Berlin"
        ) from exc
    as_of_raw = _env("CRM_AS_OF", "")
    time_unit = _env("CRM_TIME_UNIT", "week").lower()
    if time_unit not in {"week", "day"}:
        raise CrmError(f"CRM_TIME_UNIT={time_unit!r} must be 'week' or 'day'")
    warehouse = _path("CRM_WAREHOUSE", "data/warehouse.duckdb")
    return Settings(
        landing_dir=_path("CRM_LANDING_DIR", "data/landing"),
        warehouse=warehouse,
        export_dir=_path("CRM_EXPORT_DIR", "data/exports"),
        models_dir=_path("CRM_MODELS_DIR", "models"),
        dagster_home=_path("DAGSTER_HOME", str(_default_dagster_home(warehouse))),
        timezone=timezone,
        as_of_override=parse_as_of(as_of_raw) if as_of_raw else None,
        schedule_cron=_env("CRM_SCHEDULE_CRON", "0 2 * * *"),
        freshness_days=_int("CRM_FRESHNESS_DAYS", 2, minimum=0),
        time_unit=time_unit,
        holdout_days=_int("CRM_HOLDOUT_DAYS", 182, minimum=7),
        silent_after_days=_optional_int("CRM_SILENT_AFTER_DAYS"),
        churn_after_days=_optional_int("CRM_CHURN_AFTER_DAYS"),
        discount_rate_monthly=_float("CRM_DISCOUNT_RATE_MONTHLY", 0.01),
        min_customers=_int("CRM_MIN_CUSTOMERS", 500, minimum=1),
        min_repeat_customers=_int("CRM_MIN_REPEAT_CUSTOMERS", 100, minimum=1),
        playbook=_path("CRM_PLAYBOOK", "campaigns.yml"),
        export_hashed_audience=_bool("CRM_EXPORT_HASHED_AUDIENCE", False),
        export_retention_days=_int("CRM_EXPORT_RETENTION_DAYS", 90, minimum=1),
        duckdb_memory_limit=_env("CRM_DUCKDB_MEMORY_LIMIT", "3GB"),
        min_order_date=parse_as_of(_env("CRM_MIN_ORDER_DATE", "2000-01-01"), "CRM_MIN_ORDER_DATE"),
        max_order_amount=_float("CRM_MAX_ORDER_AMOUNT", 1_000_000.0),
        landing_settle_seconds=_int("CRM_LANDING_SETTLE_SECONDS", 600),
        max_rows_drop=_float("CRM_MAX_ROWS_DROP", 0.2),
        max_parameter_change=_float("CRM_MAX_PARAMETER_CHANGE", 0.5),
        accept_input_change=_bool("CRM_ACCEPT_INPUT_CHANGE", False),
        model_retention_days=_int("CRM_MODEL_RETENTION_DAYS", 90, minimum=1),
    )
