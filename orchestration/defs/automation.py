"""The main job, the nightly schedule and the new-landing-files sensor.

Every run carries the tags `crm/as_of`, `crm/warehouse`, `crm/landing` and
`crm/trigger`; the run queue in dagster.yaml allows one run per warehouse at a
time, so a schedule or sensor run waits for a run in progress instead of failing.
"""

import json
import time
from datetime import date, datetime, timedelta

import dagster as dg

from orchestration.lib.landing_batch import read_batch
from orchestration.lib.run_events import instance_events, verdict
from orchestration.lib.run_guard import run_in_progress
from orchestration.lib.warehouse import WarehouseBusyError, published_fingerprint
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
    s = load_settings(as_of=as_of)
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


#: Run statuses that mean "this batch is being handled": do not request another run.
_IN_FLIGHT = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
}
_KILLED = "the process was killed before it finished (found by the sensor)"
#: A STARTED run is taken for killed only when nobody holds the warehouse AND it has
#: logged nothing for this long (a live run releases the lock just before it ends).
_SILENT_SECONDS = 600
#: A batch whose runs failed for transient reasons this many times is not requested again.
_MAX_ATTEMPTS = 3
_TRANSIENT = ("another run is using", "open in another program", "process was killed")


@dg.sensor(
    job=crm_job,
    minimum_interval_seconds=60,
    description=(
        "Starts a run when a new, complete batch of landing files is ready: written last "
        "by the upstream export (a _READY marker, optionally a manifest with checksums and "
        "row counts) or unchanged for CRM_LANDING_SETTLE_SECONDS. Batches are identified by "
        "their content (SHA-256), so touching a file or switching the sensor on starts no "
        "run unless the files differ from those of the last published run. One batch, one "
        "run; a run that failed because the warehouse was busy is requested again."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_landing_files(context: dg.SensorEvaluationContext):
    s = load_settings()
    state = json.loads(context.cursor) if context.cursor else {}
    cache: dict[str, str] = state.get("hashes", {})
    batch = read_batch(
        s.landing_dir, settle_seconds=s.landing_settle_seconds, now=time.time(), hash_cache=cache
    )
    context.update_cursor(json.dumps({"hashes": cache}, sort_keys=True))
    if not batch.ready or batch.fingerprint is None:
        return dg.SkipReason(batch.reason)
    fp = batch.fingerprint
    try:
        published = published_fingerprint(s.warehouse)
    except WarehouseBusyError:
        return dg.SkipReason("the warehouse is busy; looking again at the next tick")
    if published == fp:
        return dg.SkipReason(f"batch {fp[:12]} is the one already published; nothing new")
    batch_runs = dg.RunsFilter(
        tags={"crm/landing_fingerprint": fp, "crm/warehouse": str(s.warehouse)}
    )
    runs = context.instance.get_runs(filters=batch_runs)
    orphans = [
        r
        for r in runs
        if r.status == dg.DagsterRunStatus.STARTED
        and _silent_for(context.instance, r.run_id) > _SILENT_SECONDS
    ]
    if orphans and not run_in_progress(s.warehouse):
        # STARTED, but no process holds the warehouse: the run's process was killed
        for r in orphans:
            context.instance.report_run_failed(r, message=_KILLED)
        runs = context.instance.get_runs(filters=batch_runs)
    if any(r.status in _IN_FLIGHT for r in runs):
        return dg.SkipReason(f"a run for batch {fp[:12]} is queued or running")
    last = runs[0] if runs else None  # newest first
    if last is not None and last.status in {
        dg.DagsterRunStatus.CANCELED,
        dg.DagsterRunStatus.CANCELING,
    }:
        return dg.SkipReason(
            f"the run for batch {fp[:12]} ({last.run_id[:8]}) was cancelled; land a new batch "
            "or start a run by hand"
        )
    if len(runs) >= _MAX_ATTEMPTS:
        return dg.SkipReason(
            f"batch {fp[:12]} was tried {len(runs)} times without success; start a run by hand"
        )
    if last is not None and last.status == dg.DagsterRunStatus.FAILURE:
        why = _failure_message(context.instance, last.run_id)
        if not any(t in why for t in _TRANSIENT):
            return dg.SkipReason(
                f"the last run for batch {fp[:12]} ({last.run_id[:8]}) failed: {why[:200]}; "
                "fix the input and land a new batch, or run it by hand"
            )
    as_of = _day_before(datetime.now().astimezone(), s.timezone)
    return _request(
        as_of, "sensor", run_key=f"{fp[:16]}-{len(runs)}",
        extra_tags={"crm/landing_fingerprint": fp},
    )  # fmt: skip


def _silent_for(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds since the run last logged anything."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.update_timestamp is None:
        return float("inf")
    return time.time() - record.update_timestamp.timestamp()


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    return verdict(instance_events(instance, run_id)).failure or "unknown reason"
