"""Forecasts with intervals: how many of a group of customers buy within a horizon, and
what they spend, with a 90% interval.

Two sources of uncertainty are combined:

* **the parameters**: a Laplace approximation of the fit — a normal distribution on the
  log-parameters with the inverse of the log-likelihood's curvature at the optimum as
  covariance (:func:`log_parameter_covariance`), from which parameter sets are drawn;
* **who buys**: given the parameters, each customer buys (at least once) with
  probability ``p``, so the buyers of a group vary by ``sum p (1 - p)``. A customer's
  purchases vary as an alive/dropped-out mixture of a negative binomial (the purchase
  rate's Gamma(r + x, ...) posterior): with ``m`` the expected purchases if alive,
  ``Var N = P(alive) (m + m^2 / (r + x)) + P(alive) (1 - P(alive)) m^2`` (dropping out
  within the horizon would only lower it); each order's value varies with the
  Gamma-Gamma shape ``p`` as ``value^2 / p``.

The interval is normal: mean ± 1.645 × the standard deviation of both together. The
Gamma-Gamma spend parameters are taken as known (their uncertainty is not included), and
the model's own bias is not in the interval: the backtest's aggregate error is
reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ml.errors import ModelError
from ml.histogram import days_per_unit, histogram_arrays
from ml.purchase_models import PurchaseModel

Z90 = 1.6448536269514722  # two-sided 90%
DRAWS = 100


def log_parameter_covariance(model: PurchaseModel, hist: pd.DataFrame) -> np.ndarray:
    """Covariance of the log-parameters: the inverse of the negative Hessian of the
    histogram log-likelihood at the fitted parameters (central differences of the
    model's exact gradient).

    Parameters
    ----------
    model : PurchaseModel
        The fitted model (its ``param_names`` order).
    hist : pandas.DataFrame
        The histogram it was fitted on (see :func:`ml.histogram.histogram`).

    Raises
    ------
    ModelError
        If the curvature is not that of a maximum (the data cannot pin the parameters).
    """
    data = histogram_arrays(hist)
    names = list(type(model).param_names)
    theta = np.log([float(model.params[n]) for n in names])
    lik = type(model).likelihood(data)
    total = float(np.sum(data.weight))
    step = 1e-4

    def score(t: np.ndarray) -> np.ndarray:  # gradient of the total log-likelihood in t
        params = np.exp(t)
        with np.errstate(all="ignore"):
            _, grad = lik.mean_log_likelihood(params)
        return total * params * grad

    columns = []
    for j in range(len(names)):
        e = np.zeros(len(names))
        e[j] = step
        columns.append((score(theta + e) - score(theta - e)) / (2 * step))
    hess = np.array(columns)
    hess = (hess + hess.T) / 2
    info = -hess
    eigen = np.linalg.eigvalsh(info)
    if not np.all(np.isfinite(info)) or eigen.min() <= 0:
        raise ModelError(
            f"the {model.label} log-likelihood is not curved like a maximum at the fitted "
            "parameters, so their uncertainty cannot be estimated"
        )
    cov = np.linalg.inv(info)
    return (cov + cov.T) / 2


def parameter_draws(
    model: PurchaseModel, log_cov: np.ndarray, draws: int = DRAWS, seed: int = 0
) -> list[PurchaseModel]:
    """``draws`` models with parameters from the Laplace approximation."""
    names = list(type(model).param_names)
    theta = np.log([float(model.params[n]) for n in names])
    rng = np.random.default_rng(seed)
    sample = rng.multivariate_normal(theta, np.asarray(log_cov, float), size=draws)
    doc = model.to_dict()
    return [
        PurchaseModel.from_dict({**doc, "params": dict(zip(names, np.exp(t), strict=True))})
        for t in sample
    ]


def group_forecast(
    model: PurchaseModel,
    draws: Sequence[PurchaseModel],
    customers: pd.DataFrame,
    groups: Sequence[str],
    horizon_days: float,
    spend_shape: float | None = None,
) -> pd.DataFrame:
    """Expected buyers and revenue per group within ``horizon_days``, with 90% intervals.

    Parameters
    ----------
    model : PurchaseModel
        The fitted model (point forecast).
    draws : sequence of PurchaseModel
        Parameter draws (see :func:`parameter_draws`); empty = parameters taken as known.
    customers : pandas.DataFrame
        One row per customer: ``frequency``, ``recency``, ``T`` (days),
        ``expected_order_value`` and the ``groups`` columns.
    groups : sequence of str
        Columns to group by (e.g. ``["list_name", "priority_group"]``).
    horizon_days : float
        The horizon.
    spend_shape : float, optional
        The Gamma-Gamma ``p``: an order's value varies as ``value^2 / p``; None = order
        values taken as known.

    Returns
    -------
    pandas.DataFrame
        Per group: ``customers``, ``expected_buyers``, ``buyers_low``, ``buyers_high``,
        ``expected_revenue``, ``revenue_low``, ``revenue_high`` and the cumulative
        expected buyers over the groups in order (``cumulative_buyers``).
    """
    if customers.empty:
        return pd.DataFrame(
            columns=[*groups, "customers", "expected_buyers", "buyers_low", "buyers_high",
                     "expected_revenue", "revenue_low", "revenue_high", "cumulative_buyers"]
        )  # fmt: skip
    unit = days_per_unit(model.time_unit)
    t = horizon_days / unit
    x = customers["frequency"].to_numpy(float)
    t_x = customers["recency"].to_numpy(float) / unit
    age = customers["T"].to_numpy(float) / unit
    rows, inverse = np.unique(np.column_stack([x, t_x, age]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    aov = customers["expected_order_value"].to_numpy(float)
    aov = np.where(np.isfinite(aov), aov, 0.0)
    key = customers[list(groups)].astype(str).agg("\x1f".join, axis=1).to_numpy()
    labels, group_of = np.unique(key, return_inverse=True)

    def predict(m: PurchaseModel) -> tuple[np.ndarray, np.ndarray]:
        p = m.p_purchase(t, rows[:, 0], rows[:, 1], rows[:, 2])[inverse]
        e = m.expected_purchases(t, rows[:, 0], rows[:, 1], rows[:, 2])[inverse]
        return p, e

    def by_group(values: np.ndarray) -> np.ndarray:
        return np.bincount(group_of, weights=values, minlength=len(labels))

    p, e = predict(model)
    alive = np.clip(model.p_alive(rows[:, 0], rows[:, 1], rows[:, 2])[inverse], 1e-12, 1.0)
    m = e / alive  # expected purchases if alive
    shape = float(model.params["r"]) + x  # the purchase rate's posterior shape
    count_var = alive * (m + m**2 / shape) + alive * (1 - alive) * m**2
    value_var = aov**2 / spend_shape if spend_shape else np.zeros_like(aov)
    buyers, revenue = by_group(p), by_group(e * aov)
    chance_buyers = by_group(p * (1 - p))
    chance_revenue = by_group(count_var * aov**2 + e * value_var)
    if draws:
        sims = [predict(m) for m in draws]
        param_buyers = np.var([by_group(sp) for sp, _ in sims], axis=0, ddof=1)
        param_revenue = np.var([by_group(se * aov) for _, se in sims], axis=0, ddof=1)
    else:
        param_buyers = param_revenue = np.zeros(len(labels))
    sd_b = np.sqrt(chance_buyers + param_buyers)
    sd_r = np.sqrt(chance_revenue + param_revenue)
    out = pd.DataFrame([label.split("\x1f") for label in labels], columns=list(groups))
    out["customers"] = np.bincount(group_of, minlength=len(labels))
    out["expected_buyers"] = buyers
    out["buyers_low"] = np.maximum(buyers - Z90 * sd_b, 0.0)
    out["buyers_high"] = np.minimum(buyers + Z90 * sd_b, out["customers"])
    out["expected_revenue"] = revenue
    out["revenue_low"] = np.maximum(revenue - Z90 * sd_r, 0.0)
    out["revenue_high"] = revenue + Z90 * sd_r
    for col, kind in zip(groups, customers[list(groups)].dtypes, strict=True):
        if pd.api.types.is_integer_dtype(kind):
            out[col] = out[col].astype(kind)
    out = out.sort_values(list(groups), kind="stable").reset_index(drop=True)
    lead = list(groups)[:-1]
    out["cumulative_buyers"] = (
        out.groupby(lead)["expected_buyers"].cumsum() if lead else out["expected_buyers"].cumsum()
    )
    return out


def groups_to_target(forecast: pd.DataFrame, target: float, group: str) -> int | None:
    """How many groups (in order) the expected buyers need to reach ``target``."""
    reached = forecast.loc[forecast["cumulative_buyers"] >= target, group]
    return int(reached.iloc[0]) if len(reached) else None


def covariance_to_json(names: Sequence[str], cov: np.ndarray) -> dict[str, object]:
    return {"names": list(names), "log_covariance": np.asarray(cov, float).tolist()}


def covariance_from_json(doc: Mapping[str, object] | None) -> np.ndarray | None:
    if not doc:
        return None
    cov = np.asarray(doc["log_covariance"], float)
    return cov if cov.size and np.all(np.isfinite(cov)) else None


def interval_text(mean: float, low: float, high: float, digits: int = 0) -> str:
    """``"1,234 (1,100–1,370)"``."""
    if not all(math.isfinite(v) for v in (mean, low, high)):
        return "n/a"
    return f"{mean:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"
