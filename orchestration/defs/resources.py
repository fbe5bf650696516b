"""Resources: the pipeline settings and the dbt CLI."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from orchestration.settings import DBT_PROJECT_DIR, Settings, load_settings, parse_as_of

_DBT = Path(sys.executable).with_name("dbt")
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class PipelineSettings(dg.ConfigurableResource):
    """The run's settings: CRM_* environment variables, optionally overridden per run.

    Leave a field empty to use the environment (see .env.example). In the
    Dagster UI launchpad you can set e.g. `as_of` to re-run an earlier day.
    """

    as_of: str = ""
    landing_dir: str = ""
    warehouse: str = ""
    export_dir: str = ""
    models_dir: str = ""

    def settings(self) -> Settings:
        s = load_settings()
        s = s.with_overrides(
            as_of_override=parse_as_of(self.as_of, "as_of") if self.as_of else None,
            landing_dir=Path(self.landing_dir).resolve() if self.landing_dir else None,
            warehouse=Path(self.warehouse).resolve() if self.warehouse else None,
            export_dir=Path(self.export_dir).resolve() if self.export_dir else None,
            models_dir=Path(self.models_dir).resolve() if self.models_dir else None,
        )
        s.export_env()
        return s

    def as_of_date(self) -> date:
        return self.settings().as_of


def make_resources() -> dict[str, object]:
    return {
        "crm": PipelineSettings(),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            profiles_dir=DBT_PROJECT_DIR,
            # the dbt installed beside this Python, so no PATH set-up is needed
            dbt_executable=str(_DBT) if _DBT.exists() else "dbt",
        ),
    }
