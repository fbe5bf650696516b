"""Gamma-Gamma spend estimation: lifetimes' objective with an analytic gradient.

Fader & Hardie's note 025, eq. 1a: a repeat customer with ``x`` repeat purchases of mean
value ``m`` has, with transaction values ``Gamma(p, nu)`` and ``nu ~ Gamma(q, v)``::

    log L = log Gamma(p x + q) - log Gamma(p x) - log Gamma(q) + q log v
            + (p x - 1) log m + p x log x - (p x + q) log(x m + v)

lifetimes' ``GammaGammaFitter`` minimises the weighted mean negative log-likelihood plus
its L2 penalizer with autograd and then takes autograd's Hessian; here the same objective
is plain numpy (the Gamma-function terms once per distinct ``x``, the ``log m`` terms
summed once) with its exact gradient, minimised as lifetimes does
(:func:`ml.fitting.minimize_as_lifetimes`). The model class is
:class:`ml.spend_model.FittedSpendModel`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ml.fitting import minimize_as_lifetimes

#: Parameter names in lifetimes' order.
PARAM_NAMES: tuple[str, ...] = ("p", "q", "v")


class GammaGammaLikelihood:
    """Weighted Gamma-Gamma log-likelihood of a spend histogram, with its gradient.

    Parameters
    ----------
    x : numpy.ndarray
        Repeat purchases per row, > 0.
    m : numpy.ndarray
        Mean repeat-purchase value per row, > 0.
    w : numpy.ndarray
        Customers per row.
    """

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        self.m = np.asarray(m, dtype=float)
        weights = np.asarray(w, dtype=float)
        self.w = weights / float(np.sum(weights))
        self.x = x
        self.unique_x, inverse = np.unique(x, return_inverse=True)
        self.w_x = np.bincount(inverse, weights=self.w, minlength=len(self.unique_x))
        self.y = x * self.m  # the customer's repeat spend
        self.w_log_m = float(np.einsum("i,i->", self.w, np.log(self.m)))
        self.wx = self.w * x

    def mean_log_likelihood(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted mean log-likelihood per customer and its gradient in ``p, q, v``.

        Per row the ``log m``, ``log x``, ``log v`` and ``log(x m + v)`` terms are
        combined as ``-log m - p x log1p(v / y) - q log1p(y / v)`` with ``y = x m``, so
        no large sums cancel (BFGS's line search needs the value to rounding).

        Parameters
        ----------
        params : numpy.ndarray
            ``p, q, v``.

        Returns
        -------
        value : float
            Mean log-likelihood (no penalty).
        grad : numpy.ndarray
            Its gradient in the three parameters.
        """
        # numpy scalars: a line-search point at 0 or inf gives inf/nan, not an exception
        p, q, v = (np.float64(t) for t in params)
        ux, wx = self.unique_x, self.w_x
        shape = p * ux + q
        y = self.y
        spend_term = np.log1p(v / y)  # log((y + v) / y)
        scale_term = np.log1p(y / v)  # log((y + v) / v)
        value = (
            float(np.einsum("i,i->", wx, gammaln(shape) - gammaln(p * ux)))
            - float(gammaln(q))
            - self.w_log_m
            - p * float(np.einsum("i,i->", self.wx, spend_term))
            - q * float(np.einsum("i,i->", self.w, scale_term))
        )
        psi = digamma(shape)
        grad = np.array(
            [
                float(np.einsum("i,i->", wx * ux, psi - digamma(p * ux)))
                - float(np.einsum("i,i->", self.wx, spend_term)),
                float(np.einsum("i,i->", wx, psi))
                - float(digamma(q))
                - float(np.einsum("i,i->", self.w, scale_term)),
                float(np.einsum("i,i->", self.w, (q / v * y - p * self.x) / (y + v))),
            ]
        )
        return value, grad


def fit(x: np.ndarray, m: np.ndarray, w: np.ndarray, penalizer: float) -> dict[str, float]:
    """Fit Gamma-Gamma on a weighted spend histogram at one penalizer, as lifetimes does.

    Parameters
    ----------
    x, m, w : numpy.ndarray
        Repeat purchases, mean repeat value and customers per row.
    penalizer : float
        L2 penalizer coefficient on the parameters (lifetimes' ``penalizer_coef``).

    Returns
    -------
    dict of str to float
        ``p, q, v``.

    Raises
    ------
    ml.fitting.LifetimesFitError
        See :func:`ml.fitting.minimize_as_lifetimes`.
    """
    lik = GammaGammaLikelihood(x, m, w)
    pen = float(penalizer)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        value, grad = lik.mean_log_likelihood(params)
        return -value + pen * float(np.sum(params**2)), -params * grad + 2.0 * pen * params**2

    theta, _ = minimize_as_lifetimes(objective, PARAM_NAMES)
    return {k: float(v) for k, v in zip(PARAM_NAMES, np.exp(theta), strict=True)}


def log_likelihood(params: dict[str, float], x: np.ndarray, m: np.ndarray, w: np.ndarray) -> float:
    """Total (weight-summed) Gamma-Gamma log-likelihood without penalty.

    Parameters
    ----------
    params : mapping of str to float
        ``p, q, v``.
    x, m, w : numpy.ndarray
        Repeat purchases, mean repeat value and customers per row.

    Returns
    -------
    float
        The log-likelihood; may be non-finite, the caller checks.
    """
    values = np.array([float(params[k]) for k in PARAM_NAMES])
    with np.errstate(all="ignore"):
        mean_ll, _ = GammaGammaLikelihood(x, m, w).mean_log_likelihood(values)
    return float(mean_ll * np.sum(w))
