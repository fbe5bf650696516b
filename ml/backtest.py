"""Calibration/holdout backtest of the purchase models against a naive baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.errors import ModelError
from ml.histogram import (
    DataSummary,
    TimeUnit,
    days_per_unit,
    histogram,
    require_columns,
    to_model_units,
    validate_rfm,
)
from ml.purchase_models import (
    MODEL_LABELS,
    MODEL_NAMES,
    PENALIZER_LADDER,
    PurchaseModel,
    fit_many,
)

BASELINE = "baseline"

#: Calibration frequencies above this are pooled in the by-frequency table.
MAX_FREQUENCY_BUCKET = 7

CALIBRATION_COLUMNS: tuple[str, ...] = (
    "member_id",
    "frequency",
    "recency",
    "T",
    "holdout_frequency",
)


@dataclass(frozen=True)
class BacktestMetrics:
    """Holdout accuracy of one predictor (a purchase model or the baseline).

    Attributes
    ----------
    name : str
        Model name or ``"baseline"``.
    predicted_total : float
        Sum of predicted holdout purchases over all calibration customers.
    actual_total : int
        Sum of actual holdout purchases (all are repeat purchases: every calibration
        customer had bought before the holdout started).
    aggregate_error_pct : float
        ``100 * (predicted_total - actual_total) / actual_total`` (NaN if no purchases).
    mae : float
        Mean absolute error of per-customer holdout purchases.
    rmse : float
        Root mean squared error of per-customer holdout purchases.
    correlation : float
        Pearson correlation of predicted and actual holdout purchases (NaN if either is
        constant).
    brier : float
        Mean squared error of ``P(>= 1 purchase in the holdout)`` against the 0/1
        outcome; in ``[0, 1]``, lower is better.
    top_decile_share : float
        Share of holdout purchases made by the 10% of customers ranked highest.
    """

    name: str
    predicted_total: float
    actual_total: int
    aggregate_error_pct: float
    mae: float
    rmse: float
    correlation: float
    brier: float
    top_decile_share: float


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of :func:`backtest`.

    Attributes
    ----------
    metrics : dict of str to BacktestMetrics
        Per converged model, in candidate order.
    baseline : BacktestMetrics
        The naive baseline's metrics.
    selected : str
        Name of the selected model (lowest per-customer RMSE).
    selection_reason : str
        One sentence explaining the choice, with the RMSEs.
    deciles : dict of str to pandas.DataFrame
        Decile lift table per model and for ``"baseline"`` (see :func:`decile_table`).
    by_frequency : pandas.DataFrame
        Mean actual and predicted holdout purchases by calibration frequency
        (``0 … 7+``): columns ``frequency``, ``customers``, ``actual`` and one per model
        and ``baseline``. Used for the calibration-vs-holdout plot (no daily series is
        available because the inputs are per-customer summaries).
    predictions : pandas.DataFrame
        Per customer: ``member_id``, ``frequency``, ``holdout_frequency`` and the
        predicted holdout purchases of every model and the baseline.
    fitted : dict of str to PurchaseModel
        Models fitted on the calibration histogram.
    failures : dict of str to str
        Candidates that did not converge, with the reason.
    holdout_days : float
        Holdout window length in days.
    time_unit : str
        Model time unit.
    calibration : DataSummary
        Sizes of the calibration data (customers, repeat customers, histogram rows).
    """

    metrics: dict[str, BacktestMetrics]
    baseline: BacktestMetrics
    selected: str
    selection_reason: str
    deciles: dict[str, pd.DataFrame] = field(repr=False)
    by_frequency: pd.DataFrame = field(repr=False)
    predictions: pd.DataFrame = field(repr=False)
    fitted: dict[str, PurchaseModel] = field(repr=False)
    failures: dict[str, str]
    holdout_days: float
    time_unit: str
    calibration: DataSummary

    def metrics_table(self) -> pd.DataFrame:
        """Return one row per model plus the baseline, with all metric columns.

        Returns
        -------
        pandas.DataFrame
            Columns ``name``, ``predicted_total``, ``actual_total``,
            ``aggregate_error_pct``, ``mae``, ``rmse``, ``correlation``, ``brier``,
            ``top_decile_share`` and ``selected`` (bool).
        """
        rows = [*self.metrics.values(), self.baseline]
        table = pd.DataFrame([m.__dict__ for m in rows])
        table["selected"] = table["name"] == self.selected
        return table


def baseline_rate(frequency: np.ndarray, T_days: np.ndarray) -> np.ndarray:
    """Naive per-day repeat purchase rate: ``frequency / T`` (0 when ``T == 0``).

    The baseline predicts ``rate * holdout_days`` holdout purchases and
    ``1 - exp(-rate * holdout_days)`` for the probability of at least one (a Poisson
    process continuing at the customer's historical repeat rate, with no dropout).

    Parameters
    ----------
    frequency : numpy.ndarray
        Repeat purchase occasions in the calibration period.
    T_days : numpy.ndarray
        Days from first purchase to the calibration end.

    Returns
    -------
    numpy.ndarray
        Purchases per day.
    """
    freq = np.asarray(frequency, dtype=float)
    age = np.asarray(T_days, dtype=float)
    safe = np.where(age > 0, age, 1.0)
    return np.where(age > 0, freq / safe, 0.0)


def decile_table(member_id: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> pd.DataFrame:
    """Rank customers by prediction into 10 near-equal groups and share out holdout sales.

    Customers are sorted by prediction, highest first; ties are broken by ``member_id``
    ascending so the table is deterministic. Groups are formed with
    ``numpy.array_split`` (sizes differ by at most one).

    Parameters
    ----------
    member_id : numpy.ndarray
        Customer identifiers.
    predicted : numpy.ndarray
        Predicted holdout purchases.
    actual : numpy.ndarray
        Actual holdout purchases.

    Returns
    -------
    pandas.DataFrame
        Ten rows: ``decile`` (1 = best), ``customers``, ``predicted`` and ``actual``
        (sums), ``share_of_purchases`` (actual / total actual; sums to 1, NaN if there
        were no holdout purchases), ``cumulative_share`` and ``lift``
        (``share_of_purchases`` / customer share).
    """
    ids = np.asarray(member_id).astype(str)
    pred = np.asarray(predicted, dtype=float)
    act = np.asarray(actual, dtype=float)
    order = np.lexsort((ids, -pred))
    total = act.sum()
    n = len(pred)
    rows = []
    for decile, chunk in enumerate(np.array_split(order, 10), start=1):
        got = float(act[chunk].sum())
        share = got / total if total > 0 else math.nan
        customer_share = len(chunk) / n if n else math.nan
        rows.append(
            {
                "decile": decile,
                "customers": len(chunk),
                "predicted": float(pred[chunk].sum()),
                "actual": got,
                "share_of_purchases": share,
                "lift": share / customer_share if customer_share else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    table.insert(5, "cumulative_share", table["share_of_purchases"].cumsum())
    return table


def _metrics(
    name: str,
    member_id: np.ndarray,
    predicted: np.ndarray,
    prob: np.ndarray,
    actual: np.ndarray,
) -> tuple[BacktestMetrics, pd.DataFrame]:
    actual_f = actual.astype(float)
    err = predicted - actual_f
    total = int(actual.sum())
    pred_total = float(predicted.sum())
    if np.std(predicted) > 0 and np.std(actual_f) > 0:
        corr = float(np.corrcoef(predicted, actual_f)[0, 1])
    else:
        corr = math.nan
    deciles = decile_table(member_id, predicted, actual_f)
    metrics = BacktestMetrics(
        name=name,
        predicted_total=pred_total,
        actual_total=total,
        aggregate_error_pct=100.0 * (pred_total - total) / total if total > 0 else math.nan,
        mae=float(np.mean(np.abs(err))),
        rmse=float(np.sqrt(np.mean(err**2))),
        correlation=corr,
        brier=float(np.mean((prob - (actual > 0)) ** 2)),
        top_decile_share=float(deciles["share_of_purchases"].iloc[0]),
    )
    return metrics, deciles


def _by_frequency(
    frequency: np.ndarray, actual: np.ndarray, preds: dict[str, np.ndarray]
) -> pd.DataFrame:
    bucket = np.minimum(frequency.astype(np.int64), MAX_FREQUENCY_BUCKET)
    frame = pd.DataFrame({"frequency": bucket, "actual": actual.astype(float), **preds})
    grouped = frame.groupby("frequency", sort=True)
    table = grouped.mean()
    table.insert(0, "customers", grouped.size())
    table = table.reset_index()
    table["label"] = [f"{f}+" if f == MAX_FREQUENCY_BUCKET else str(f) for f in table["frequency"]]
    return table


def select_model(metrics: dict[str, BacktestMetrics], baseline: BacktestMetrics) -> tuple[str, str]:
    """Pick the model with the lowest per-customer RMSE.

    RMSE on holdout purchase counts rewards getting each customer's volume right, which
    is what campaign targeting and CLV use. Exact ties go to the earlier model in the
    preference order ``bgnbd``, ``pareto_nbd``, ``mbgnbd`` (simplest / most widely used
    first).

    Parameters
    ----------
    metrics : dict of str to BacktestMetrics
        Metrics of the converged models.
    baseline : BacktestMetrics
        Baseline metrics, quoted in the reason.

    Returns
    -------
    selected : str
        Model name.
    reason : str
        Sentence explaining the choice.
    """
    if not metrics:
        raise ModelError("no purchase model converged, so none can be selected")
    preference = {n: i for i, n in enumerate(MODEL_NAMES)}
    ranked = sorted(metrics.values(), key=lambda m: (m.rmse, preference.get(m.name, 99)))
    best = ranked[0]
    others = ", ".join(f"{MODEL_LABELS.get(m.name, m.name)} {m.rmse:.4f}" for m in ranked[1:])
    comparison = f" (vs {others})" if others else " (the only converged model)"
    verdict = "beats" if best.rmse <= baseline.rmse else "does NOT beat"
    reason = (
        f"{MODEL_LABELS.get(best.name, best.name)} has the lowest per-customer RMSE of "
        f"holdout purchases, {best.rmse:.4f}{comparison}, and {verdict} the naive "
        f"baseline ({baseline.rmse:.4f})"
    )
    return best.name, reason


def backtest(
    calibration: pd.DataFrame,
    holdout_days: float,
    purchase_model_names: Sequence[str] = MODEL_NAMES,
    time_unit: TimeUnit = "week",
    *,
    parallel: bool = True,
    penalizers: Sequence[float] = PENALIZER_LADDER,
) -> BacktestResult:
    """Fit candidates on the calibration period and score them on the holdout.

    Parameters
    ----------
    calibration : pandas.DataFrame
        One row per customer whose first purchase is on or before the calibration end
        (``as_of - holdout_days``): ``member_id``, ``frequency``, ``recency``, ``T``
        (days, as of the calibration end) and ``holdout_frequency`` (purchase occasions
        in the holdout window).
    holdout_days : float
        Length of the holdout window in days.
    purchase_model_names : sequence of str, default all three
        Candidates to fit.
    time_unit : {"week", "day"}, default "week"
        Model time unit.
    parallel : bool, default True
        Passed to :func:`ml.purchase_models.fit_many`.
    penalizers : sequence of float
        Penalizer escalation ladder.

    Returns
    -------
    BacktestResult
        Metrics of every converged model and of the naive baseline, decile tables, the
        calibration-frequency table, the selected model and why.

    Notes
    -----
    Each model predicts a customer's holdout purchases as the conditional expectation
    ``E[X(holdout) | x, t_x, T]`` and ``P(X(holdout) >= 1 | x, t_x, T)``.
    The naive baseline predicts ``frequency / T * holdout_days`` (T in days; 0 when
    ``T == 0``) and ``1 - exp(-frequency / T * holdout_days)``, see
    :func:`baseline_rate`. The model with the lowest RMSE is selected, see
    :func:`select_model`.

    Raises
    ------
    ModelError
        If columns are missing or invalid, ``holdout_days <= 0``, or no candidate
        converges (each failure is listed).
    """
    require_columns(calibration, CALIBRATION_COLUMNS, "calibration")
    validate_rfm(calibration, "calibration")
    if not (math.isfinite(holdout_days) and holdout_days > 0):
        raise ModelError(f"holdout_days={holdout_days!r} must be a positive number of days")
    actual = calibration["holdout_frequency"].to_numpy(dtype=float)
    if np.any(~np.isfinite(actual)) or np.any(actual < 0):
        raise ModelError(
            "calibration.holdout_frequency must be a non-negative count for every customer "
            "(0 when the customer did not buy in the holdout)"
        )
    actual = actual.round().astype(np.int64)
    unit_days = days_per_unit(time_unit)
    model_frame = to_model_units(calibration, time_unit)
    hist = histogram(model_frame)
    fitted, failures = fit_many(
        hist, purchase_model_names, time_unit, parallel, penalizers=penalizers
    )
    if not fitted:
        raise ModelError(
            "no purchase model converged on the calibration data: " + "; ".join(failures.values())
        )

    ids = calibration["member_id"].to_numpy()
    x = model_frame["frequency"].to_numpy(dtype=float)
    t_x = model_frame["recency"].to_numpy(dtype=float)
    age = model_frame["T"].to_numpy(dtype=float)
    horizon = holdout_days / unit_days

    metrics: dict[str, BacktestMetrics] = {}
    deciles: dict[str, pd.DataFrame] = {}
    preds: dict[str, np.ndarray] = {}
    # predictions depend only on (x, t_x, T): compute them once per distinct row
    rows, inverse = np.unique(np.column_stack([x, t_x, age]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    ux, ut_x, uage = rows[:, 0], rows[:, 1], rows[:, 2]
    for name, model in fitted.items():
        predicted = model.expected_purchases(horizon, ux, ut_x, uage)[inverse]
        prob = model.p_purchase(horizon, ux, ut_x, uage)[inverse]
        metrics[name], deciles[name] = _metrics(name, ids, predicted, prob, actual)
        preds[name] = predicted

    rate = baseline_rate(calibration["frequency"].to_numpy(float), calibration["T"].to_numpy(float))
    base_pred = rate * holdout_days
    base_prob = -np.expm1(-base_pred)
    baseline, deciles[BASELINE] = _metrics(BASELINE, ids, base_pred, base_prob, actual)
    preds[BASELINE] = base_pred

    selected, reason = select_model(metrics, baseline)
    predictions = pd.DataFrame(
        {
            "member_id": ids,
            "frequency": calibration["frequency"].to_numpy(),
            "holdout_frequency": actual,
            **preds,
        }
    )
    return BacktestResult(
        metrics=metrics,
        baseline=baseline,
        selected=selected,
        selection_reason=reason,
        deciles=deciles,
        by_frequency=_by_frequency(x, actual, preds),
        predictions=predictions,
        fitted=fitted,
        failures=failures,
        holdout_days=float(holdout_days),
        time_unit=time_unit,
        calibration=DataSummary(
            customers=int(len(calibration)),
            repeat_customers=int((x > 0).sum()),
            histogram_rows=int(len(hist)),
        ),
    )


def beats_baseline(result: BacktestResult) -> bool:
    """Whether the selected model's RMSE is <= the naive baseline's.

    Parameters
    ----------
    result : BacktestResult
        Backtest outcome.

    Returns
    -------
    bool
        True if the selected model is at least as accurate as the baseline.
    """
    return result.metrics[result.selected].rmse <= result.baseline.rmse
