"""One typed settings object for the whole pipeline (pydantic-settings).

Where a value comes from, highest first: a field set by the caller (a `crm` flag, a
Dagster launchpad/run config value), a `CRM_*` environment variable, the project's
`.env`, the default below. Every field is documented in `.env.example`.

The object is resolved once per run: relative paths become absolute (dbt runs in its
own working directory), and the as-of date — `CRM_AS_OF`, or yesterday in the business
time zone at the moment the settings are read — is a fixed value from then on, recorded
as the run's `crm/as_of` tag. dbt receives what it needs through
`orchestration.defs.project.dbt_vars()` only.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestration.errors import CrmError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
ENV_FILE = PROJECT_ROOT / ".env"
#: The business time zone unless CRM_TIMEZONE says otherwise; dbt gets it as a var
#: (a bare `dbt build` uses the `timezone` var in dbt_project.yml, the same name).
DEFAULT_TIMEZONE = "Asia/Shanghai"


class Settings(BaseSettings):
    """Resolved configuration of one pipeline run (field `x` is variable `CRM_X`)."""

    model_config = SettingsConfigDict(
        env_prefix="CRM_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    landing_dir: Path = Path("data/landing")
    warehouse: Path = Path("data/warehouse.duckdb")
    export_dir: Path = Path("data/exports")
    models_dir: Path = Path("models")
    #: Dagster's instance folder; empty = beside the warehouse (see _beside)
    dagster_home: Path | None = Field(None, validation_alias=AliasChoices("DAGSTER_HOME"))
    #: great-expectations Data Docs and drift profiles; empty = beside the warehouse
    data_docs_dir: Path | None = None
    timezone: str = DEFAULT_TIMEZONE
    #: None until resolved: then CRM_AS_OF or yesterday in `timezone`, fixed
    as_of: date | None = None
    schedule_cron: str = "0 2 * * *"
    freshness_days: int = Field(2, ge=0)
    time_unit: Literal["week", "day"] = "week"
    holdout_days: int = Field(182, ge=7)
    #: a larger backtest cohort becomes a hash sample of about this many customers (dbt:
    #: int_backtest_sample_derived)
    backtest_max_customers: int = Field(500_000, ge=1_000)
    silent_after_days: int | None = Field(None, ge=1)
    churn_after_days: int | None = Field(None, ge=1)
    discount_rate_monthly: float = 0.01
    #: days for P(purchase) and expected purchases in the scores (plus 60, 90, 365 and
    #: every list's horizon_days); CRM_SCORE_HORIZONS=30,60,90,365
    score_horizons: Annotated[tuple[int, ...], NoDecode] = (30, 60, 90, 365)
    min_customers: int = Field(500, ge=1)
    min_repeat_customers: int = Field(100, ge=1)
    playbook: Path = Path("campaigns.yml")
    export_hashed_audience: bool = False
    export_retention_days: int = Field(90, ge=1)
    duckdb_memory_limit: str = "3GB"
    min_order_date: date = date(2000, 1, 1)
    max_order_amount: float = 1_000_000.0
    landing_settle_seconds: int = Field(600, ge=0)
    max_rows_drop: float = 0.2
    max_parameter_change: float = 0.5
    accept_input_change: bool = False
    #: recompute every campaign's results from the whole contact record, not only the
    #: campaigns whose windows were still open (campaign_results is incremental)
    rebuild_campaign_results: bool = False
    model_retention_days: int = Field(90, ge=1)
    #: the marketing portal (`crm serve`): where it listens, its SQLite file (users,
    #: sessions, audit, sent marks; empty = beside the warehouse, see _beside), how long a
    #: sign-in lasts, and whether its cookies are marked Secure (true behind HTTPS)
    portal_host: str = "127.0.0.1"
    portal_port: int = Field(8000, ge=1, le=65535)
    portal_db: Path | None = None
    portal_session_hours: int = Field(12, ge=1)
    portal_secure_cookie: bool = False
    dbt_project_dir: Path = Field(DBT_PROJECT_DIR, exclude=True)

    @field_validator(
        "landing_dir",
        "warehouse",
        "export_dir",
        "models_dir",
        "dagster_home",
        "data_docs_dir",
        "playbook",
        "portal_db",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        return value if value.is_absolute() else (PROJECT_ROOT / value).resolve()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value

    @field_validator("score_horizons", mode="before")
    @classmethod
    def _days_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = tuple(int(v) for v in value.replace(" ", "").split(",") if v)
            except ValueError:
                raise ValueError("give whole days separated by commas, e.g. 30,60,90,365") from None
        if isinstance(value, tuple | list) and any(int(v) < 1 for v in value):
            raise ValueError("every horizon must be at least 1 day")
        return value

    @field_validator("time_unit", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        # fixed once here: reading `as_of` later never recomputes "yesterday"
        if self.as_of is None:
            self.as_of = datetime.now(self.tz).date() - timedelta(days=1)
        if self.dagster_home is None:
            self.dagster_home = _beside(self.warehouse, "dagster_home")
        if self.data_docs_dir is None:
            self.data_docs_dir = _beside(self.warehouse, "gx_docs")
        if self.portal_db is None:
            folder = _beside(self.warehouse, "portal")
            self.portal_db = folder.with_name(f"{folder.name}.sqlite3")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (None = keep), validated like the rest."""
        updates = {k: v for k, v in changes.items() if v is not None}
        if not updates:
            return self
        return _validated(lambda: Settings(**{**self.model_dump(), **updates}, _env_file=None))

    def ensure_dagster_home(self) -> Path:
        """Create DAGSTER_HOME with the project's dagster.yaml (telemetry off, run queue).

        The file is (re)written while it is still the project's own copy (its first line);
        a dagster.yaml edited by hand (first line removed) is left alone.
        """
        home = self.dagster_home
        assert home is not None  # filled by _resolve
        home.mkdir(parents=True, exist_ok=True)
        template = Path(__file__).with_name("dagster.yaml").read_text(encoding="utf-8")
        cfg = home / "dagster.yaml"
        current = cfg.read_text(encoding="utf-8") if cfg.exists() else None
        ours = (
            current is None
            or current.startswith(template.splitlines()[0])
            or (current.strip() == "telemetry:\n  enabled: false")
        )
        if ours and current != template:
            cfg.write_text(template, encoding="utf-8")
        return home


def run_tags(s: Settings) -> dict[str, str]:
    """Tags every run carries, however it was started: the UI filters and the run queue
    (one run per warehouse at a time, see dagster.yaml) key on them."""
    return {
        "crm/as_of": s.as_of.isoformat(),
        "crm/warehouse": str(s.warehouse),
        "crm/landing": str(s.landing_dir),
    }


def parse_as_of(raw: str, source: str = "CRM_AS_OF") -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise CrmError(f"{source}={raw!r} is not a date; use YYYY-MM-DD, e.g. 2024-06-30") from exc


def _beside(warehouse: Path, name: str) -> Path:
    """A folder beside the warehouse, one per warehouse: `data/<name>` for
    `data/warehouse.duckdb`, `data/<name>-cdnow` for `data/cdnow.duckdb`. So a run on
    another warehouse never shows its status (or its profiles) on the default one's."""
    suffix = "" if warehouse.stem == "warehouse" else f"-{warehouse.stem}"
    return warehouse.parent / f"{name}{suffix}"


def _check_env_file(path: Path) -> None:
    """python-dotenv (which pydantic-settings uses) skips a line it cannot read with a
    warning; a skipped setting would silently fall back to its default, so stop instead."""
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
        dotenv.dotenv_values(path, encoding="utf-8")
    finally:
        log.removeHandler(handler)
    if problems:
        raise CrmError(f"{path.name}: {problems[0]}; write it as KEY=value")


_HOW = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "must be true or false",
    "date_from_datetime_parsing": "is not a date; use YYYY-MM-DD, e.g. 2024-06-30",
    "date_parsing": "is not a date; use YYYY-MM-DD, e.g. 2024-06-30",
    "literal_error": "must be 'week' or 'day'",
}


def _message(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else "?"
    name = "DAGSTER_HOME" if field == "dagster_home" else f"CRM_{field.upper()}"
    default = Settings.model_fields[field].default if field in Settings.model_fields else None
    kind = error["type"]
    if kind == "greater_than_equal":
        how = f"must be at least {error['ctx']['ge']}"
    elif kind == "less_than_equal":
        how = f"must be at most {error['ctx']['le']}"
    elif kind == "value_error" and field == "timezone":
        how = "is not a known time zone; use an IANA name such as Asia/Shanghai or Europe/Berlin"
    else:
        how = _HOW.get(kind, str(error["msg"]).removeprefix("Value error, "))
    hint = (
        f"; set it like {name}={default}"
        if default not in (None, "") and kind in {"int_parsing", "float_parsing", "int_from_float"}
        else ""
    )
    return f"{name}={error.get('input')!r} {how}{hint}"


def _validated(build: Any) -> Settings:
    try:
        return build()
    except ValidationError as exc:
        raise CrmError("; ".join(_message(e) for e in exc.errors())) from None


def load_settings(env_file: Path | None = ENV_FILE, **fields: object) -> Settings:
    """The settings: `fields` (e.g. from `crm run` flags; None = not given), then the
    environment, then `env_file` (the project's .env), then the defaults."""
    if env_file is not None:
        _check_env_file(env_file)
    given = {k: v for k, v in fields.items() if v is not None and v != ""}
    return _validated(lambda: Settings(**given, _env_file=env_file))
