"""Hold the lists back on suspicious input.

Before a run publishes new lists it checks that the input looks like the input of a
normal night: the newest order is recent, the landed orders did not shrink, and the
model's parameters did not jump. Each rule is a blocking asset check on
`campaign_exports`; when one fails the run publishes nothing (the previous lists
stay) and says why in one line. `crm run --accept-input-change`
(CRM_ACCEPT_INPUT_CHANGE=true) publishes anyway, for one run, and the checks say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from orchestration.lib.model_store import previous_published
from orchestration.lib.warehouse import table_exists
from orchestration.settings import Settings

FRESH = "input_is_fresh"
NOT_SHRUNK = "input_has_not_shrunk"
STABLE = "model_parameters_stable"
RULES = {
    FRESH: "the newest order is at most CRM_FRESHNESS_DAYS (default 2) before the as-of date",
    NOT_SHRUNK: "the landed orders fell by at most CRM_MAX_ROWS_DROP (default 20%) against the "
    "last published run",
    STABLE: "no parameter of the selected purchase model moved more than "
    "CRM_MAX_PARAMETER_CHANGE (default 50%) against the last published run",
}


@dataclass
class Verdict:
    name: str
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def evaluate(con: duckdb.DuckDBPyConnection, s: Settings, run_id: str) -> list[Verdict]:
    verdicts = [freshness(con, s), _shrinkage(con, s, run_id), _stability(con, s, run_id)]
    if s.accept_input_change:
        for v in verdicts:
            if not v.passed:
                v.passed = True
                v.description = f"accepted by --accept-input-change: {v.description}"
    return verdicts


def freshness(con: duckdb.DuckDBPyConnection, s: Settings) -> Verdict:
    """How far the newest order is behind the as-of date (also the WARN check on staging)."""
    latest = con.execute(
        "select max(order_date) from staging.stg_shop__orders where order_date <= ?", [s.as_of]
    ).fetchall()[0][0]
    if latest is None:
        return Verdict(FRESH, False, f"no order on or before the as-of date {s.as_of}")
    lag = (s.as_of - latest).days
    return Verdict(
        FRESH,
        lag <= s.freshness_days,
        f"newest order {latest} is {lag} day(s) before the as-of date {s.as_of} "
        f"(limit {s.freshness_days})",
        {"newest_order": str(latest), "days_behind": lag, "limit_days": s.freshness_days},
    )


def _shrinkage(con: duckdb.DuckDBPyConnection, s: Settings, run_id: str) -> Verdict:
    if not table_exists(con, "raw.landing_batches"):
        return Verdict(NOT_SHRUNK, True, "no landed batch recorded yet")
    rows = con.execute(
        "select run_id, orders_rows from raw.landing_batches order by loaded_at desc"
    ).fetchall()
    now = next((n for r, n in rows if r == run_id), None)
    before = next((n for r, n in rows if r != run_id), None)
    if now is None or not before:
        return Verdict(NOT_SHRUNK, True, "no earlier published run to compare with")
    drop = (before - now) / before
    return Verdict(
        NOT_SHRUNK,
        drop <= s.max_rows_drop,
        f"{now:,} order rows landed against {before:,} in the last published run "
        f"({-drop:+.1%}; limit -{s.max_rows_drop:.0%})",
        {"rows": now, "previous_rows": before, "change": round(-drop, 4)},
    )


def _stability(con: duckdb.DuckDBPyConnection, s: Settings, run_id: str) -> Verdict:
    if not table_exists(con, "model.clv_model_runs"):
        return Verdict(STABLE, True, "no model history yet")
    current = con.execute(
        "select model, params from model.clv_model_runs where run_id = ? and stage = 'final' "
        "and selected and model != 'gamma_gamma' and status = 'ok'",
        [run_id],
    ).fetchall()
    if not current:
        return Verdict(STABLE, True, "no model fitted in this run")
    model, params = current[0][0], json.loads(current[0][1])
    before = previous_published(con, model, run_id)
    if not before:
        return Verdict(STABLE, True, f"no earlier published {model} to compare with")
    change = relative_change(params, before)
    worst = max(change.values(), default=0.0)
    return Verdict(
        STABLE,
        worst <= s.max_parameter_change,
        f"largest change of a {model} parameter against the last published run: {worst:.0%} "
        f"(limit {s.max_parameter_change:.0%})",
        {"relative_change": {k: round(v, 4) for k, v in change.items()}},
    )


def relative_change(params: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """|new - old| / |old| per parameter present in both."""
    return {k: abs(v - before[k]) / abs(before[k]) for k, v in params.items() if before.get(k)}
