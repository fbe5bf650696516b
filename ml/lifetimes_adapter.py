"""The one module that touches lifetimes: its fitters and their internals.

The fits run outside lifetimes, on its objectives (:mod:`ml.beta_geo`,
:mod:`ml.pareto_nbd`, :mod:`ml.gamma_gamma`); a fitted model keeps a lifetimes fitter
for lifetimes' prediction methods. lifetimes 0.11.3 keeps parts of that fitter's state
behind underscores (``_scale``, ``_negative_log_likelihood_``, ``_hessian_``) besides
``params_``. Everything that relies on those details is here, so a lifetimes upgrade
(or its replacement) changes one file; the rest of ``ml`` imports only the names below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from numpy.typing import ArrayLike

__all__ = [
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "ParetoNBDFitter",
    "beta_geo_fitter",
    "expected_purchases_new_customer",
    "pareto_fitter",
    "with_params",
]


def _set_params(fitter: Any, params: Mapping[str, float], names: Sequence[str]) -> Any:
    fitter.params_ = pd.Series([float(params[p]) for p in names], index=list(names))
    if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
        # lifetimes' purchase fitters alias predict in fit(); a rebuilt one should too
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    return fitter


def with_params(fitter_class: type, params: Mapping[str, float], names: Sequence[str]) -> Any:
    """Return a fitter of ``fitter_class`` that predicts with ``params``, as if fitted.

    Parameters
    ----------
    fitter_class : type
        A lifetimes fitter class, e.g. :class:`lifetimes.BetaGeoFitter`.
    params : mapping of str to float
        Parameter values in lifetimes' names.
    names : sequence of str
        The parameter names in lifetimes' order.

    Returns
    -------
    object
        A fitter (penalizer 0) whose ``params_`` are set, so its prediction methods work.
    """
    return _set_params(fitter_class(), params, names)


def _store_fit(
    fitter: Any,
    *,
    time_scale: float,
    negative_log_likelihood: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
) -> Any:
    # the state lifetimes' fit leaves besides params_ (no Hessian: nothing reads it)
    fitter._scale = time_scale
    fitter._negative_log_likelihood_ = negative_log_likelihood
    fitter._hessian_ = None
    w = np.asarray(weights, dtype=float)
    fitter.data = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "weights": w})
    return fitter


def pareto_fitter(
    params: Mapping[str, float],
    names: Sequence[str],
    *,
    penalizer: float,
    time_scale: float,
    mean_objective: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
) -> Any:
    """Return a ``ParetoNBDFitter`` in the state lifetimes' own ``fit`` would leave it.

    The Pareto/NBD fit runs outside lifetimes (see :mod:`ml.pareto_nbd`); this stores
    its result the way ``ParetoNBDFitter.fit`` does, so the fitter's methods work.

    Parameters
    ----------
    params : mapping of str to float
        Fitted ``r, alpha, s, beta`` in the data's time unit.
    names : sequence of str
        Parameter names in lifetimes' order.
    penalizer : float
        Penalizer coefficient used.
    time_scale : float
        lifetimes' time rescaling, ``1 / max(T)``.
    mean_objective : float
        Minimised penalised negative log-likelihood per histogram row.
    frequency, recency, T, weights : numpy.ndarray
        The fitting data (one row per histogram row).

    Returns
    -------
    lifetimes.ParetoNBDFitter
        With ``params_``, ``data``, ``predict`` and lifetimes' private fit state set.
    """
    fitter = _set_params(ParetoNBDFitter(penalizer_coef=penalizer), params, names)
    x = np.asarray(frequency, dtype=float)
    w = np.asarray(weights, dtype=float)
    mean_x = float(np.einsum("i,i->", w / float(np.sum(w)), x))
    # lifetimes' reported objective: scaled-time log-likelihood is ll - x log(scale).
    nll = len(x) * (mean_objective + mean_x * math.log(time_scale))
    return _store_fit(
        fitter,
        time_scale=time_scale,
        negative_log_likelihood=nll,
        frequency=frequency,
        recency=recency,
        T=T,
        weights=weights,
    )


def beta_geo_fitter(
    fitter_class: type,
    params: Mapping[str, float],
    names: Sequence[str],
    *,
    penalizer: float,
    time_scale: float,
    mean_objective: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
) -> Any:
    """Return a ``BetaGeoFitter`` or ``ModifiedBetaGeoFitter`` as lifetimes' ``fit`` leaves it.

    The fit runs outside lifetimes (see :mod:`ml.beta_geo`) on the same objective; the
    fitter gets the parameters, data, scale and minimised objective, but no Hessian or
    standard errors.

    Parameters
    ----------
    fitter_class : type
        ``BetaGeoFitter`` or ``ModifiedBetaGeoFitter``.
    params : mapping of str to float
        Fitted ``r, alpha, a, b`` in the data's time unit.
    names : sequence of str
        Parameter names in lifetimes' order.
    penalizer : float
        Penalizer coefficient used.
    time_scale : float
        lifetimes' time rescaling, ``1 / max(T)``.
    mean_objective : float
        The minimised objective (lifetimes' ``_negative_log_likelihood_``).
    frequency, recency, T, weights : numpy.ndarray
        The fitting data (one row per histogram row).

    Returns
    -------
    object
        The fitter with ``params_``, ``data``, ``predict`` and lifetimes' fit state set.
    """
    fitter = _set_params(fitter_class(penalizer_coef=penalizer), params, names)
    return _store_fit(
        fitter,
        time_scale=time_scale,
        negative_log_likelihood=mean_objective,
        frequency=frequency,
        recency=recency,
        T=T,
        weights=weights,
    )


def expected_purchases_new_customer(fitter: Any, t: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in ``(0, t]`` after a first purchase (unconditional).

    Parameters
    ----------
    fitter : object
        A fitted (or rebuilt) lifetimes purchase fitter.
    t : array_like
        Time since the first purchase, in the model time unit.

    Returns
    -------
    numpy.ndarray
        Expected counts, shape of ``t``.
    """
    return np.asarray(fitter.expected_number_of_purchases_up_to_time(t), dtype=float)
