"""Model: fit, backtest and gate the CLV/churn models, then publish customer scores.

Wiring only: the maths is in `ml/`, the storage in `orchestration.lib.model_store`.
`clv_model` fits and backtests every run and evaluates the gates as blocking
asset checks; `customer_scores` runs only when every gate passed, so a model
that did not converge or predicts worse than the naive rule never replaces the
last good scores.
"""

import base64
import dataclasses
import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from ml import backtest as bt
from ml import forecast, model_card, plots, purchase_models, scoring, spend_model, tracking
from ml import histogram as hist
from ml.errors import ModelError
from ml.fitting import parameter_problem
from ml.histogram import DataSummary
from ml.purchase_models import PurchaseModel
from ml.spend_model import FittedSpendModel
from orchestration.defs.resources import PipelineSettings
from orchestration.errors import CrmError
from orchestration.lib import model_store as store
from orchestration.lib.files import write_atomic
from orchestration.lib.holdback import relative_change
from orchestration.lib.playbook import load_playbook
from orchestration.lib.warehouse import markdown_table, open_warehouse

CHECK_CONVERGED = "model_converged"
CHECK_FINITE = "parameters_finite"
CHECK_BASELINE = "backtest_beats_baseline"
CHECK_DRIFT = "parameters_stable"

MODEL_CHECKS = [
    dg.AssetCheckSpec(
        CHECK_CONVERGED,
        asset="clv_model",
        blocking=True,
        description="A purchase model and the Gamma-Gamma spend model converged "
        "(or the data guard explains why the model was skipped).",
    ),
    dg.AssetCheckSpec(
        CHECK_FINITE,
        asset="clv_model",
        blocking=True,
        description="Every fitted parameter is finite and positive.",
    ),
    dg.AssetCheckSpec(
        CHECK_BASELINE,
        asset="clv_model",
        blocking=True,
        description="On the backtest, the selected model's loss (per-customer, aggregate and "
        "weekly tracking error) is not worse than the naive rate's or the recency-frequency "
        "rule's; otherwise it is not published.",
    ),
    dg.AssetCheckSpec(
        CHECK_DRIFT,
        asset="clv_model",
        blocking=False,
        description="Warns when a parameter of the selected model moved more than "
        "CRM_MAX_PARAMETER_CHANGE (default 50%) from the last published run; the exports "
        "are then held back (check model_parameters_stable on campaign_exports).",
    ),
]


def _img(png: bytes) -> str:
    return f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})"


def _model_asset(**kwargs: Any) -> Any:
    """`dg.asset` in the model group, computed in Python on the DuckDB warehouse."""
    return dg.asset(group_name="model", kinds={"python", "duckdb"}, **kwargs)


def _fit_rows(
    models: Mapping[str, PurchaseModel],
    stage: str,
    result: bt.BacktestResult,
    data: DataSummary,
) -> list[store.RunRow]:
    """One model.clv_model_runs row per purchase model fitted at `stage`."""
    return [
        store.RunRow(
            model=k, stage=stage, params=m.params, selected=k == result.selected,
            penalizer=m.penalizer, log_likelihood=m.log_likelihood, customers=m.customers,
            repeat_customers=data.repeat_customers, histogram_rows=data.histogram_rows,
            metrics=result.metrics[k].__dict__ if k in result.metrics else None,
        )
        for k, m in models.items()
    ]  # fmt: skip


def _skipped(context, s, reason: str):
    """Data guard (too little data for the model): record the skip and warn.

    The checks fail with WARN severity, so the run goes on: RFM, lifecycle and every
    list that needs no model scores are published; lists ranked or filtered on scores
    are not built (campaign_exclusions says why) and no stale scores are used.
    """
    with open_warehouse(s) as con:
        store.record_runs(
            con, run_id=context.run_id, model_version="", as_of=s.as_of,
            time_unit=s.time_unit, holdout_days=s.holdout_days,
            rows=[store.RunRow(model="bgnbd", stage="final", params={})],
            status="skipped", status_reason=reason, baseline=None,
        )  # fmt: skip
    context.log.warning(f"CLV model skipped: {reason}")
    fail = {"reason": reason}
    yield dg.MaterializeResult(metadata={"status": "skipped", "reason": reason})
    for name in (CHECK_CONVERGED, CHECK_FINITE, CHECK_BASELINE):
        yield dg.AssetCheckResult(
            check_name=name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"model skipped: {reason}",
            metadata=fail,
        )
    yield dg.AssetCheckResult(check_name=CHECK_DRIFT, passed=True, description="model skipped")


@_model_asset(
    deps=["customer_features", "customer_features_backtest", "repeat_purchases_weekly"],
    check_specs=MODEL_CHECKS,
    description=(
        "Fits BG/NBD, Pareto/NBD and MBG/NBD (on the weighted histogram of (frequency, "
        "recency, T)) and Gamma-Gamma. Backtests every candidate at up to 3 forecast origins "
        "(holdout a quarter of the history, at most CRM_HOLDOUT_DAYS), keeps BG/NBD unless a "
        "challenger is better beyond the bootstrap noise, gates on two baselines, refits on "
        "all data up to the as-of date, and writes models/<version>/ (params.json, "
        "model_card.md, plots) and model.clv_model_runs."
    ),
)
def clv_model(context: dg.AssetExecutionContext, crm: PipelineSettings):
    s = crm.settings()
    unit = s.time_unit
    with open_warehouse(s, read_only=True) as con:
        features = store.read_features(con)
        weekly = store.read_weekly_repeat_purchases(con)
        cutoffs, holdout_weekly, sample = store.read_backtest(con)
    if sample.max_customers != s.backtest_max_customers:
        context.log.warning(
            f"the backtest tables were built with CRM_BACKTEST_MAX_CUSTOMERS="
            f"{sample.max_customers:,}, not {s.backtest_max_customers:,}: materialize "
            "crm_dbt_models again to use the new cap"
        )
    # the newest forecast origin's cohort: enough data there, or no backtest
    origins = cutoffs[cutoffs["is_origin"]]
    calibration = origins[origins["cutoff_number"] == origins["cutoff_number"].min()]
    try:
        summary = purchase_models.check_fit_data(
            features, s.min_customers, s.min_repeat_customers, time_unit=unit
        )
        purchase_models.check_fit_data(
            calibration, s.min_customers, s.min_repeat_customers, time_unit=unit
        )
    except ModelError as exc:
        yield from _skipped(context, s, f"{exc} (backtest cohort: {len(calibration):,} customers)")
        return

    context.log.info(
        f"backtest: {origins['cutoff_date'].nunique()} origin(s), {len(calibration):,} "
        f"customers at the newest, holdout {int(calibration['holdout_days'].iloc[0])} days, "
        f"unit {unit}, on {sample.describe()}"
    )
    result = bt.backtest(cutoffs, holdout_weekly, purchase_models.MODEL_NAMES, unit)
    context.log.info(result.selection_reason)
    model_hist = hist.histogram(hist.to_model_units(features, unit))
    final, failures = purchase_models.fit_many(model_hist, list(result.fitted), unit, True)
    if result.selected not in final:
        raise CrmError(
            f"the selected model {result.selected} did not converge on the full data: "
            f"{failures.get(result.selected, 'unknown error')}; the last good scores stay"
        )
    try:
        spend = spend_model.fit_spend_model(features)
    except ModelError as exc:
        yield from _skipped(context, s, f"Gamma-Gamma spend model: {exc}")
        return

    version = f"{s.as_of.isoformat()}_{context.run_id[:8]}"
    try:  # parameter uncertainty of the published model, for the lists' forecast intervals
        covariance = forecast.covariance_to_json(
            type(final[result.selected]).param_names,
            forecast.log_parameter_covariance(final[result.selected], model_hist),
        )
    except ModelError as exc:
        context.log.warning(f"forecast intervals without parameter uncertainty: {exc}")
        covariance = None
    calibration_end = date.fromisoformat(result.cutoff)
    selected = final[result.selected]
    beats = bt.beats_baseline(result)
    finite = parameter_problem(selected.params | spend.params) is None
    status = "ok" if beats and finite else "failed-gate"
    reason = result.selection_reason

    # --- artifacts: models/<version>/
    folder = s.models_dir / version
    card = model_card.render_model_card(
        result, spend, as_of=s.as_of, data_summary=summary, final_models=final,
        model_version=version, discount_rate_monthly=s.discount_rate_monthly,
        backtest_sample=sample.describe(),
    )  # fmt: skip
    pngs = {
        "decile_lift.png": plots.plot_decile_lift(result),
        "p_alive_matrix.png": plots.plot_p_alive_matrix(
            selected,
            max_frequency=int(max(10, features["frequency"].quantile(0.99))),
            max_recency=int(max(10, hist.to_model_units(features, unit)["T"].quantile(0.99))),
        ),
        "holdout_by_frequency.png": plots.plot_holdout_by_frequency(result),
        "weekly_tracking.png": plots.plot_tracking(
            tracking.tracking_series(
                result.fitted[result.selected],
                pd.Timestamp(calibration_end) - pd.to_timedelta(calibration["T"], unit="D"),
                weekly,
                start=(calibration_end - timedelta(days=int(calibration["T"].max()))),
                end=s.as_of,
            ),
            calibration_end,
            selected.label,
        ),
    }
    params_doc = {
        "model_version": version,
        "run_id": context.run_id,
        "as_of": s.as_of.isoformat(),
        "time_unit": unit,
        "holdout_days": result.holdout_days,
        "backtest_origins": result.decision.origins,
        "backtest_sample": dataclasses.asdict(sample),
        "decision": dataclasses.asdict(result.decision),
        "calibration": result.calibration_table.to_dict(orient="records"),
        "aggregate_bias_pct": result.metrics[result.selected].aggregate_error_pct,
        "selected": result.selected,
        "selection_reason": reason,
        "status": status,
        "purchase_models": {k: m.to_dict() for k, m in final.items()},
        "calibration_models": {k: m.to_dict() for k, m in result.fitted.items()},
        "spend_model": spend.to_dict(),
        "parameter_covariance": covariance,
        "failures": {**result.failures, **failures},
    }
    write_atomic(folder / "params.json", json.dumps(params_doc, indent=2) + "\n")
    write_atomic(folder / "model_card.md", card)
    for name, png in pngs.items():
        write_atomic(folder / name, png)
    metrics = result.metrics_table()
    metrics.to_csv(folder / "backtest_metrics.csv", index=False)

    # --- history: model.clv_model_runs
    rows = [
        *_fit_rows(result.fitted, "calibration", result, result.calibration),
        *_fit_rows(final, "final", result, summary),
        store.RunRow(
            model="gamma_gamma", stage="final", params=spend.params, selected=True,
            penalizer=spend.penalizer, log_likelihood=spend.log_likelihood,
            customers=spend.customers, frequency_spend_corr=spend.frequency_spend_corr,
        ),
    ]  # fmt: skip
    with open_warehouse(s) as con:
        previous = store.previous_published(con, result.selected, context.run_id)
        store.record_runs(
            con, run_id=context.run_id, model_version=version, as_of=s.as_of, time_unit=unit,
            holdout_days=int(result.holdout_days), rows=rows, status=status,
            status_reason=reason,
            baseline=result.baseline.__dict__,
        )  # fmt: skip

    yield dg.MaterializeResult(
        metadata={
            "model_version": version,
            "selected": result.selected,
            "selection_reason": reason,
            "default_model": result.decision.default,
            "challenger": result.decision.challenger or "",
            "margin": dg.MetadataValue.float(round(result.decision.margin, 6)),
            "confidence": dg.MetadataValue.float(round(result.decision.confidence, 4))
            if result.decision.challenger
            else dg.MetadataValue.float(float("nan")),
            "backtest_origins": result.decision.origins,
            "backtest_customers": sample.describe(),
            "holdout_days": int(result.holdout_days),
            "calibration": dg.MetadataValue.md(markdown_table(result.calibration_table)),
            "aggregate_bias_pct": dg.MetadataValue.float(
                round(result.metrics[result.selected].aggregate_error_pct, 3)
            ),
            "status": status,
            "customers": summary.customers,
            "repeat_customers": summary.repeat_customers,
            "histogram_rows": summary.histogram_rows,
            "params": dg.MetadataValue.json(params_doc["purchase_models"]),
            "gamma_gamma": dg.MetadataValue.json(spend.to_dict()),
            "frequency_spend_corr": float(spend.frequency_spend_corr),
            "backtest": dg.MetadataValue.md(markdown_table(metrics)),
            "decile_lift": dg.MetadataValue.md(_img(pngs["decile_lift.png"])),
            "p_alive_matrix": dg.MetadataValue.md(_img(pngs["p_alive_matrix.png"])),
            "holdout_by_frequency": dg.MetadataValue.md(_img(pngs["holdout_by_frequency.png"])),
            "weekly_tracking": dg.MetadataValue.md(_img(pngs["weekly_tracking.png"])),
            "model_card": dg.MetadataValue.path(str(folder / "model_card.md")),
            "params_file": dg.MetadataValue.path(str(folder / "params.json")),
        }
    )
    yield dg.AssetCheckResult(
        check_name=CHECK_CONVERGED,
        passed=True,
        description=f"{len(final)} purchase model(s) and Gamma-Gamma converged",
        metadata={"failures": dg.MetadataValue.json(params_doc["failures"])},
    )
    yield dg.AssetCheckResult(
        check_name=CHECK_FINITE,
        passed=finite,
        metadata={"params": dg.MetadataValue.json(selected.params | spend.params)},
    )
    yield dg.AssetCheckResult(
        check_name=CHECK_BASELINE,
        passed=beats,
        description=reason,
        metadata={
            "model_loss": float(result.metrics[result.selected].loss),
            **{f"{b.name}_loss": float(b.loss) for b in result.baselines},
        },
    )
    drift = relative_change(selected.params, previous) if previous else {}
    worst = max(drift.values(), default=0.0)
    yield dg.AssetCheckResult(
        check_name=CHECK_DRIFT,
        passed=worst <= s.max_parameter_change,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no previous published run"
            if previous is None
            else f"largest relative parameter change {worst:.1%} vs the last published run"
        ),
        metadata={"relative_change": dg.MetadataValue.json(drift)},
    )


@_model_asset(
    deps=[clv_model],
    description=(
        "One row per customer with a purchase: P(alive), probability of a purchase in the next "
        "60/90 days, expected purchases in 30/90/365 days, expected order value (Gamma-Gamma), "
        "discounted 12-month CLV, net value (minus acquisition cost), churn-risk band, value "
        "tier and the model version. Published (model.customer_scores) only when every "
        "blocking model check passed."
    ),
)
def customer_scores(context: dg.AssetExecutionContext, crm: PipelineSettings):
    s = crm.settings()
    # the model comes from clv_model's artifact (models/<version>/params.json), named by
    # its latest materialization: this run's, or the last one when scores run alone
    # the settings' horizons and every playbook list's (its churn odds and forecast)
    lists = load_playbook(s.playbook).lists
    horizons = (*s.score_horizons, *(cl.horizon_days for cl in lists))
    doc = store.published_model_doc(context.instance, s.models_dir)
    if doc is None:
        # the model was skipped (thin data): publish no scores; lists needing them are not built
        context.log.warning("no CLV model for this run (skipped); no scores were written")
        with open_warehouse(s) as con:
            store.ensure_scores_table(con, horizons)
            # scores of this day from an earlier run are not this run's: lists needing
            # scores are not built on them (later days' scores are not touched)
            con.execute(f"delete from {store.SCORES_TABLE} where as_of_date = ?", [s.as_of])
        return dg.MaterializeResult(metadata={"skipped": True, "dagster/row_count": 0})
    purchase = PurchaseModel.from_dict(doc["purchase_models"][doc["selected"]])
    spend = FittedSpendModel.from_dict(doc["spend_model"])
    version = str(doc["model_version"])
    with open_warehouse(s, read_only=True) as con:
        features = store.read_features(con)
    scores = scoring.score_customers(
        features, purchase, spend, time_unit=doc["time_unit"],
        discount_rate_monthly=s.discount_rate_monthly, model_version=version,
        horizons=horizons,
    )  # fmt: skip
    scores.insert(1, "as_of_date", s.as_of)
    with open_warehouse(s) as con:
        store.write_scores(con, scores)
        store.mark_published(con, str(doc["run_id"]))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "model_version": version,
            "model": purchase.name,
            "churn_risk": dg.MetadataValue.json(
                {str(k): int(v) for k, v in scores["churn_risk"].value_counts().items()}
            ),
            "value_tier": dg.MetadataValue.json(
                {str(k): int(v) for k, v in scores["value_tier"].value_counts().items()}
            ),
            "total_predicted_clv_12m": float(scores["predicted_clv_12m"].sum()),
            "mean_p_purchase_90d": float(scores["p_purchase_90d"].mean()),
            "preview": dg.MetadataValue.md(markdown_table(scores.head(10))),
        }
    )
