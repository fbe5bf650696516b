"""What a run's Dagster events say: did it reach its end, and if not, why — read the same
way for a run just executed in-process (`crm run`), by the run's own resource at teardown
(publish or not) and by the sensor (retry or not)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

#: Errors raised for bad input or a busy warehouse: their message is the reason to show.
_EXPECTED = {"CrmError", "WarehouseBusyError", "ModelError"}
_BUG_HINT = (
    "a bug rather than bad input; see the run in the Dagster UI (crm ui) or re-run with --debug"
)


@dataclass(frozen=True)
class Verdict:
    completed: bool  # every planned step succeeded and no blocking check failed
    failure: str | None = None  # one line: the first failed blocking check or step
    hint: str | None = None
    details: str = ""  # the failing step's traceback


def instance_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """A stored run's step and check events (and its run failure message, if any)."""
    records = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            dg.DagsterEventType.RUN_FAILURE,
        },
    )
    return [r.dagster_event for r in records if r.dagster_event is not None]


def planned_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    run = instance.get_run_by_id(run_id)
    if run is None or run.execution_plan_snapshot_id is None:
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return set(plan.step_keys_to_execute)


def verdict(events: Iterable[dg.DagsterEvent], planned: set[str] | None = None) -> Verdict:
    """Positive evidence of completion (with `planned`: all of it succeeded), else the
    first failed blocking check, else the first failed step, as one line and a hint."""
    succeeded: set[str] = set()
    check_failure = step_failure = run_failure = None
    for event in events:
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_SUCCESS:
            succeeded.add(event.step_key or "")
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and check_failure is None:
            ev = event.event_specific_data
            if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
                check_failure = ev
        elif kind == dg.DagsterEventType.STEP_FAILURE and step_failure is None:
            step_failure = event
        elif kind == dg.DagsterEventType.RUN_FAILURE and run_failure is None:
            run_failure = (event.message or "").strip()
    if check_failure is not None:
        key = check_failure.asset_check_key
        why = (check_failure.description or "").strip() or "check failed"
        return Verdict(
            False,
            f"{key.asset_key.to_user_string()}: check {key.name} failed: {why}",
            "nothing downstream was published; the last good outputs stay",
        )
    if step_failure is not None:
        return _step_verdict(step_failure)
    if run_failure:
        return Verdict(False, run_failure, "see the run in the Dagster UI (crm ui)")
    done = planned is None or (bool(planned) and planned <= succeeded)
    return Verdict(True) if done else Verdict(False, "the run did not finish", None)


def _step_verdict(event: dg.DagsterEvent) -> Verdict:
    error = event.step_failure_data.error
    details = error.to_string()
    innermost = error
    while error is not None:
        if error.cls_name in _EXPECTED:
            return Verdict(
                False, f"{event.step_key}: {error.message.split(': ', 1)[-1].strip()}", None,
                details,
            )  # fmt: skip
        innermost = error
        error = error.cause or getattr(error, "context", None)
    first_line = innermost.message.strip().splitlines()[0] if innermost.message else ""
    return Verdict(False, f"{event.step_key}: {first_line}", _BUG_HINT, details)
