"""Gamma-Gamma model of the mean value of repeat purchases (fitted by :mod:`ml.gamma_gamma`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ml import gamma_gamma
from ml import lifetimes_adapter as lt
from ml.errors import ModelError
from ml.fitting import (
    PENALIZER_LADDER,
    FittedModel,
    RejectedFit,
    climb_ladder,
    json_float,
    parameter_problem,
)
from ml.histogram import spend_histogram

SPEND_PARAM_NAMES: tuple[str, ...] = gamma_gamma.PARAM_NAMES

#: Default minimum number of repeat customers with positive spend.
MIN_SPEND_CUSTOMERS = 20


@dataclass(frozen=True, kw_only=True)
class FittedSpendModel(FittedModel):
    """A converged (or loaded) Gamma-Gamma spend model.

    Construct with keyword arguments (usually via :func:`fit_spend_model`,
    :meth:`from_dict` or :func:`load_spend_model`); construction checks the parameters
    and rebuilds the lifetimes fitter when none is given.

    Attributes
    ----------
    params : dict of str to float
        ``p`` (shape of a transaction value), ``q`` and ``v`` (shape and rate of the
        customer-level scale). The population mean order value is ``p v / (q - 1)``.
    log_likelihood, penalizer, customers, fitter
        Fit diagnostics (``customers``: repeat customers with positive spend) and the
        lifetimes ``GammaGammaFitter``, see :class:`ml.fitting.FittedModel`.
    frequency_spend_corr : float
        Pearson correlation between ``frequency`` and ``monetary_value`` among those
        customers. Gamma-Gamma assumes spend is independent of purchase frequency; a
        correlation far from 0 (say ``|r| > 0.3``) means the assumption is doubtful.

    Raises
    ------
    ModelError
        If a parameter is missing, non-finite, <= 0, or ``q <= 1``.
    """

    frequency_spend_corr: float = math.nan

    param_names: ClassVar[tuple[str, ...]] = SPEND_PARAM_NAMES
    label: ClassVar[str] = "Gamma-Gamma"
    remedy: ClassVar[str] = "refit the spend model"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "frequency_spend_corr", float(self.frequency_spend_corr))
        clean = self.params
        if not all(math.isfinite(v) and v > 0 for v in clean.values()) or clean["q"] <= 1:
            raise ModelError(
                f"saved Gamma-Gamma parameters {clean} are invalid (need finite p, v > 0 and "
                "q > 1) — refit the spend model"
            )
        if self.fitter is None:
            self._set_fitter(lt.with_params(lt.GammaGammaFitter, clean, SPEND_PARAM_NAMES))

    @property
    def population_mean(self) -> float:
        """Expected order value of a customer with no repeat history: ``p v / (q - 1)``."""
        p, q, v = (self.params[k] for k in SPEND_PARAM_NAMES)
        return p * v / (q - 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (everything but the fitter).

        Returns
        -------
        dict
            Keys ``params, log_likelihood, penalizer, customers, frequency_spend_corr``;
            non-finite floats become ``None``. :meth:`from_dict` reads it back.
        """
        return {
            **self._fit_summary(),
            "frequency_spend_corr": json_float(self.frequency_spend_corr),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FittedSpendModel:
        """Rebuild the model from :meth:`to_dict` output (e.g. a ``params.json`` entry).

        Parameters
        ----------
        doc : mapping
            ``params``; the diagnostics are optional (``None`` means unknown).

        Returns
        -------
        FittedSpendModel
            With a lifetimes fitter whose ``params_`` are set.

        Raises
        ------
        ModelError
            If a parameter is missing or invalid.
        """
        corr = doc.get("frequency_spend_corr")
        return cls(
            params=dict(doc.get("params") or {}),
            frequency_spend_corr=math.nan if corr is None else float(corr),
            **cls._diagnostics(doc),
        )


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
        Penalizer ladder (see :func:`ml.fitting.climb_ladder`). A fit counts as
        converged when the optimiser converges (see
        :func:`ml.fitting.minimize_as_lifetimes`), all parameters are finite and > 0,
        the log-likelihood is finite, and ``q > 1`` (so the population mean order
        value ``p v / (q - 1)`` exists).
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

    def attempt(penalizer: float) -> FittedSpendModel:
        params = gamma_gamma.fit(x, m, w, penalizer)
        problem = parameter_problem(params)
        if problem:
            raise RejectedFit(problem)
        if params["q"] <= 1.0:
            raise RejectedFit(
                f"q = {params['q']:.4g} <= 1, so the population mean spend is undefined"
            )
        ll = gamma_gamma.log_likelihood(params, x, m, w)
        if not math.isfinite(ll):
            raise RejectedFit("non-finite log-likelihood")
        return FittedSpendModel(
            params=params,
            log_likelihood=ll,
            penalizer=penalizer,
            customers=customers,
            frequency_spend_corr=corr,
        )

    return climb_ladder(
        attempt,
        penalizers,
        "the Gamma-Gamma spend model did not converge with any penalizer ({tried}); last "
        "error: {last_error}. Check monetary_value for outliers or unit errors",
    )


def load_spend_model(
    params: Mapping[str, float],
    *,
    log_likelihood: float = math.nan,
    penalizer: float = math.nan,
    customers: int = 0,
    frequency_spend_corr: float = math.nan,
) -> FittedSpendModel:
    """Rebuild a Gamma-Gamma model from saved parameters (e.g. the runs table).

    Parameters
    ----------
    params : mapping of str to float
        ``p``, ``q`` and ``v`` (extra keys are ignored).
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
    return FittedSpendModel(
        params=dict(params),
        log_likelihood=log_likelihood,
        penalizer=penalizer,
        customers=customers,
        frequency_spend_corr=frequency_spend_corr,
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
