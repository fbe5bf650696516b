"""Resources: the pipeline settings and the dbt CLI."""

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from orchestration.defs.project import dbt_cli, dbt_project
from orchestration.lib.exports import clean_leftovers, export_lock, is_backfill
from orchestration.lib.run_events import instance_events, planned_steps, verdict
from orchestration.lib.run_guard import RunGuard, begin_run
from orchestration.settings import Settings, load_settings, run_tags

_GUARDS: dict[str, tuple[RunGuard, int]] = {}  # run_id -> (guard, resource users)
_PINNED_AS_OF: dict[str, date] = {}  # run_id -> the as-of fixed when the run started


class PipelineSettings(dg.ConfigurableResource):
    """The run's settings (orchestration.settings), optionally overridden per run.

    Leave a field empty to use the environment or .env (see .env.example). In the
    Dagster UI launchpad you can set e.g. `as_of` to re-run an earlier day, or
    `accept_input_change` to publish lists the hold-back checks stopped, or
    `rebuild_campaign_results` to recompute every campaign's results (e.g. after landing
    an old send log or changing a results window).
    """

    as_of: str = ""
    landing_dir: str = ""
    warehouse: str = ""
    export_dir: str = ""
    models_dir: str = ""
    accept_input_change: bool = False
    rebuild_campaign_results: bool = False
    _guard: RunGuard | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Lock the warehouse and switch this run onto a working copy (see run_guard)."""
        run_id = context.run_id
        if not run_id or context.instance is None:
            return
        self._run_id = run_id
        if run_id in _GUARDS:  # resources initialised again within the same run
            guard, users = _GUARDS[run_id]
            _GUARDS[run_id] = (guard, users + 1)
        else:
            resolved = self._resolved()
            guard = begin_run(resolved.warehouse, run_id)
            _GUARDS[run_id] = (guard, 1)
            # one as-of for the whole run, however it was started, and tags that say so
            _PINNED_AS_OF[run_id] = resolved.as_of
            current = context.dagster_run.tags if context.dagster_run else {}
            tags = {k: v for k, v in run_tags(resolved).items() if k not in current}
            if tags:
                context.instance.add_run_tags(run_id, tags)
            _fail_orphaned_runs(context, resolved.warehouse)
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
        # the run's dbt target folder (see transform._run_target): its logs are in the run's
        shutil.rmtree(
            dbt_project.project_dir / dbt_project.target_path / "runs" / context.run_id,
            ignore_errors=True,
        )
        resolved = self._resolved()
        _PINNED_AS_OF.pop(context.run_id, None)
        if not _run_completed(context):
            guard.discard()
            if context.log:
                context.log.warning(
                    f"run failed: {guard.warehouse} left as it was (last good tables kept)"
                )
        else:
            guard.publish()
            # models/LATEST names the version whose scores are now published (not a backfill's)
            if not is_backfill(resolved.export_dir, resolved.as_of):
                published_scores_version(resolved)
                from orchestration.lib.model_store import apply_retention

                removed = apply_retention(
                    resolved.models_dir, resolved.model_retention_days, resolved.as_of
                )
                if removed and context.log:
                    context.log.info(
                        f"retention: deleted {len(removed)} model folder(s) older than "
                        f"{resolved.model_retention_days} days"
                    )

    def settings(self) -> Settings:
        """This run's settings, on the run's working copy of the warehouse."""
        s = self._resolved()
        return s.with_overrides(warehouse=self._guard.work) if self._guard else s

    def _resolved(self) -> Settings:
        pinned = _PINNED_AS_OF.get(self._run_id or "")
        return load_settings(
            as_of=pinned or self.as_of or None,
            landing_dir=self.landing_dir or None,
            warehouse=self.warehouse or None,
            export_dir=self.export_dir or None,
            models_dir=self.models_dir or None,
            accept_input_change=self.accept_input_change or None,
            rebuild_campaign_results=self.rebuild_campaign_results or None,
        )

    def as_of_date(self) -> date:
        return self.settings().as_of


def published_scores_version(s: Settings) -> str | None:
    """Point models/LATEST at the model version of the published customer_scores."""
    from orchestration.lib.model_store import SCORES_TABLE, set_latest
    from orchestration.lib.warehouse import open_warehouse, table_exists

    if not s.warehouse.exists():
        return None
    with open_warehouse(s, read_only=True) as con:
        if not table_exists(con, SCORES_TABLE):
            return None
        version = con.execute(f"select any_value(model_version) from {SCORES_TABLE}").fetchall()
    if version and version[0][0]:
        set_latest(s.models_dir, str(version[0][0]))
        return str(version[0][0])
    return None


def _run_completed(context: dg.InitResourceContext) -> bool:
    """Positive evidence that the run reached its end: every step of its plan succeeded,
    and no blocking (ERROR) asset check failed. Absence of a failure is not enough."""
    instance, run_id = context.instance, context.run_id
    return verdict(instance_events(instance, run_id), planned_steps(instance, run_id)).completed


def _fail_orphaned_runs(context: dg.InitResourceContext, warehouse: Path) -> None:
    """Runs on this warehouse still marked STARTED while we hold its run lock were killed
    (a killed process cannot say so): mark them failed, with the reason."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED], tags={"crm/warehouse": str(warehouse)}
        )
    )
    for run in runs:
        if run.run_id != context.run_id:
            context.instance.report_run_failed(
                run,
                message=f"marked failed by run {context.run_id[:8]}: the process was killed "
                "before it finished (nothing of it was published)",
            )


def make_resources() -> dict[str, object]:
    return {
        "crm": PipelineSettings(),
        "dbt": dbt_cli(),
    }
