"""Resources: the pipeline settings and the dbt CLI."""

import sys
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject
from pydantic import PrivateAttr

from orchestration.lib.exports import clean_leftovers, export_lock
from orchestration.lib.run_guard import RunGuard, begin_run
from orchestration.settings import DBT_PROJECT_DIR, Settings, load_settings, parse_as_of

_DBT = Path(sys.executable).with_name("dbt")
_GUARDS: dict[str, tuple[RunGuard, int]] = {}  # run_id -> (guard, resource users)
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
    _guard: RunGuard | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Lock the warehouse and switch this run onto a working copy (see run_guard)."""
        run_id = context.run_id
        if not run_id or context.instance is None:
            return
        if run_id in _GUARDS:  # resources initialised again within the same run
            guard, users = _GUARDS[run_id]
            _GUARDS[run_id] = (guard, users + 1)
        else:
            resolved = self._resolved()
            guard = begin_run(resolved.warehouse, run_id)
            _GUARDS[run_id] = (guard, 1)
            # before anything else: what a killed run left in the export folder goes
            with export_lock(resolved.export_dir):
                removed = clean_leftovers(resolved.export_dir)
            if removed and context.log:
                context.log.warning(
                    f"removed {len(removed)} leftover(s) of a killed run from "
                    f"{resolved.export_dir}: {', '.join(removed)}"
                )
        self._guard = guard

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Publish the working copy only if no step and no blocking check failed."""
        guard, self._guard = self._guard, None
        if guard is None:
            return
        _, users = _GUARDS[context.run_id]
        if users > 1:
            _GUARDS[context.run_id] = (guard, users - 1)
            return
        del _GUARDS[context.run_id]
        if _run_failed(context):
            guard.discard()
            if context.log:
                context.log.warning(
                    f"run failed: {guard.warehouse} left as it was (last good tables kept)"
                )
        else:
            guard.publish()
            # models/LATEST names the version whose scores are now published
            published_scores_version(self._resolved())

    def settings(self) -> Settings:
        s = self._resolved()
        if self._guard is not None:
            s = s.with_overrides(warehouse=self._guard.work)
        s.export_env()
        return s

    def _resolved(self) -> Settings:
        s = load_settings()
        s = s.with_overrides(
            as_of_override=parse_as_of(self.as_of, "as_of") if self.as_of else None,
            landing_dir=Path(self.landing_dir).resolve() if self.landing_dir else None,
            warehouse=Path(self.warehouse).resolve() if self.warehouse else None,
            export_dir=Path(self.export_dir).resolve() if self.export_dir else None,
            models_dir=Path(self.models_dir).resolve() if self.models_dir else None,
        )
        return s

    def as_of_date(self) -> date:
        return self.settings().as_of


def published_scores_version(s: Settings) -> str | None:
    """Point models/LATEST at the model version of the published customer_scores."""
    from orchestration.lib.model_store import SCORES_TABLE, set_latest
    from orchestration.lib.warehouse import connect, table_exists

    if not s.warehouse.exists():
        return None
    with connect(s.warehouse, read_only=True) as con:
        if not table_exists(con, SCORES_TABLE):
            return None
        version = con.execute(f"select any_value(model_version) from {SCORES_TABLE}").fetchall()
    if version and version[0][0]:
        set_latest(s.models_dir, str(version[0][0]))
        return str(version[0][0])
    return None


def _run_failed(context: dg.InitResourceContext) -> bool:
    """Did any step of this run fail, or any blocking (ERROR) asset check?"""
    records = context.instance.all_logs(
        context.run_id,
        of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION},
    )
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            return True
        ev = event.event_specific_data
        if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
            return True
    return False


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
