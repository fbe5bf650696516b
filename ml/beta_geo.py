"""BG/NBD and MBG/NBD estimation: lifetimes' objective with an analytic gradient.

lifetimes' ``BetaGeoFitter`` and ``ModifiedBetaGeoFitter`` minimise their objective with
autograd's value and gradient (a traced evaluation of every histogram row, about 2.5x
the cost of plain numpy) and then take autograd's Hessian of the whole objective for
standard errors the pipeline never reads. Here the same objective is evaluated with
numpy, its ``gammaln`` terms once per distinct frequency, with the exact gradient, and
minimised by the same method (scipy's BFGS from lifetimes' start and tolerance), so the
fit reaches lifetimes' optimum (tested) without the Hessian. The model classes with the
predictions are :class:`ml.purchase_models.BetaGeo` and
:class:`ml.purchase_models.ModifiedBetaGeo`.

Per customer (Fader, Hardie & Lee 2005, eq. 6; Batislam et al. 2007), with ``d = 1`` for
BG/NBD (dropout only after a repeat purchase) and ``d = 0`` for MBG/NBD::

    L = Gamma(r + x) alpha^r / Gamma(r)
        * B(a, b + x + 1 - d) / B(a, b)
        * [ (alpha + T)^-(r + x) + [x >= d] a / (b + x - d) (alpha + t_x)^-(r + x) ]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import digamma, gammaln

from ml.fitting import minimize_as_lifetimes

#: Parameter names in lifetimes' order.
PARAM_NAMES: tuple[str, ...] = ("r", "alpha", "a", "b")


def _wsum(w: np.ndarray, values: np.ndarray) -> float:
    # einsum, not ``@``: BLAS dot products may hand off to worker threads that stall when
    # the other core runs the other candidate's fit (see ml.pareto_nbd).
    return float(np.einsum("i,i->", w, values))


class BetaGeoLikelihood:
    """Weighted BG/NBD or MBG/NBD log-likelihood of a histogram, with its gradient.

    Parameters
    ----------
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row (any time unit).
    w : numpy.ndarray
        Customers per row.
    modified : bool
        MBG/NBD (dropout possible right after the first purchase) instead of BG/NBD.
    """

    def __init__(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray, modified: bool
    ) -> None:
        self.d = 0.0 if modified else 1.0
        x = np.asarray(x, dtype=float)
        self.t_x = np.asarray(t_x, dtype=float)
        self.age = np.asarray(age, dtype=float)
        weights = np.asarray(w, dtype=float)
        self.w = weights / float(np.sum(weights))
        self.unique_x, inverse = np.unique(x, return_inverse=True)
        self.row_x = inverse
        self.x = x
        self.w_x = np.bincount(inverse, weights=self.w, minlength=len(self.unique_x))

    def mean_log_likelihood(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted mean log-likelihood per customer and its gradient in ``r, alpha, a, b``.

        Parameters
        ----------
        params : numpy.ndarray
            ``r, alpha, a, b`` in the data's time unit.

        Returns
        -------
        value : float
            Mean log-likelihood (no penalty).
        grad : numpy.ndarray
            Its gradient in the four parameters.
        """
        # numpy scalars: a line-search point at 0 or inf gives inf/nan, not an exception
        r, alpha, a, b = (np.float64(v) for v in params)
        d, ux, wx = self.d, self.unique_x, self.w_x
        # per distinct x: the Gamma and Beta function terms and the dropout term's constant
        bx = b + ux + 1.0 - d
        abx = a + b + ux + 1.0 - d
        with np.errstate(divide="ignore", invalid="ignore"):
            # log of the dropout term's constant a / (b + x - d); no term (-inf) for x < d
            log_c = np.where(ux >= d, np.log(a) - np.log(b + ux - d), -np.inf)
            inv_bx_d = np.where(ux >= d, 1.0 / (b + ux - d), 0.0)
        m = r + self.x
        log_at = np.log(alpha + self.age)
        log_ax = np.log(alpha + self.t_x)
        alive = -m * log_at
        dead = np.take(log_c, self.row_x) - m * log_ax
        z = np.logaddexp(alive, dead)
        p_dead = np.exp(dead - z)  # posterior weight of the dropout term
        p_alive = 1.0 - p_dead

        value = (
            _wsum(wx, gammaln(r + ux))
            - float(gammaln(r))
            + r * float(np.log(alpha))
            + float(gammaln(a + b) - gammaln(b))
            + _wsum(wx, gammaln(bx) - gammaln(abx))
            + _wsum(self.w, z)
        )
        wp_dead_x = np.bincount(self.row_x, weights=self.w * p_dead, minlength=len(ux))
        psi_ab = float(digamma(a + b))
        grad = np.array(
            [
                _wsum(wx, digamma(r + ux))
                - float(digamma(r))
                + float(np.log(alpha))
                - _wsum(self.w, p_alive * log_at + p_dead * log_ax),
                r / alpha
                - _wsum(self.w, m * (p_alive / (alpha + self.age) + p_dead / (alpha + self.t_x))),
                psi_ab - _wsum(wx, digamma(abx)) + float(np.sum(wp_dead_x)) / a,
                psi_ab
                - float(digamma(b))
                + _wsum(wx, digamma(bx) - digamma(abx))
                - _wsum(wp_dead_x, inv_bx_d),
            ]
        )
        return value, grad


class BetaGeoFit(NamedTuple):
    """Result of :func:`fit` at one penalizer.

    Attributes
    ----------
    params : dict of str to float
        ``r, alpha, a, b`` in the data's time unit.
    time_scale : float
        lifetimes' time rescaling ``1 / max(T)``.
    mean_objective : float
        Minimised objective: penalised negative log-likelihood per customer, in scaled
        time (lifetimes' ``_negative_log_likelihood_``).
    """

    params: dict[str, float]
    time_scale: float
    mean_objective: float


def fit(
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
    w: np.ndarray,
    penalizer: float,
    *,
    modified: bool,
) -> BetaGeoFit:
    """Fit BG/NBD (or MBG/NBD) on a weighted histogram at one penalizer, as lifetimes does.

    lifetimes' objective: time scaled to ``max(T) == 1``, the weighted mean negative
    log-likelihood plus ``penalizer`` times the sum of the squared (scaled) parameters,
    minimised over log parameters by BFGS from all log parameters 0.1 with tolerance
    1e-7.

    Parameters
    ----------
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row, in the model time unit.
    w : numpy.ndarray
        Customers per row.
    penalizer : float
        L2 penalizer coefficient (lifetimes' ``penalizer_coef``).
    modified : bool
        MBG/NBD instead of BG/NBD.

    Returns
    -------
    BetaGeoFit
        Parameters in the data's time unit and the optimiser's result.

    Raises
    ------
    ml.fitting.LifetimesFitError
        See :func:`ml.fitting.minimize_as_lifetimes`; the penalizer ladder then tries the
        next coefficient.
    """
    scale = 1.0 / float(np.max(age))
    lik = BetaGeoLikelihood(x, np.asarray(t_x) * scale, np.asarray(age) * scale, w, modified)
    pen = float(penalizer)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        value, grad = lik.mean_log_likelihood(params)
        return (
            -value + pen * float(np.sum(params**2)),
            -params * grad + 2.0 * pen * params**2,
        )

    theta, value = minimize_as_lifetimes(objective, PARAM_NAMES)
    params = np.exp(theta)
    params[1] /= scale
    fitted = {k: float(v) for k, v in zip(PARAM_NAMES, params, strict=True)}
    return BetaGeoFit(fitted, scale, value)


def log_likelihood(
    params: dict[str, float],
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
    w: np.ndarray,
    *,
    modified: bool,
) -> float:
    """Total (weight-summed) BG/NBD or MBG/NBD log-likelihood without penalty.

    Parameters
    ----------
    params : mapping of str to float
        ``r, alpha, a, b`` in the data's time unit.
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row.
    w : numpy.ndarray
        Customers per row.
    modified : bool
        MBG/NBD instead of BG/NBD.

    Returns
    -------
    float
        The log-likelihood; may be non-finite, the caller checks.
    """
    values = np.array([float(params[p]) for p in PARAM_NAMES])
    with np.errstate(all="ignore"):
        mean_ll, _ = BetaGeoLikelihood(x, t_x, age, w, modified).mean_log_likelihood(values)
    return float(mean_ll * np.sum(w))
