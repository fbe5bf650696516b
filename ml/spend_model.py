"""Gamma-Gamma model of the mean value of repeat purchases (lifetimes GammaGammaFitter)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import GammaGammaFitter
from numpy.typing import ArrayLike, NDArray

from ml._quiet import filtered_stdout
from ml.errors import FIT_ERRORS, ModelError
from ml.histogram import spend_histogram
from ml.purchase_models import PENALIZER_LADDER

SPEND_PARAM_NAMES: tuple[str, ...] = ("p", "q", "v")

#: Default minimum number of repeat customers with positive spend.
MIN_SPEND_CUSTOMERS = 20


@dataclass(frozen=True)
class FittedSpendModel:
    """A converged Gamma-Gamma spend model.

    Attributes
    ----------
    params : dict of str to float
        ``p`` (shape of a transaction value), ``q`` and ``v`` (shape and rate of the
        customer-level scale). The population mean order value is ``p v / (q - 1)``.
    log_likelihood : float
        Total (weight-summed) log-likelihood without the penalty term; NaN if loaded.
    penalizer : float
        Penalizer coefficient of the ladder step that converged.
    customers : int
        Repeat customers with positive spend the model was fitted on.
    frequency_spend_corr : float
        Pearson correlation between ``frequency`` and ``monetary_value`` among those
        customers. Gamma-Gamma assumes spend is independent of purchase frequency; a
        correlation far from 0 (say ``|r| > 0.3``) means the assumption is doubtful.
    fitter : object
        The lifetimes ``GammaGammaFitter`` with ``params_`` set.
    """

    params: dict[str, float]
    log_likelihood: float
    penalizer: float
    customers: int
    frequency_spend_corr: float
    fitter: Any = field(default=None, repr=False, compare=False)

    @property
    def population_mean(self) -> float:
        """Expected order value of a customer with no repeat history: ``p v / (q - 1)``."""
        p, q, v = (self.params[k] for k in SPEND_PARAM_NAMES)
        return p * v / (q - 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (everything but the fitter)."""

        def _f(value: float) -> float | None:
            return float(value) if math.isfinite(value) else None

        return {
            "params": {k: float(v) for k, v in self.params.items()},
            "log_likelihood": _f(self.log_likelihood),
            "penalizer": _f(self.penalizer),
            "customers": int(self.customers),
            "frequency_spend_corr": _f(self.frequency_spend_corr),
        }


def _make_fitter(params: Mapping[str, float]) -> GammaGammaFitter:
    fitter = GammaGammaFitter()
    fitter.params_ = pd.Series([float(params[k]) for k in SPEND_PARAM_NAMES], SPEND_PARAM_NAMES)
    return fitter


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def fit_spend_model(
    features: pd.DataFrame,
    *,
    penalizers: Sequence[float] = PENALIZER_LADDER,
    min_customers: int = MIN_SPEND_CUSTOMERS,
) -> FittedSpendModel:
    """Fit Gamma-Gamma on repeat customers, via the weighted ``(frequency, m)`` histogram.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer with ``frequency`` and ``monetary_value`` (mean value of
        repeat purchase occasions). Customers with ``frequency == 0`` or
        ``monetary_value <= 0`` are ignored.
    penalizers : sequence of float, default (0.0, 0.001, 0.01, 0.1)
        Penalizer ladder. A fit counts as converged when lifetimes raises no error, all
        parameters are finite and > 0, the log-likelihood is finite, and ``q > 1`` (so
        the population mean order value ``p v / (q - 1)`` exists).
    min_customers : int, default 20
        Minimum number of repeat customers with positive spend.

    Returns
    -------
    FittedSpendModel
        Parameters, diagnostics and the frequency–spend correlation.

    Raises
    ------
    ModelError
        If columns are missing, too few repeat customers have positive spend, or no
        penalizer converges.
    """
    hist = spend_histogram(features)
    customers = int(hist["weight"].sum())
    if customers < min_customers:
        raise ModelError(
            f"only {customers} repeat customers with a positive monetary_value; the "
            f"Gamma-Gamma spend model needs at least {min_customers} — load more history "
            "or check that monetary_value is filled for repeat customers"
        )
    x = hist["frequency"].to_numpy(dtype=float)
    m = hist["monetary_value"].to_numpy(dtype=float)
    w = hist["weight"].to_numpy(dtype=float)
    corr = _correlation(np.repeat(x, w.astype(np.int64)), np.repeat(m, w.astype(np.int64)))
    last_error = "no attempt made"
    for penalizer in penalizers:
        fitter = GammaGammaFitter(penalizer_coef=float(penalizer))
        try:
            with (
                filtered_stdout() as stdout,
                stdout.silence_current_thread(),
                np.errstate(all="ignore"),
            ):
                fitter.fit(x, m, weights=w)
        except FIT_ERRORS as exc:  # no convergence / numeric breakdown only
            last_error = f"{type(exc).__name__}: {str(exc).strip()}"
            continue
        params = {k: float(fitter.params_[k]) for k in SPEND_PARAM_NAMES}
        values = np.array(list(params.values()))
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            last_error = f"non-finite or non-positive parameters {params}"
            continue
        if params["q"] <= 1.0:
            last_error = f"q = {params['q']:.4g} <= 1, so the population mean spend is undefined"
            continue
        with np.errstate(all="ignore"):
            nll = GammaGammaFitter._negative_log_likelihood(np.log(values), x, m, w, 0.0)
        ll = float(-nll * w.sum())
        if not math.isfinite(ll):
            last_error = "non-finite log-likelihood"
            continue
        return FittedSpendModel(params, ll, float(penalizer), customers, corr, fitter)
    tried = ", ".join(f"{p:g}" for p in penalizers)
    raise ModelError(
        f"the Gamma-Gamma spend model did not converge with any penalizer ({tried}); last "
        f"error: {last_error}. Check monetary_value for outliers or unit errors"
    )


def load_spend_model(
    params: Mapping[str, float],
    *,
    log_likelihood: float = math.nan,
    penalizer: float = math.nan,
    customers: int = 0,
    frequency_spend_corr: float = math.nan,
) -> FittedSpendModel:
    """Rebuild a Gamma-Gamma model from saved parameters.

    Parameters
    ----------
    params : mapping of str to float
        ``p``, ``q`` and ``v``.
    log_likelihood, penalizer, frequency_spend_corr : float, optional
        Diagnostics to carry along (NaN if unknown).
    customers : int, default 0
        Fitting sample size, if known.

    Returns
    -------
    FittedSpendModel
        With a lifetimes fitter whose ``params_`` are set.

    Raises
    ------
    ModelError
        If a parameter is missing, non-finite, <= 0, or ``q <= 1``.
    """
    missing = [k for k in SPEND_PARAM_NAMES if k not in params]
    if missing:
        raise ModelError(
            f"saved Gamma-Gamma parameters lack {', '.join(missing)}; expected p, q, v — "
            "refit the spend model"
        )
    clean = {k: float(params[k]) for k in SPEND_PARAM_NAMES}
    if not all(math.isfinite(v) and v > 0 for v in clean.values()) or clean["q"] <= 1:
        raise ModelError(
            f"saved Gamma-Gamma parameters {clean} are invalid (need finite p, v > 0 and "
            "q > 1) — refit the spend model"
        )
    return FittedSpendModel(
        clean,
        float(log_likelihood),
        float(penalizer),
        int(customers),
        float(frequency_spend_corr),
        _make_fitter(clean),
    )


def expected_order_value(
    spend_model: FittedSpendModel, frequency: ArrayLike, monetary_value: ArrayLike
) -> NDArray[np.float64]:
    """Conditional expected average order value per customer.

    ``E[M | x, m] = (1 - w) * p v / (q - 1) + w * m`` with ``w = p x / (p x + q - 1)``
    (lifetimes' ``conditional_expected_average_profit``, Fader & Hardie note 025 eq. 5).
    Customers with ``frequency == 0`` (or a missing ``monetary_value``) get the
    population mean ``p v / (q - 1)``.

    Parameters
    ----------
    spend_model : FittedSpendModel
        Fitted or loaded Gamma-Gamma model.
    frequency : array_like
        Repeat purchase occasions.
    monetary_value : array_like
        Mean value of repeat occasions (0 or NaN for one-time buyers).

    Returns
    -------
    numpy.ndarray
        Expected order values.
    """
    p, q, v = (spend_model.params[k] for k in SPEND_PARAM_NAMES)
    x = np.asarray(frequency, dtype=float)
    raw = np.asarray(monetary_value, dtype=float)
    known = (x > 0) & np.isfinite(raw)
    m = np.where(known, raw, 0.0)
    weight = np.where(known, p * x / (p * x + q - 1.0), 0.0)
    population = p * v / (q - 1.0)
    return (1.0 - weight) * population + weight * m
