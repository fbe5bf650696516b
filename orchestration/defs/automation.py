"""The main job, the nightly schedule and the new-landing-files sensor."""

import dagster as dg

from orchestration.lib.landing import landing_fingerprint
from orchestration.settings import load_settings

crm_job = dg.define_asset_job(
    name="crm_job",
    selection=dg.AssetSelection.all(),
    description="Ingest the landing files and rebuild every table, score and list as of one date.",
    # DuckDB allows one writer: run the steps one after another in one process.
    executor_def=dg.in_process_executor,
)


def build_schedule() -> dg.ScheduleDefinition:
    s = load_settings()
    return dg.ScheduleDefinition(
        name="nightly",
        job=crm_job,
        cron_schedule=s.schedule_cron,
        execution_timezone=s.timezone,
        description=(
            f"Nightly run ({s.schedule_cron} in {s.timezone}; CRM_SCHEDULE_CRON / CRM_TIMEZONE). "
            "Computes everything as of yesterday."
        ),
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


@dg.sensor(
    job=crm_job,
    minimum_interval_seconds=60,
    description=(
        "Starts a run when the files in CRM_LANDING_DIR change (name, size or modification "
        "time); the cursor remembers the last fingerprint."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_landing_files(context: dg.SensorEvaluationContext):
    s = load_settings()
    fingerprint = landing_fingerprint(s.landing_dir)
    if not s.landing_dir.is_dir() or fingerprint == context.cursor:
        return dg.SkipReason(f"no new files in {s.landing_dir}")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint)
