"""The main job, the nightly schedule and the new-landing-files sensor.

Every run carries the tags `crm/as_of`, `crm/warehouse`, `crm/landing` and
`crm/trigger`; the run queue in dagster.yaml allows one run per warehouse at a
time, so a schedule or sensor run waits for a run in progress instead of failing.
"""

from datetime import date, datetime, timedelta

import dagster as dg

from orchestration.lib.landing import landing_fingerprint
from orchestration.settings import load_settings, run_tags

crm_job = dg.define_asset_job(
    name="crm_job",
    selection=dg.AssetSelection.all(),
    description="Ingest the landing files and rebuild every table, score and list as of one date.",
    # DuckDB allows one writer: run the steps one after another in one process.
    executor_def=dg.in_process_executor,
    # runs launched from the UI's launchpad carry the warehouse too (the queue keys on it)
    tags={k: v for k, v in run_tags(load_settings()).items() if k != "crm/as_of"},
)


def _request(
    as_of: date, trigger: str, run_key: str | None = None, extra_tags: dict | None = None
) -> dg.RunRequest:
    """A run of the whole job as of `as_of`, fixed in its config and tags."""
    s = load_settings().with_overrides(as_of_override=as_of)
    return dg.RunRequest(
        run_key=run_key,
        run_config={"resources": {"crm": {"config": {"as_of": as_of.isoformat()}}}},
        tags={**run_tags(s), "crm/trigger": trigger, **(extra_tags or {})},
    )


def _day_before(moment: datetime, timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def build_schedule() -> dg.ScheduleDefinition:
    s = load_settings()

    @dg.schedule(
        name="nightly",
        job=crm_job,
        cron_schedule=s.schedule_cron,
        execution_timezone=s.timezone,
        description=(
            f"Nightly run ({s.schedule_cron} in {s.timezone}; CRM_SCHEDULE_CRON / CRM_TIMEZONE) "
            "as of the day before the tick (a late run still builds the intended day)."
        ),
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time or datetime.now().astimezone()
        return _request(_day_before(tick, s.timezone), "schedule")

    return nightly


@dg.sensor(
    job=crm_job,
    minimum_interval_seconds=60,
    description=(
        "Starts a run when the files in CRM_LANDING_DIR change (name, size or modification "
        "time); the cursor remembers the last fingerprint. The run is as of the day before "
        "the moment it was requested."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_landing_files(context: dg.SensorEvaluationContext):
    s = load_settings()
    fingerprint = landing_fingerprint(s.landing_dir)
    if not s.landing_dir.is_dir() or fingerprint == context.cursor:
        return dg.SkipReason(f"no new files in {s.landing_dir}")
    context.update_cursor(fingerprint)
    return _request(_day_before(datetime.now().astimezone(), s.timezone), "sensor", fingerprint)
