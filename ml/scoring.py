"""Score every customer: P(alive), purchase probabilities, expected purchases, CLV, bands."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.errors import ModelError
from ml.histogram import TimeUnit, days_per_unit, require_columns, validate_rfm
from ml.purchase_models import PurchaseModel
from ml.spend_model import FittedSpendModel, expected_order_value

#: Length of a CLV month in days (12 months = 365 days).
DAYS_PER_MONTH = 365.0 / 12.0

#: Months in the CLV horizon.
CLV_MONTHS = 12

#: Horizons (days) every score table has: the built-in list rankings use P(purchase in
#: 60 / 90 days), the churn-risk band 90 days and the CLV 365 days.
REQUIRED_HORIZONS: tuple[int, ...] = (60, 90, 365)
#: Score horizons unless the caller asks for others (CRM_SCORE_HORIZONS).
DEFAULT_HORIZONS: tuple[int, ...] = (30, 60, 90, 365)


def horizons_of(*requested: int) -> tuple[int, ...]:
    """The horizons scored: those requested and the required ones, ascending."""
    return tuple(sorted({int(h) for h in requested} | set(REQUIRED_HORIZONS)))


def score_columns(horizons: tuple[int, ...] = DEFAULT_HORIZONS) -> tuple[str, ...]:
    """The columns of the score table for these horizons (see :func:`score_customers`)."""
    hs = horizons_of(*horizons)
    return (
        "member_id",
        "p_alive",
        *(f"p_purchase_{h}d" for h in hs),
        *(f"expected_purchases_{h}d" for h in hs),
        "expected_order_value",
        "predicted_clv_12m",
        "net_value",
        "churn_risk",
        "value_tier",
        "model",
        "model_version",
    )


SCORE_COLUMNS: tuple[str, ...] = score_columns()


def _distinct_pairs(x: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return distinct ``(x, age)`` pairs and the index mapping each row to its pair."""
    if len(x) == 0:
        return x, age, np.zeros(0, dtype=np.intp)
    order = np.lexsort((age, x))
    xs, ages = x[order], age[order]
    start = np.empty(len(xs), dtype=bool)
    start[0] = True
    start[1:] = (xs[1:] != xs[:-1]) | (ages[1:] != ages[:-1])
    group = np.cumsum(start) - 1
    inverse = np.empty(len(x), dtype=np.intp)
    inverse[order] = group
    return xs[start], ages[start], inverse


#: The churn-risk bands and value tiers, highest first (the playbook's audience filters
#: take their allowed values from here).
CHURN_RISK_BANDS: tuple[str, ...] = ("high", "medium", "low")
VALUE_TIERS: tuple[str, ...] = ("top", "high", "medium", "low")


def churn_risk_band(
    p_purchase_90d: np.ndarray, *, high_below: float = 0.2, medium_below: float = 0.5
) -> np.ndarray:
    """Map the 90-day purchase probability to ``'high'``, ``'medium'`` or ``'low'`` risk.

    Parameters
    ----------
    p_purchase_90d : numpy.ndarray
        Probability of at least one purchase in the next 90 days.
    high_below : float, default 0.2
        Probabilities below this are ``'high'`` churn risk.
    medium_below : float, default 0.5
        Probabilities below this (and not high) are ``'medium'``; the rest ``'low'``.

    Returns
    -------
    numpy.ndarray
        Array of band labels (object dtype).
    """
    p = np.asarray(p_purchase_90d, dtype=float)
    high, medium, low = CHURN_RISK_BANDS
    return np.select([p < high_below, p < medium_below], [high, medium], default=low)


def value_tier_band(clv: np.ndarray) -> np.ndarray:
    """Tier customers by quantiles of predicted CLV across the scored population.

    ``'top'`` if CLV >= 80th percentile, ``'high'`` if >= 50th, ``'medium'`` if >= 20th,
    otherwise ``'low'``. Customers tied at a cut-off go to the higher tier.

    Parameters
    ----------
    clv : numpy.ndarray
        Predicted 12-month CLV per customer.

    Returns
    -------
    numpy.ndarray
        Array of tier labels (object dtype).
    """
    values = np.asarray(clv, dtype=float)
    if len(values) == 0:
        return np.array([], dtype=object)
    p20, p50, p80 = np.quantile(values, [0.2, 0.5, 0.8])
    top, high, medium, low = VALUE_TIERS
    return np.select(
        [values >= p80, values >= p50, values >= p20], [top, high, medium], default=low
    )


def score_customers(
    features: pd.DataFrame,
    purchase_model: PurchaseModel,
    spend_model: FittedSpendModel,
    *,
    time_unit: TimeUnit,
    discount_rate_monthly: float = 0.01,
    model_version: str,
    high_risk_below: float = 0.2,
    medium_risk_below: float = 0.5,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
) -> pd.DataFrame:
    """Score customers with a fitted purchase model and the Gamma-Gamma spend model.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer: ``member_id``, ``frequency``, ``recency`` (days), ``T``
        (days), ``monetary_value`` and optionally ``acquisition_cost`` (NaN if unknown).
    purchase_model : PurchaseModel
        BG/NBD, Pareto/NBD or MBG/NBD fitted (or loaded) in ``time_unit``.
    spend_model : FittedSpendModel
        Gamma-Gamma model for the expected order value.
    time_unit : {"week", "day"}
        The purchase model's time unit; day horizons are converted to it (90 days =
        90/7 weeks).
    discount_rate_monthly : float, default 0.01
        Monthly discount rate for the 12-month CLV.
    model_version : str
        Version label written on every row.
    high_risk_below, medium_risk_below : float, default 0.2 and 0.5
        ``churn_risk`` cut-offs on ``p_purchase_90d``.
    horizons : tuple of int, default (30, 60, 90, 365)
        Days for ``p_purchase_<h>d`` and ``expected_purchases_<h>d`` (60, 90 and 365
        are always included, see :data:`REQUIRED_HORIZONS`).

    Returns
    -------
    pandas.DataFrame
        One row per customer with the columns of :data:`SCORE_COLUMNS`:

        - ``p_alive``: probability the customer is still active.
        - ``p_purchase_60d`` / ``p_purchase_90d``: probability of at least one purchase in
          the next 60 / 90 days given the history (see :mod:`ml.purchase_models`).
        - ``expected_purchases_30d/90d/365d``: conditional expected purchases.
        - ``expected_order_value``: Gamma-Gamma conditional mean order value.
        - ``predicted_clv_12m``: ``sum_{m=1..12} (E[X(m)] - E[X(m-1)]) * AOV / (1+d)^m``
          with months of 365/12 days, so with ``d = 0`` it equals
          ``expected_order_value * expected_purchases_365d``.
        - ``net_value``: ``expected_order_value * expected_purchases_365d -
          acquisition_cost`` (undiscounted); NaN where the cost is unknown or the column
          is absent.
        - ``churn_risk``: ``'high'`` / ``'medium'`` / ``'low'`` from ``p_purchase_90d``.
        - ``value_tier``: ``'top'`` / ``'high'`` / ``'medium'`` / ``'low'`` from CLV
          quantiles (see :func:`value_tier_band`).
        - ``model``, ``model_version``.

    Raises
    ------
    ModelError
        If columns are missing or invalid, the time unit does not match the model, the
        discount rate is negative, or predictions come out non-finite.
    """
    require_columns(
        features, ("member_id", "frequency", "recency", "T", "monetary_value"), "features"
    )
    validate_rfm(features)
    unit_days = days_per_unit(time_unit)
    if purchase_model.time_unit != time_unit:
        raise ModelError(
            f"the {purchase_model.label} model was fitted in {purchase_model.time_unit}s but "
            f"scoring was asked for {time_unit}s; refit or score with "
            f"time_unit={purchase_model.time_unit!r}"
        )
    if not np.isfinite(discount_rate_monthly) or discount_rate_monthly < 0:
        raise ModelError(
            f"discount_rate_monthly={discount_rate_monthly!r} must be a rate >= 0 "
            "(e.g. 0.01 for 1% a month)"
        )
    if not 0 <= high_risk_below <= medium_risk_below <= 1:
        raise ModelError(
            "churn thresholds must satisfy 0 <= high_risk_below <= medium_risk_below <= 1"
        )

    model = purchase_model
    x = features["frequency"].to_numpy(dtype=float)
    t_x = features["recency"].to_numpy(dtype=float) / unit_days
    age = features["T"].to_numpy(dtype=float) / unit_days

    alive = model.p_alive(x, t_x, age)
    # Quantities given "alive" depend on (x, T) only: evaluate once per distinct pair.
    ux, uage, inverse = _distinct_pairs(x, age)

    def prob(days: float) -> np.ndarray:
        given = model.p_purchase_given_alive(days / unit_days, ux, uage)
        return alive * given[inverse]

    def cum_alive(days: float) -> np.ndarray:
        return model.expected_purchases_given_alive(days / unit_days, ux, uage)[inverse]

    aov = expected_order_value(spend_model, x, features["monetary_value"].to_numpy(dtype=float))

    # Monthly increments of conditional expected purchases, discounted.
    previous = np.zeros_like(alive)
    discounted = np.zeros_like(alive)
    for month in range(1, CLV_MONTHS + 1):
        current = cum_alive(month * DAYS_PER_MONTH)
        discounted += (current - previous) / (1.0 + discount_rate_monthly) ** month
        previous = current
    e365 = alive * previous  # 12 * 365/12 days
    clv = alive * discounted * aov

    if "acquisition_cost" in features.columns:
        cost = pd.to_numeric(features["acquisition_cost"], errors="coerce").to_numpy(float)
    else:
        cost = np.full(len(features), np.nan)
    net_value = aov * e365 - cost

    hs = horizons_of(*horizons)
    out = pd.DataFrame(
        {
            "member_id": features["member_id"].to_numpy(),
            "p_alive": alive,
            **{f"p_purchase_{h}d": prob(float(h)) for h in hs},
            **{f"expected_purchases_{h}d": alive * cum_alive(float(h)) for h in hs},
            "expected_order_value": aov,
            "predicted_clv_12m": clv,
            "net_value": net_value,
        },
        index=features.index,
    )
    checked = [c for c in out.columns if c not in ("member_id", "net_value")]
    bad = int((~np.isfinite(out[checked].to_numpy(dtype=float))).any(axis=1).sum())
    if bad:
        raise ModelError(
            f"{bad} customer(s) got non-finite scores from the {purchase_model.label} model "
            f"with parameters {model.params}; refit the model or check the features"
        )
    out["churn_risk"] = churn_risk_band(
        out["p_purchase_90d"].to_numpy(), high_below=high_risk_below, medium_below=medium_risk_below
    )
    out["value_tier"] = value_tier_band(clv)
    out["model"] = model.name
    out["model_version"] = model_version
    return out.loc[:, list(score_columns(hs))]
