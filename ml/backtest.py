"""Rolling-origin backtest of the purchase models, a noise-aware choice, and a gate.

The data come from SQL (``marts.customer_features_backtest``): for each cut-off, the
customers' features as of it and their purchases in the holdout after it. The holdout
is a quarter of the history (at most ``CRM_HOLDOUT_DAYS``); cut-offs with at least two
holdouts of history before them are *forecast origins*.

At every origin each candidate is fitted exactly as it would be published (the same
penalizer ladder on the calibration histogram) and predicts each customer's holdout
purchases. Three criteria, averaged over the origins, make the loss of a predictor:

* per-customer error: RMSE / mean actual purchases (the squared error is smallest for
  the expected value each model forecasts; the absolute error would reward forecasting
  the median, i.e. under-forecasting, and pick models on that bias),
* aggregate error: ``|predicted total - actual total| / actual total``,
* weekly tracking error: mean ``|cumulative predicted - cumulative actual|`` over the
  holdout weeks, / actual total.

The **default** model (BG/NBD) is kept unless a challenger's loss is lower in at least
``confidence`` (95%) of bootstrap resamples of the customers: a difference inside the
noise never changes the model. The chosen model must then beat two baselines on the
same loss — the **naive rate** (frequency / T, no dropout) and a **recency-frequency
rule** that learns the cohort's decay from the cut-off before the origin (mean holdout
purchases per frequency × days-since-last-purchase cell) — or it is not published.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats

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
RF_BASELINE = "rf_baseline"
BASELINE_LABELS = {BASELINE: "naive rate", RF_BASELINE: "recency-frequency rule"}
#: The model kept unless a challenger is better beyond the noise.
DEFAULT_MODEL = "bgnbd"
#: Share of bootstrap resamples in which a challenger must beat the default.
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 200

#: Calibration frequencies above this are pooled in the by-frequency table.
MAX_FREQUENCY_BUCKET = 7
#: Cells of the recency-frequency rule: repeat purchases, and days since the last
#: purchase as multiples of the holdout length.
_RF_FREQUENCY_EDGES = (0, 1, 2, 3, 5, 8)
_RF_GAP_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0)

CALIBRATION_COLUMNS: tuple[str, ...] = (
    "cutoff_date",
    "cutoff_number",
    "is_origin",
    "member_id",
    "frequency",
    "recency",
    "T",
    "holdout_frequency",
    "holdout_days",
)


@dataclass(frozen=True)
class BacktestMetrics:
    """Holdout accuracy of one predictor, averaged over the forecast origins.

    Attributes
    ----------
    name : str
        Model name, ``"baseline"`` (naive rate) or ``"rf_baseline"``.
    predicted_total, actual_total : float
        Holdout purchases predicted and made, summed over the origins.
    aggregate_error_pct : float
        ``100 * (predicted - actual) / actual`` (mean over origins).
    mae, rmse : float
        Per-customer errors of holdout purchases (mean over origins).
    correlation : float
        Pearson correlation of predicted and actual holdout purchases.
    brier : float
        Mean squared error of ``P(>= 1 purchase in the holdout)``; lower is better.
    top_decile_share : float
        Share of holdout purchases made by the 10% ranked highest.
    tracking_error_pct : float
        Mean absolute gap of the weekly cumulative forecast, % of the holdout total.
    loss : float
        RMSE / mean actual + |aggregate error| + tracking error (fractions): the
        selection criterion; lower is better.
    """

    name: str
    predicted_total: float
    actual_total: float
    aggregate_error_pct: float
    mae: float
    rmse: float
    correlation: float
    brier: float
    top_decile_share: float
    tracking_error_pct: float = math.nan
    loss: float = math.nan


@dataclass(frozen=True)
class Decision:
    """Why the selected model was chosen.

    Attributes
    ----------
    default : str
        The default model.
    selected : str
        The chosen model.
    challenger : str or None
        The best challenger (lowest loss other than the default).
    margin : float
        Default's loss minus the challenger's (positive: the challenger is better).
    confidence : float
        Share of bootstrap resamples of the customers in which the challenger's loss
        is lower than the default's.
    origins : int
        Forecast origins the losses are averaged over.
    """

    default: str
    selected: str
    challenger: str | None
    margin: float
    confidence: float
    origins: int


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of :func:`backtest`.

    ``metrics``, ``baseline`` and ``rf_baseline`` are averaged over the origins;
    ``deciles``, ``by_frequency``, ``predictions``, ``fitted``, ``calibration`` and
    ``calibration_table`` are of the newest origin (the one closest to the as-of date).
    ``origin_metrics`` has one row per origin and predictor.
    """

    metrics: dict[str, BacktestMetrics]
    baseline: BacktestMetrics
    rf_baseline: BacktestMetrics | None
    selected: str
    selection_reason: str
    decision: Decision
    deciles: dict[str, pd.DataFrame] = field(repr=False)
    by_frequency: pd.DataFrame = field(repr=False)
    predictions: pd.DataFrame = field(repr=False)
    fitted: dict[str, PurchaseModel] = field(repr=False)
    failures: dict[str, str]
    holdout_days: float
    time_unit: str
    calibration: DataSummary
    cutoff: str = ""
    origin_metrics: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    calibration_table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def baselines(self) -> list[BacktestMetrics]:
        return [self.baseline, *([self.rf_baseline] if self.rf_baseline else [])]

    def metrics_table(self) -> pd.DataFrame:
        """One row per model and baseline, with all metric columns and ``selected``."""
        rows = [*self.metrics.values(), *self.baselines]
        table = pd.DataFrame([m.__dict__ for m in rows])
        table["selected"] = table["name"] == self.selected
        return table


def label(name: str) -> str:
    return MODEL_LABELS.get(name) or BASELINE_LABELS.get(name, name)


def baseline_rate(frequency: np.ndarray, T_days: np.ndarray) -> np.ndarray:
    """Naive per-day repeat purchase rate: ``frequency / T`` (0 when ``T == 0``).

    The baseline predicts ``rate * holdout_days`` holdout purchases and
    ``1 - exp(-rate * holdout_days)`` for the probability of at least one.
    """
    freq = np.asarray(frequency, dtype=float)
    age = np.asarray(T_days, dtype=float)
    safe = np.where(age > 0, age, 1.0)
    return np.where(age > 0, freq / safe, 0.0)


def _rf_cells(frame: pd.DataFrame, holdout_days: float) -> np.ndarray:
    freq = np.digitize(frame["frequency"].to_numpy(float), _RF_FREQUENCY_EDGES[1:])
    gap = (frame["T"].to_numpy(float) - frame["recency"].to_numpy(float)) / holdout_days
    return freq * 10 + np.digitize(gap, _RF_GAP_EDGES[1:])


def rf_rule(
    learn: pd.DataFrame, apply: pd.DataFrame, holdout_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """The recency-frequency rule: what customers in the same cell did next, before.

    Parameters
    ----------
    learn : pandas.DataFrame
        Customers at an earlier cut-off (``frequency``, ``recency``, ``T`` in days and
        ``holdout_frequency``: their purchases in the holdout after it).
    apply : pandas.DataFrame
        Customers at the origin (same columns but ``holdout_frequency``).
    holdout_days : float
        Holdout length (cells of days since the last purchase are in its multiples).

    Returns
    -------
    expected, probability : numpy.ndarray
        Per customer of ``apply``: the mean holdout purchases and the share with at
        least one, in its cell at the earlier cut-off (its frequency class when the
        cell is empty there, else everyone's).
    """
    y = learn["holdout_frequency"].to_numpy(float)
    cells = pd.DataFrame({"cell": _rf_cells(learn, holdout_days), "y": y, "buy": y > 0})
    by_cell = cells.groupby("cell")[["y", "buy"]].mean()
    by_freq = cells.assign(f=cells["cell"] // 10).groupby("f")[["y", "buy"]].mean()
    target = _rf_cells(apply, holdout_days)
    out = by_cell.reindex(target)
    fallback = by_freq.reindex(target // 10).to_numpy()
    values = np.where(np.isnan(out.to_numpy()), fallback, out.to_numpy())
    values = np.where(np.isnan(values), [y.mean(), (y > 0).mean()], values)
    return values[:, 0], values[:, 1]


def decile_table(member_id: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> pd.DataFrame:
    """Rank customers by prediction into 10 near-equal groups and share out holdout sales.

    Customers are sorted by prediction, highest first; ties are broken by ``member_id``
    ascending. Columns: ``decile`` (1 = best), ``customers``, ``predicted``,
    ``actual``, ``share_of_purchases``, ``cumulative_share`` and ``lift``.
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


def calibration_table(
    probability: np.ndarray, expected: np.ndarray, actual: np.ndarray
) -> pd.DataFrame:
    """Predicted vs observed by decile of P(purchase in the holdout), 1 = most likely.

    Columns: ``decile``, ``customers``, ``predicted_p`` (mean P(≥1 purchase)),
    ``observed_p`` (share who bought), ``predicted_purchases`` and
    ``actual_purchases`` (means per customer).
    """
    p = np.asarray(probability, float)
    order = np.argsort(-p, kind="stable")
    rows = []
    for decile, chunk in enumerate(np.array_split(order, 10), start=1):
        rows.append(
            {
                "decile": decile,
                "customers": len(chunk),
                "predicted_p": float(p[chunk].mean()) if len(chunk) else math.nan,
                "observed_p": float((actual[chunk] > 0).mean()) if len(chunk) else math.nan,
                "predicted_purchases": float(expected[chunk].mean()) if len(chunk) else math.nan,
                "actual_purchases": float(actual[chunk].mean()) if len(chunk) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def _finite_sum(*parts: np.ndarray) -> np.ndarray:
    """Element-wise sum of the finite parts (a part undefined for a draw is left out)."""
    return sum(np.where(np.isfinite(p), p, 0.0) for p in parts)


def _losses_from_sums(
    n: np.ndarray,
    total: np.ndarray,
    predicted: np.ndarray,
    squared: np.ndarray,
    actual_weekly: np.ndarray,
    forecast: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The loss and the tracking error from weighted sums over the customers, per draw.

    ``n`` (customers), ``total`` (actual holdout purchases), ``predicted``, ``squared``
    (squared errors) are one value per draw; ``actual_weekly`` (purchases per week) and
    ``forecast`` (cumulative weekly forecast) one row per draw. Undefined parts (no
    customers, no purchases) are NaN and left out of the loss.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        actual_cum = np.cumsum(actual_weekly, axis=-1)
        tracking = np.mean(np.abs(forecast - actual_cum), axis=-1) / total
        tracking = np.where(total > 0, tracking, np.nan)
        agg = np.where(total > 0, (predicted - total) / total, np.nan)
        relative_rmse = np.where(total > 0, np.sqrt(squared / n) / (total / n), np.nan)
    return _finite_sum(relative_rmse, np.abs(agg), tracking), tracking


@dataclass
class _Origin:
    """One forecast origin. Customers (sorted by ``member_id``) each point at a *row* of
    distinct features (frequency, recency, T); every predictor's forecast is per row:
    ``expected`` and ``probability`` (holdout purchases, P(>= 1)) and, for the models,
    ``curves`` (cumulative forecast at the end of each holdout week, rows x weeks).
    The actual purchases are per customer (``actual``) and per (customer, week)."""

    cutoff: str
    member_id: np.ndarray
    actual: np.ndarray
    row: np.ndarray  # the row of each customer
    expected: dict[str, np.ndarray]
    probability: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]  # model -> rows x weeks
    purchase_row: np.ndarray  # customer of each (customer, week) purchase record
    purchase_week: np.ndarray  # 0 = the first week after the cut-off
    purchase_count: np.ndarray
    weeks: int

    def predicted(self, name: str) -> np.ndarray:
        """Forecast holdout purchases per customer."""
        return self.expected[name][self.row]

    def p_purchase(self, name: str) -> np.ndarray:
        """P(at least one holdout purchase) per customer."""
        return self.probability[name][self.row]


class _WeightedSums:
    """The sums every predictor's loss is made of, at one origin, for many weightings of
    the customers at once.

    A weighting gives each customer of ``universe`` (every origin's customers) a weight;
    customers outside the origin's cohort weigh nothing. One sparse product turns a
    block of weightings into weights per row of distinct features, per row times the
    actual purchases, per holdout week, and the customers, purchases and squared
    purchases; dense products with the per-row forecasts give each predictor's totals,
    squared errors and weekly curve. Counts stay exact in float32 (integers below 2**24).
    """

    def __init__(self, origin: _Origin, universe: pd.Index, names: Sequence[str]) -> None:
        position = universe.get_indexer(pd.Index(origin.member_id)).astype(np.int32)
        rows = len(next(iter(origin.expected.values())))
        row = origin.row.astype(np.int32)
        a = origin.actual.astype(np.float32)
        weeks = origin.weeks
        ones = np.ones(len(position), dtype=np.float32)

        def at(k: int) -> np.ndarray:
            return np.full(len(position), k, dtype=np.int32)

        cols = [
            (position, row, ones),
            (position, rows + row, a),
            (position[origin.purchase_row], (2 * rows + origin.purchase_week).astype(np.int32),
             origin.purchase_count.astype(np.float32)),
            (position, at(2 * rows + weeks), ones),
            (position, at(2 * rows + weeks + 1), a),
            (position, at(2 * rows + weeks + 2), a * a),
        ]  # fmt: skip
        i, j, v = (np.concatenate(parts) for parts in zip(*cols, strict=True))
        self._transposed = sparse.csr_matrix(
            (v, (j, i)), shape=(2 * rows + weeks + 3, len(universe)), dtype=np.float32
        )
        del i, j, v, cols
        self.rows, self.weeks, self.names = rows, weeks, list(names)
        self.customers = len(universe)
        self._expected = np.column_stack([origin.expected[n] for n in self.names])
        self._squares = self._expected**2
        self._curves = origin.curves  # rows x weeks per model (not copied: they are large)

    def losses(
        self, weights: np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per predictor (``names``, default all), the loss and the tracking error under
        each weighting (columns of ``weights``; one row per customer of the universe,
        float32)."""
        z = np.asarray(self._transposed @ weights, dtype=np.float64).T
        r, w = self.rows, self.weeks
        per_row, per_row_actual = z[:, :r], z[:, r : 2 * r]
        weekly = z[:, 2 * r : 2 * r + w]
        n, total, squares = z[:, 2 * r + w], z[:, 2 * r + w + 1], z[:, 2 * r + w + 2]
        totals = per_row @ self._expected
        second = per_row @ self._squares
        cross = per_row_actual @ self._expected
        out = {}
        for col, name in enumerate(self.names):
            if names is not None and name not in names:
                continue
            predicted = totals[:, col]
            squared = second[:, col] - 2.0 * cross[:, col] + squares
            if name in self._curves:
                forecast = per_row @ self._curves[name]
            else:  # a baseline forecasts the total only: spread evenly over the weeks
                forecast = predicted[:, None] * (np.arange(1, w + 1) / w)
            out[name] = _losses_from_sums(
                n, total, predicted, np.maximum(squared, 0.0), weekly, forecast
            )
        return out


def _origin_sums(origins: Sequence[_Origin]) -> list[_WeightedSums]:
    """Every predictor's sums at each origin, over one universe: every origin's
    customers (so one weighting weighs a customer alike at every origin)."""
    universe = pd.Index(np.concatenate([o.member_id for o in origins])).unique()
    return [_WeightedSums(o, universe, list(o.expected)) for o in origins]


def _everyone(sums: _WeightedSums) -> np.ndarray:
    """The weighting that counts every customer once."""
    return np.ones((sums.customers, 1), dtype=np.float32)


#: Poisson(1) quantiles at the midpoints of 65,536 equal steps: a uniform 16-bit draw
#: looked up here is a Poisson(1) weight (each probability within 1/65,536).
_POISSON_TABLE = stats.poisson.ppf((np.arange(2**16) + 0.5) / 2**16, 1.0).astype(np.float32)


def _bootstrap_weights(rng: np.random.Generator, draws: int, customers: int) -> np.ndarray:
    """Poisson(1) weights, one row per customer and one column per resample (the Poisson
    bootstrap: each customer counts 0, 1, 2, ... times, independently)."""
    return _POISSON_TABLE[rng.integers(0, 2**16, size=(customers, draws), dtype=np.uint16)]


def _metrics(
    name: str, ids: np.ndarray, o: _Origin, loss: tuple[float, float]
) -> tuple[BacktestMetrics, pd.DataFrame]:
    predicted, actual = o.predicted(name), o.actual.astype(float)
    err = predicted - actual
    total = float(actual.sum())
    pred_total = float(predicted.sum())
    corr = (
        float(np.corrcoef(predicted, actual)[0, 1])
        if np.std(predicted) > 0 and np.std(actual) > 0
        else math.nan
    )
    deciles = decile_table(ids, predicted, actual)
    agg = (pred_total - total) / total if total > 0 else math.nan
    metrics = BacktestMetrics(
        name=name,
        predicted_total=pred_total,
        actual_total=total,
        aggregate_error_pct=100.0 * agg,
        mae=float(np.mean(np.abs(err))),
        rmse=float(np.sqrt(np.mean(err**2))),
        correlation=corr,
        brier=float(np.mean((o.p_purchase(name) - (actual > 0)) ** 2)),
        top_decile_share=float(deciles["share_of_purchases"].iloc[0]),
        tracking_error_pct=100.0 * loss[1],
        loss=loss[0],
    )
    return metrics, deciles


def _mean_metrics(rows: list[BacktestMetrics]) -> BacktestMetrics:
    """Metrics averaged over origins (totals summed)."""
    frame = pd.DataFrame([r.__dict__ for r in rows])
    values = {c: float(frame[c].mean()) for c in frame.columns if c != "name"}
    values["predicted_total"] = float(frame["predicted_total"].sum())
    values["actual_total"] = float(frame["actual_total"].sum())
    return BacktestMetrics(name=rows[0].name, **values)


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


def select_model(
    origins: list[_Origin],
    candidates: Sequence[str],
    *,
    default: str = DEFAULT_MODEL,
    confidence: float = CONFIDENCE,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    sums: list[_WeightedSums] | None = None,
) -> tuple[Decision, str]:
    """Keep the default unless a challenger's loss is lower beyond the noise.

    The noise is measured on ``draws`` resamples of the customers (the Poisson
    bootstrap: each customer counts a Poisson(1) number of times, 0, 1, 2, ...). One
    resample weighs every origin's cohort alike (a customer counted twice counts twice at
    every origin), and every part of the loss, the weekly tracking error included, is
    recomputed: a challenger replaces the default only if its mean loss over the origins
    is lower in at least ``confidence`` of the resamples. Among such challengers the
    lowest mean loss wins. The resamples are summed per row of distinct features
    (:class:`_WeightedSums`), so their cost grows with the customers once, not with
    customers x predictors x weeks.

    ``sums`` are the origins' :func:`_origin_sums` when the caller has them already.

    Returns
    -------
    decision : Decision
    reason : str
        One sentence with the losses, the margin and the confidence.
    """
    if not candidates:
        raise ModelError("no purchase model converged, so none can be selected")
    default = default if default in candidates else candidates[0]
    names = [default, *(n for n in candidates if n != default)]
    sums = _origin_sums(origins) if sums is None else sums
    customers = sums[0].customers

    def mean_losses(weights: np.ndarray) -> dict[str, np.ndarray]:
        per_origin = [s.losses(weights, names) for s in sums]
        return {n: np.mean([got[n][0] for got in per_origin], axis=0) for n in names}

    mean_loss = {n: float(v[0]) for n, v in mean_losses(_everyone(sums[0])).items()}
    challengers = sorted(names[1:], key=lambda n: mean_loss[n])
    rng = np.random.default_rng(seed)
    wins = dict.fromkeys(challengers, 0)
    block = max(1, min(draws, 2**24 // max(1, customers)))  # <= 64 MiB of weights
    for start in range(0, draws if challengers else 0, block):
        got = mean_losses(_bootstrap_weights(rng, min(block, draws - start), customers))
        for n in challengers:
            wins[n] += int(np.sum(got[n] < got[default]))
    share = {n: float(wins[n]) / draws for n in challengers}
    eligible = [
        n for n in challengers if mean_loss[n] < mean_loss[default] and share[n] >= confidence
    ]
    selected = eligible[0] if eligible else default
    # the challenger reported: the one that replaced the default, else the best one
    best = selected if eligible else (challengers[0] if challengers else None)
    margin = float(mean_loss[default] - mean_loss[best]) if best else 0.0
    decision = Decision(
        default=default,
        selected=selected,
        challenger=best,
        margin=margin,
        confidence=share.get(best, math.nan) if best else math.nan,
        origins=len(origins),
    )
    losses = ", ".join(f"{label(n)} {mean_loss[n]:.4f}" for n in [default, *challengers])
    over = f"over {len(origins)} forecast origin{'s' if len(origins) > 1 else ''}"
    if selected != default:
        reason = (
            f"{label(selected)} replaces the default {label(default)}: its loss is "
            f"{margin / mean_loss[default]:.1%} lower and lower in {share[selected]:.0%} of "
            f"{draws} bootstrap resamples of the customers (needs {confidence:.0%}); "
            f"losses {over}: {losses}"
        )
    elif best is None:
        reason = f"{label(default)} is the only converged model (loss {mean_loss[default]:.4f})"
    else:
        better = margin > 0
        reason = (
            f"{label(default)} (the default) is kept: "
            + (
                f"{label(best)}'s loss is {margin / mean_loss[default]:.1%} lower but only in "
                f"{share[best]:.0%} of {draws} bootstrap resamples of the customers (needs "
                f"{confidence:.0%}), within the noise"
                if better
                else "no challenger has a lower loss"
            )
            + f"; losses {over}: {losses}"
        )
    return decision, reason


def _forecasts(
    model: PurchaseModel, holdout_days: float, weeks: int, unit_days: float, x, t_x, age
) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct row: the expected cumulative purchases at the end of each holdout
    week, the last ending with the holdout (rows x weeks), and P(at least one purchase
    in the holdout). P(alive) does not depend on the horizon, so it is computed once
    (Pareto/NBD's is an integral per row)."""
    ends = np.append(7.0 * np.arange(1, weeks), holdout_days) / unit_days
    alive = model.p_alive(x, t_x, age)
    curve = np.column_stack([alive * model.expected_purchases_given_alive(t, x, age) for t in ends])
    return curve, alive * model.p_purchase_given_alive(ends[-1], x, age)


def _purchases(
    frame: pd.DataFrame, weekly: pd.DataFrame | None, cutoff: str, weeks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each customer's holdout purchases by week (row, week, count), checked against the
    customer's holdout total."""
    actual = frame["holdout_frequency"].to_numpy(float)
    if weekly is None:  # no weekly data: each customer's purchases spread evenly
        rows = np.repeat(np.flatnonzero(actual > 0), weeks)
        week = np.tile(np.arange(weeks), int((actual > 0).sum()))
        return rows, week, actual[rows] / weeks
    w = weekly[pd.to_datetime(weekly["cutoff_date"]) == pd.Timestamp(cutoff)]
    rows = pd.Index(frame["member_id"]).get_indexer(w["member_id"])
    week = w["holdout_week"].to_numpy(np.int64) - 1
    count = w["purchases"].to_numpy(float)
    keep = (rows >= 0) & (week >= 0) & (week < weeks)
    if count[keep].sum() != actual.sum() or not keep.all():
        raise ModelError(
            f"the weekly holdout purchases at cut-off {cutoff} ({count.sum():,.0f} in "
            f"backtest_holdout_weekly) do not match the customers' holdout totals "
            f"({actual.sum():,.0f} in customer_features_backtest); rebuild the dbt models"
        )
    return rows, week, count


def backtest(
    cutoffs: pd.DataFrame,
    weekly: pd.DataFrame | None = None,
    purchase_model_names: Sequence[str] = MODEL_NAMES,
    time_unit: TimeUnit = "week",
    *,
    parallel: bool = True,
    penalizers: Sequence[float] = PENALIZER_LADDER,
    default: str = DEFAULT_MODEL,
    confidence: float = CONFIDENCE,
    draws: int = BOOTSTRAP_DRAWS,
) -> BacktestResult:
    """Fit every candidate at every forecast origin and score it on the holdout after.

    Parameters
    ----------
    cutoffs : pandas.DataFrame
        ``marts.customer_features_backtest``: per cut-off (``cutoff_date``,
        ``cutoff_number``, 1 = newest, ``is_origin``, ``holdout_days``) one row per
        customer with ``member_id``, ``frequency``, ``recency``, ``T`` (days, as of the
        cut-off) and ``holdout_frequency``.
    weekly : pandas.DataFrame, optional
        ``marts.backtest_holdout_weekly``: per cut-off, customer (``member_id``) and
        ``holdout_week`` (1 = the first week after the cut-off) the ``purchases``; they
        must add up to each customer's ``holdout_frequency``. Without it each customer's
        purchases count as spread evenly over the weeks.
    purchase_model_names : sequence of str
        Candidates to fit.
    time_unit : {"week", "day"}
        Model time unit.
    parallel, penalizers
        Passed to :func:`ml.purchase_models.fit_many` (as for the published fit).
    default, confidence, draws
        See :func:`select_model`.

    Raises
    ------
    ModelError
        If columns are missing or invalid, there is no forecast origin, or no
        candidate converges at an origin.
    """
    require_columns(cutoffs, CALIBRATION_COLUMNS, "backtest data")
    origins_frame = cutoffs[cutoffs["is_origin"].astype(bool)]
    if origins_frame.empty:
        raise ModelError(
            "the history is too short for a backtest: no cut-off has two holdouts of "
            "history before it"
        )
    validate_rfm(origins_frame, "backtest data")
    holdout_days = float(origins_frame["holdout_days"].iloc[0])
    unit_days = days_per_unit(time_unit)
    weeks = max(1, round(holdout_days / 7))
    by_number = {int(k): g for k, g in cutoffs.groupby("cutoff_number")}
    origins: list[_Origin] = []
    newest: dict[str, object] = {}
    all_metrics: list[dict[str, BacktestMetrics]] = []
    failures: dict[str, str] = {}
    converged: set[str] | None = None
    for number in sorted(int(k) for k in origins_frame["cutoff_number"].unique()):
        frame = by_number[number].sort_values("member_id", kind="stable")
        cutoff = str(pd.Timestamp(frame["cutoff_date"].iloc[0]).date())
        actual = frame["holdout_frequency"].to_numpy(float)
        if np.any(~np.isfinite(actual)) or np.any(actual < 0):
            raise ModelError("holdout_frequency must be a non-negative count for every customer")
        model_frame = to_model_units(frame, time_unit)
        hist = histogram(model_frame)
        fitted, failed = fit_many(
            hist, purchase_model_names, time_unit, parallel, penalizers=penalizers
        )
        xyz = model_frame[["frequency", "recency", "T"]].to_numpy(float)
        rows, first, inverse = np.unique(xyz, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        ux, ut_x, uage = rows[:, 0], rows[:, 1], rows[:, 2]
        expected, probability, curves = {}, {}, {}
        for name, model in list(fitted.items()):
            curve, p = _forecasts(model, holdout_days, weeks, unit_days, ux, ut_x, uage)
            finite = np.isfinite(curve).all(axis=1) & np.isfinite(p)
            if not finite.all():
                # not a number for some customers: the model failed here (a loss over the
                # other customers would look lower, not worse)
                failed[name] = (
                    f"{label(name)} forecasts are not finite for {int((~finite[inverse]).sum()):,}"
                    f" of {len(frame):,} customers ({model.params})"
                )
                del fitted[name]
                continue
            curves[name], probability[name] = curve, p
            expected[name] = curve[:, -1]
        failures.update({k: f"{v} (origin {cutoff})" for k, v in failed.items()})
        if not fitted:
            raise ModelError(
                f"no purchase model converged at origin {cutoff}: " + "; ".join(failed.values())
            )
        converged = set(fitted) if converged is None else converged & set(fitted)
        distinct = frame.iloc[first]  # the rows in days, for the baselines
        purchase_row, purchase_week, purchase_count = _purchases(frame, weekly, cutoff, weeks)
        rate = baseline_rate(distinct["frequency"].to_numpy(float), distinct["T"].to_numpy(float))
        expected[BASELINE] = rate * holdout_days
        probability[BASELINE] = -np.expm1(-expected[BASELINE])
        learn = by_number.get(number + 1)
        if learn is not None and len(learn):
            expected[RF_BASELINE], probability[RF_BASELINE] = rf_rule(learn, distinct, holdout_days)
        origin = _Origin(
            cutoff, frame["member_id"].to_numpy(), actual, inverse, expected, probability,
            curves, purchase_row, purchase_week, purchase_count, weeks,
        )  # fmt: skip
        origins.append(origin)
        if not newest:
            newest = {
                "frame": frame, "fitted": fitted, "origin": origin, "hist_rows": len(hist),
                "x": model_frame["frequency"].to_numpy(float),
            }  # fmt: skip

    sums = _origin_sums(origins)
    deciles: dict[str, pd.DataFrame] = {}
    for k, (origin, origin_sums) in enumerate(zip(origins, sums, strict=True)):
        point = origin_sums.losses(_everyone(origin_sums))
        per = {}
        for name in origin.expected:
            loss = (float(point[name][0][0]), float(point[name][1][0]))
            per[name], table = _metrics(name, origin.member_id, origin, loss)
            if k == 0:
                deciles[name] = table
        all_metrics.append(per)
    newest["deciles"] = deciles

    candidates = [n for n in purchase_model_names if n in (converged or set())]
    if not candidates:
        raise ModelError(
            "no purchase model converged at every forecast origin: " + "; ".join(failures.values())
        )
    decision, reason = select_model(
        origins, candidates, default=default, confidence=confidence, draws=draws, sums=sums
    )
    averaged = {n: _mean_metrics([m[n] for m in all_metrics]) for n in candidates}
    naive = _mean_metrics([m[BASELINE] for m in all_metrics])
    rf_rows = [m[RF_BASELINE] for m in all_metrics if RF_BASELINE in m]
    rf = _mean_metrics(rf_rows) if len(rf_rows) == len(all_metrics) else None
    gate = [b for b in (naive, rf) if b is not None]
    worst = [b for b in gate if averaged[decision.selected].loss > b.loss]
    reason += (
        (
            "; it does NOT beat the " + " and the ".join(label(b.name) for b in worst)
            if worst
            else "; it beats the " + " and the ".join(label(b.name) for b in gate)
        )
        + " ("
        + ", ".join(f"{label(b.name)} loss {b.loss:.4f}" for b in gate)
        + ")"
    )

    frame = newest["frame"]
    origin = newest["origin"]
    x = newest["x"]
    return BacktestResult(
        metrics=averaged,
        baseline=naive,
        rf_baseline=rf,
        selected=decision.selected,
        selection_reason=reason,
        decision=decision,
        deciles=newest["deciles"],
        by_frequency=_by_frequency(
            x, origin.actual, {n: origin.predicted(n) for n in origin.expected}
        ),
        predictions=pd.DataFrame(
            {
                "member_id": frame["member_id"].to_numpy(),
                "frequency": frame["frequency"].to_numpy(),
                "holdout_frequency": origin.actual.astype(np.int64),
                **{n: origin.predicted(n) for n in origin.expected},
            }
        ),
        fitted=newest["fitted"],
        failures=failures,
        holdout_days=holdout_days,
        time_unit=time_unit,
        calibration=DataSummary(
            customers=int(len(frame)),
            repeat_customers=int((x > 0).sum()),
            histogram_rows=int(newest["hist_rows"]),
        ),
        cutoff=origin.cutoff,
        origin_metrics=pd.DataFrame(
            [
                {"origin": o.cutoff, **m.__dict__}
                for o, per in zip(origins, all_metrics, strict=True)
                for m in per.values()
            ]
        ),
        calibration_table=calibration_table(
            origin.p_purchase(decision.selected), origin.predicted(decision.selected), origin.actual
        ),
    )


def beats_baseline(result: BacktestResult) -> bool:
    """Whether the selected model's loss is at most every baseline's (the gate)."""
    selected = result.metrics[result.selected].loss
    return all(selected <= b.loss for b in result.baselines)
