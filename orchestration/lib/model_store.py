"""Where fitted models live: `models/<version>/` folders and the `model` schema tables.

Model maths is in `ml/`; this module only reads features from the warehouse
and writes artifacts, so the Dagster assets stay thin.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from orchestration.errors import CrmError
from orchestration.lib.files import write_atomic
from orchestration.lib.warehouse import finite_float, table_exists

RUNS_TABLE = "model.clv_model_runs"
SCORES_TABLE = "model.customer_scores"
LATEST_FILE = "LATEST"

RUNS_DDL = f"""
create schema if not exists model;
create table if not exists {RUNS_TABLE} (
    run_id varchar,
    model_version varchar,
    as_of date,
    created_at timestamp,
    model varchar,
    stage varchar,            -- 'calibration' (backtest fit) or 'final' (fit on all data)
    time_unit varchar,
    params json,
    selected boolean,
    published boolean,
    status varchar,           -- ok / skipped / failed-gate
    status_reason varchar,
    penalizer double,
    log_likelihood double,
    customers bigint,
    repeat_customers bigint,
    histogram_rows bigint,
    holdout_days integer,
    bt_rmse double,
    bt_mae double,
    bt_aggregate_error_pct double,
    bt_correlation double,
    bt_brier double,
    bt_top_decile_share double,
    baseline_rmse double,
    baseline_mae double,
    baseline_brier double,
    frequency_spend_corr double
);
"""


def read_features(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per-customer features as of the as-of date (the final fit and the scores)."""
    return con.sql(
        'select member_id, frequency, recency, "T", monetary_value, acquisition_cost '
        "from marts.customer_features order by member_id"
    ).df()


SAMPLE_TABLE = "intermediate.int_backtest_sample_derived"


@dataclass(frozen=True)
class BacktestSample:
    """Which customers the backtest used: every one, or a hash sample of them
    (intermediate.int_backtest_sample_derived, CRM_BACKTEST_MAX_CUSTOMERS).

    ``cohort`` is the largest cut-off's customers, ``customers`` how many of them the
    sample kept (``cohort`` when not sampled)."""

    cohort: int
    customers: int
    share: float
    #: the cap dbt built the sample with (CRM_BACKTEST_MAX_CUSTOMERS of that dbt run)
    max_customers: int

    @property
    def sampled(self) -> bool:
        return self.share < 1.0

    def describe(self) -> str:
        if not self.sampled:
            return f"every customer ({self.cohort:,} at the largest cut-off)"
        return (
            f"a {self.share:.1%} sample of the customers ({self.customers:,} of {self.cohort:,} "
            "at the largest cut-off, the same customers at every cut-off, chosen by a hash of "
            "member_id; CRM_BACKTEST_MAX_CUSTOMERS)"
        )


def read_backtest(
    con: duckdb.DuckDBPyConnection,
) -> tuple[pd.DataFrame, pd.DataFrame, BacktestSample]:
    """The backtest data (every cut-off's rows and their holdout purchases per week) and
    which customers dbt put in it (every one, or a hash sample of a large shop's)."""
    if not table_exists(con, SAMPLE_TABLE):
        raise CrmError(
            f"{SAMPLE_TABLE} is missing: the warehouse was built by an older version; "
            "run the whole pipeline (crm run, or materialize crm_dbt_models first)"
        )
    cohort, share, cap = con.execute(
        f"select cohort_customers, share, max_customers from {SAMPLE_TABLE}"
    ).fetchall()[0]  # one row, always
    cutoffs = con.sql(
        "select cutoff_date, cutoff_number, is_origin, member_id, frequency, recency, "
        '"T", monetary_value, holdout_frequency, holdout_monetary, holdout_days '
        "from marts.customer_features_backtest order by cutoff_number, member_id"
    ).df()
    weekly = con.sql(
        "select cutoff_date, member_id, holdout_week, purchases from marts.backtest_holdout_weekly"
    ).df()
    kept = int(cutoffs.groupby("cutoff_number").size().max()) if len(cutoffs) else 0
    sample = BacktestSample(int(cohort), kept if share < 1.0 else int(cohort), share, int(cap))
    return cutoffs, weekly, sample


def read_weekly_repeat_purchases(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.sql("select week_start, repeat_purchases from marts.repeat_purchases_weekly").df()


@dataclass
class RunRow:
    model: str
    stage: str
    params: dict[str, float]
    selected: bool = False
    penalizer: float | None = None
    log_likelihood: float | None = None
    customers: int | None = None
    repeat_customers: int | None = None
    histogram_rows: int | None = None
    metrics: dict[str, float] | None = None
    frequency_spend_corr: float | None = None


def record_runs(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    model_version: str,
    as_of: date,
    time_unit: str,
    holdout_days: int,
    rows: list[RunRow],
    status: str,
    status_reason: str,
    baseline: dict[str, float] | None,
) -> None:
    """Append one row per fitted model to model.clv_model_runs (history across runs)."""
    con.execute(RUNS_DDL)
    con.execute(f"delete from {RUNS_TABLE} where run_id = ?", [run_id])
    now = datetime.now(UTC).replace(tzinfo=None)
    base = baseline or {}
    records = []
    for r in rows:
        m = r.metrics or {}
        records.append(
            [
                run_id, model_version, as_of, now, r.model, r.stage, time_unit,
                json.dumps(r.params, sort_keys=True), r.selected, False, status, status_reason,
                finite_float(r.penalizer), finite_float(r.log_likelihood), r.customers,
                r.repeat_customers, r.histogram_rows, holdout_days,
                *(finite_float(m.get(k)) for k in (
                    "rmse", "mae", "aggregate_error_pct", "correlation", "brier",
                    "top_decile_share",
                )),
                *(finite_float(base.get(k)) for k in ("rmse", "mae", "brier")),
                finite_float(r.frequency_spend_corr),
            ]
        )  # fmt: skip
    if records:
        placeholders = ", ".join(["?"] * len(records[0]))
        con.executemany(f"insert into {RUNS_TABLE} values ({placeholders})", records)


def previous_published(con: duckdb.DuckDBPyConnection, model: str, run_id: str) -> dict | None:
    """Parameters of the last published final fit of `model` before this run."""
    if not table_exists(con, RUNS_TABLE):
        return None
    rows = con.execute(
        f"select params from {RUNS_TABLE} where model = ? and stage = 'final' and published "
        "and run_id != ? order by created_at desc limit 1",
        [model, run_id],
    ).fetchall()
    return json.loads(rows[0][0]) if rows else None


def mark_published(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    con.execute(f"update {RUNS_TABLE} set published = true where run_id = ?", [run_id])


def ensure_scores_table(con: duckdb.DuckDBPyConnection, horizons: tuple[int, ...]) -> None:
    """A model.customer_scores with a column for each horizon (an empty one when none was
    ever written, e.g. a thin shop's first run): the campaign models read it, and find no
    scores for the as-of date."""
    from ml.scoring import score_columns

    text = {"member_id", "churn_risk", "value_tier", "model", "model_version"}
    columns = [c for c in score_columns(horizons) if c != "member_id"]
    con.execute("create schema if not exists model")
    con.execute(
        f"create table if not exists {SCORES_TABLE} (member_id varchar, as_of_date date, "
        + ", ".join(f"{c} {'varchar' if c in text else 'double'}" for c in columns)
        + ")"
    )
    for c in columns:  # a horizon added to the settings or the playbook since
        con.execute(
            f"alter table {SCORES_TABLE} add column if not exists {c} "
            f"{'varchar' if c in text else 'double'}"
        )


def write_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> None:
    """Replace model.customer_scores in one statement (readers never see half a table)."""
    con.execute("create schema if not exists model")
    con.register("_scores_df", scores)
    try:
        con.execute(f"create or replace table {SCORES_TABLE} as select * from _scores_df")
    finally:
        con.unregister("_scores_df")


def set_latest(models_dir: Path, model_version: str) -> None:
    """Point models/LATEST at the version whose scores were published.

    Called after a run's warehouse copy is published (see orchestration.defs.resources),
    so a run that fails after scoring never moves it.
    """
    write_atomic(models_dir / LATEST_FILE, model_version + "\n")


def apply_retention(models_dir: Path, keep_days: int, today: date) -> list[str]:
    """Delete model folders (`<as-of>_<run>`) more than `keep_days` before `today`; the
    version models/LATEST names is always kept. Returns the deleted folder names."""
    if not models_dir.is_dir():
        return []
    latest_file = models_dir / LATEST_FILE
    latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.exists() else ""
    keep_from = today - timedelta(days=keep_days)
    deleted = []
    for folder in sorted(models_dir.iterdir()):
        try:
            day = date.fromisoformat(folder.name[:10])
        except ValueError:
            continue
        is_version = folder.is_dir() and folder.name[10:11] == "_"
        if is_version and day < keep_from and folder.name != latest:
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder.name)
    return deleted


def published_model_doc(instance: Any, models_dir: Path) -> dict[str, Any] | None:
    """The fitted models (models/<version>/params.json) named by clv_model's latest
    materialization; None when it was skipped (thin data) or never ran. A model that
    failed a gate is never used: then the published one (models/LATEST) is."""
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey("clv_model"))
    materialization = event.asset_materialization if event else None
    metadata = materialization.metadata if materialization else {}
    if "params_file" not in metadata:
        return None
    doc = json.loads(Path(str(metadata["params_file"].value)).read_text(encoding="utf-8"))
    if doc.get("status") == "ok":
        return doc
    latest = models_dir / LATEST_FILE
    published = models_dir / latest.read_text().strip() / "params.json" if latest.exists() else None
    if published is None or not published.exists():
        return None
    return json.loads(published.read_text(encoding="utf-8"))


def read_list_members(con: duckdb.DuckDBPyConnection, list_name: str | None = None) -> pd.DataFrame:
    """The send rows of the lists (or one list) with the model inputs of each member."""
    where = "and t.list_name = ?" if list_name else ""
    return con.execute(
        'select t.list_name, t.priority_group, f.frequency, f.recency, f."T", '
        "s.expected_order_value "
        "from marts.campaign_targets as t "
        "join marts.customer_features as f using (member_id) "
        f"join {SCORES_TABLE} as s using (member_id) "
        f"where not t.is_control {where} order by t.list_name, t.list_rank",
        [list_name] if list_name else [],
    ).df()
