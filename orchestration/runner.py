"""Run the Dagster job in-process (used by `crm run`, tests and benchmarks)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from orchestration.errors import CrmError
from orchestration.lib.landing import ORDERS, find_files
from orchestration.lib.run_events import verdict
from orchestration.lib.run_guard import release_turn, wait_for_turn
from orchestration.lib.summary import build_summary, kept_summary
from orchestration.lib.warehouse import connect
from orchestration.settings import Settings, load_settings, run_tags


@dataclass
class RunOutcome:
    success: bool
    run_id: str
    summary: str
    failure: str | None = None
    hint: str | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    busy: bool = False  # refused because the warehouse is in use (exit code 75)
    details: str = ""  # the failing step's traceback (shown with --debug)


class _ProgressHandler(logging.Handler):
    """Prints one line per step start/end and per failed check, from Dagster's events."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__(level=logging.DEBUG)
        self._emit = emit
        self._started: dict[str, float] = {}
        self.step_seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        step = event.step_key or ""
        kind = event.event_type_value
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
            self._emit(f"  ▶ {step}")
        elif kind in {"STEP_SUCCESS", "STEP_FAILURE"}:
            took = time.monotonic() - self._started.get(step, time.monotonic())
            self.step_seconds[step] = took
            mark = "✓" if kind == "STEP_SUCCESS" else "✗"
            self._emit(f"  {mark} {step} ({took:.1f}s)")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            evaluation = getattr(data, "asset_check_evaluation", data)
            if evaluation is not None and not evaluation.passed:
                key = evaluation.asset_check_key
                sev = getattr(evaluation.severity, "value", "ERROR")
                self._emit(f"    ! check {key.asset_key.to_user_string()}:{key.name} {sev}")


def _progress_logger(handler: _ProgressHandler) -> dg.LoggerDefinition:
    @dg.logger(description="crm CLI progress lines")
    def progress(_init_context):
        log = logging.getLogger("crm.progress")
        log.handlers = [handler]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log

    return progress


def _run_notes(result: dg.ExecuteInProcessResult) -> list[str]:
    """Lines for the summary from this run's own materializations (e.g. export retention)."""
    notes = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey("campaign_exports"):
            deleted = mat.metadata.get("retention_deleted")
            if deleted is not None and deleted.value:
                notes.append(f"retention: deleted {deleted.value} export folder(s) past the limit")
    return notes


def run_pipeline(
    progress: Callable[[str], None] | None = None,
    groups: list[str] | None = None,
    wait: bool = True,
    settings: Settings | None = None,
) -> RunOutcome:
    """Materialize the job (or only the asset groups given, e.g. ["ingest", "transform"]).

    `settings` (default: read now) is this run's, as-of included, handed to every step
    through the run config."""
    s = settings or load_settings()
    s.ensure_dagster_home()
    if not groups or "ingest" in groups:
        find_files(s.landing_dir, ORDERS)  # a missing landing folder or orders file: say so now
    # Runs on one warehouse queue: wait for a run in progress (or refuse with wait=False),
    # and fail now, with the reason, if another program holds the warehouse file.
    wait_for_turn(s.warehouse, wait=wait, notify=progress)
    try:
        if s.warehouse.exists():
            # a reader (a portal page, a UI query) holds it for moments: wait a few seconds;
            # a program that keeps it open (a BI tool) still stops the run, with its name
            with connect(s.warehouse, wait_seconds=5, memory_limit=s.duckdb_memory_limit):
                pass
        return _execute(s, progress, groups)
    finally:
        release_turn(s.warehouse)


def run_config(s: Settings) -> dict[str, object]:
    """The `crm` resource's config for a run on these settings (what the launchpad shows)."""
    return {
        "as_of": s.as_of.isoformat(),
        "landing_dir": str(s.landing_dir),
        "warehouse": str(s.warehouse),
        "export_dir": str(s.export_dir),
        "models_dir": str(s.models_dir),
        "accept_input_change": s.accept_input_change,
        "rebuild_campaign_results": s.rebuild_campaign_results,
    }


def _execute(s: Settings, progress: Callable[[str], None] | None, groups: list[str] | None):
    from orchestration.defs.project import prepare_if_stale

    prepare_if_stale()  # dbt's manifest in step with the SQL before the definitions load
    from orchestration.definitions import defs

    out = sys.stdout  # progress goes to the terminal even while dbt's output is captured
    handler = _ProgressHandler(
        (lambda line: print(line, file=out, flush=True)) if progress else (lambda _line: None)
    )
    asset_selection = None
    if groups:
        graph = defs.resolve_asset_graph()
        known = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
        if unknown := sorted(set(groups) - known):
            raise CrmError(f"unknown asset group(s) {unknown}; choose from {sorted(known)}")
        asset_selection = sorted(dg.AssetSelection.groups(*groups).resolve(graph))
    job = defs.resolve_job_def("crm_job").with_logger_defs({"progress": _progress_logger(handler)})
    if progress:
        progress(f"crm run as of {s.as_of}: landing {s.landing_dir}, warehouse {s.warehouse}")
    # dbt's own log lines go to the run's captured logs (UI), not the terminal.
    sink = io.StringIO()
    instance = dg.DagsterInstance.from_config(str(s.dagster_home))
    with instance, contextlib.redirect_stdout(sink):
        result = job.execute_in_process(
            instance=instance,
            # the as-of is fixed here, once, and handed to every step (and the run's tags)
            run_config={
                "loggers": {"progress": {}},
                "resources": {"crm": {"config": run_config(s)}},
            },
            raise_on_error=False,
            asset_selection=asset_selection,
            tags={**run_tags(s), "crm/trigger": "cli"},
        )
    if result.success:
        summary = build_summary(s, notes=_run_notes(result))
        return RunOutcome(True, result.run_id, summary, step_seconds=handler.step_seconds)
    v = verdict(result.all_events)
    failure = v.failure if not v.completed and v.failure else "the run failed"
    hint = v.hint if not v.completed else "see the run in the Dagster UI (crm ui)"
    outcome = RunOutcome(False, result.run_id, kept_summary(s), failure, hint, handler.step_seconds)
    outcome.busy = "is open in another program" in failure or "another run is using" in failure
    outcome.details = v.details
    return outcome
