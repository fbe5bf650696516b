"""Fit BG/NBD, Pareto/NBD and MBG/NBD purchase models on the customer histogram.

The three models come from lifetimes 0.11.3 (``BetaGeoFitter``, ``ParetoNBDFitter``,
``ModifiedBetaGeoFitter``) and are always fitted on the weighted
``(frequency, recency, T)`` histogram (see :mod:`ml.histogram`). Every fit walks an
escalation ladder of L2 penalizer coefficients until one converges.

BG/NBD and MBG/NBD use lifetimes' own fitters. Pareto/NBD minimises the same objective
as ``ParetoNBDFitter`` (including its penalizer on time-scaled parameters) with its own
code: lifetimes' Nelder-Mead search evaluates a Gauss hypergeometric function per row,
which costs up to tens of microseconds near ``beta >> alpha`` and returns NaN where the
dropout process is weakly identified. Here the likelihood is a Gauss-Legendre quadrature
with an analytic gradient, minimised by L-BFGS-B from a fixed start (see
:func:`_fit_pareto_nbd`); the result is stored on a ``ParetoNBDFitter`` so predictions,
:func:`load_purchase_model` and :mod:`ml.formulas` work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from ml._quiet import filtered_stdout
from ml.errors import FIT_ERRORS, ModelError
from ml.formulas import PARAM_NAMES
from ml.histogram import (
    DataSummary,
    TimeUnit,
    days_per_unit,
    require_columns,
    summarize,
    validate_rfm,
)

#: Model names in tie-break preference order.
MODEL_NAMES: tuple[str, ...] = ("bgnbd", "pareto_nbd", "mbgnbd")

#: Human-readable labels.
MODEL_LABELS: dict[str, str] = {
    "bgnbd": "BG/NBD",
    "pareto_nbd": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
}

#: Penalizer coefficients tried in order until a fit converges.
PENALIZER_LADDER: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1)

#: Parameters outside this range are treated as a degenerate (non-converged) fit.
PARAM_RANGE: tuple[float, float] = (1e-6, 1e6)

#: L-BFGS-B iterations allowed per Pareto/NBD penalizer attempt (function evaluations:
#: three times as many, about 0.1 s each per 400k histogram rows). Fits need 20-45.
PARETO_MAX_ITER = 100

#: A Pareto/NBD iterate with dropout shape ``s`` above this is a run-off: the Gamma
#: distribution of dropout rates has collapsed to a point (coefficient of variation
#: ``1 / sqrt(s)`` below 3%) and ``s`` and ``beta`` grow together without bound. The
#: attempt stops there and counts as degenerate, so the next penalizer is tried.
PARETO_MAX_SHAPE = 1e3

#: Default minimum number of customers for a fit.
MIN_CUSTOMERS = 500

#: Default minimum number of customers with a repeat purchase for a fit.
MIN_REPEAT_CUSTOMERS = 100

_FITTERS: dict[str, type] = {
    "bgnbd": BetaGeoFitter,
    "pareto_nbd": ParetoNBDFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
}


@dataclass(frozen=True)
class FittedPurchaseModel:
    """A converged purchase model.

    Attributes
    ----------
    name : str
        ``"bgnbd"``, ``"pareto_nbd"`` or ``"mbgnbd"``.
    params : dict of str to float
        lifetimes' parameters in the model time unit: ``r, alpha, a, b`` (BG/NBD and
        MBG/NBD) or ``r, alpha, s, beta`` (Pareto/NBD).
    log_likelihood : float
        Total (weight-summed) log-likelihood of the fitting data at ``params`` without
        the penalty term, in the model time unit. NaN for models loaded from JSON
        without it.
    penalizer : float
        Penalizer coefficient of the ladder step that converged.
    customers : int
        Number of customers (sum of histogram weights) the model was fitted on.
    time_unit : str
        ``"week"`` or ``"day"``; recency, T and horizons must be in this unit.
    fitter : object
        The lifetimes fitter with ``params_`` set (the fitted object, or one rebuilt from
        ``params`` by :func:`load_purchase_model`).
    """

    name: str
    params: dict[str, float]
    log_likelihood: float
    penalizer: float
    customers: int
    time_unit: str
    fitter: Any = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Human-readable model name, e.g. ``"BG/NBD"``."""
        return MODEL_LABELS.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (everything but the fitter).

        Returns
        -------
        dict
            Keys ``name, params, log_likelihood, penalizer, customers, time_unit``;
            non-finite floats become ``None``.
        """
        return {
            "name": self.name,
            "params": {k: float(v) for k, v in self.params.items()},
            "log_likelihood": _json_float(self.log_likelihood),
            "penalizer": _json_float(self.penalizer),
            "customers": int(self.customers),
            "time_unit": self.time_unit,
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _check_name(name: str) -> None:
    if name not in _FITTERS:
        raise ModelError(f"unknown purchase model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def check_fit_data(
    features: pd.DataFrame,
    min_customers: int = MIN_CUSTOMERS,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
    *,
    time_unit: TimeUnit = "week",
) -> DataSummary:
    """Guard against fitting purchase models on too little or malformed data.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer with ``frequency``, ``recency`` and ``T`` (days).
    min_customers : int, default 500
        Minimum number of customers (rows). Below a few hundred customers the four
        population parameters are poorly identified. Configured upstream as
        ``CRM_MIN_CUSTOMERS``.
    min_repeat_customers : int, default 100
        Minimum number of customers with ``frequency > 0``; the repeat-purchase and
        dropout parameters are learned only from them. Configured upstream as
        ``CRM_MIN_REPEAT_CUSTOMERS``.
    time_unit : {"week", "day"}, default "week"
        Unit for counting distinct histogram rows in the returned summary.

    Returns
    -------
    DataSummary
        Customers, repeat customers and distinct histogram rows.

    Raises
    ------
    ModelError
        If columns are missing or invalid, or either threshold is not met.
    """
    validate_rfm(features)
    customers = int(len(features))
    if customers < min_customers:
        raise ModelError(
            f"only {customers} customers with a purchase; the purchase-model fit "
            f"(BG/NBD, Pareto/NBD, MBG/NBD) needs at least {min_customers} — load more "
            "history or lower CRM_MIN_CUSTOMERS"
        )
    repeat = int((features["frequency"].to_numpy(dtype=float) > 0).sum())
    if repeat < min_repeat_customers:
        raise ModelError(
            f"only {repeat} customers with a repeat purchase; the BG/NBD fit needs at "
            f"least {min_repeat_customers} — load more history or lower "
            "CRM_MIN_REPEAT_CUSTOMERS"
        )
    return summarize(features, time_unit)


def _make_fitter(name: str, params: Mapping[str, float]) -> Any:
    fitter = _FITTERS[name]()
    fitter.params_ = pd.Series(
        [float(params[p]) for p in PARAM_NAMES[name]], index=list(PARAM_NAMES[name])
    )
    fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    return fitter


def _log_likelihood(
    name: str,
    params: Mapping[str, float],
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
    w: np.ndarray,
) -> float:
    """Total weighted log-likelihood without penalty, in the data's time unit."""
    values = np.array([float(params[p]) for p in PARAM_NAMES[name]])
    with np.errstate(all="ignore"):
        if name == "pareto_nbd":
            mean_ll, _ = _ParetoLikelihood(x, t_x, age, w, 0.0).mean_log_likelihood(values)
            return float(mean_ll * w.sum())
        nll = _FITTERS[name]._negative_log_likelihood(np.log(values), x, t_x, age, w, 0.0)
        return float(-nll * w.sum())


def _hist_arrays(hist: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    require_columns(hist, ("frequency", "recency", "T"), "histogram")
    if len(hist) == 0:
        raise ModelError("histogram is empty: no customers to fit; load order history first")
    validate_rfm(hist, "histogram")
    x = hist["frequency"].to_numpy(dtype=float).round().astype(np.int64)
    t_x = hist["recency"].to_numpy(dtype=float)
    age = hist["T"].to_numpy(dtype=float)
    if "weight" in hist.columns:
        w = hist["weight"].to_numpy(dtype=float)
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise ModelError("histogram.weight must be positive customer counts")
    else:
        w = np.ones(len(hist), dtype=float)
    if float(age.max()) <= 0:
        raise ModelError(
            "every customer has T = 0 (first purchase on the as-of date); the purchase "
            "models need customers observed for some time — move the as-of date later"
        )
    return x, t_x, age, w


# ---------------------------------------------------------------------------
# Pareto/NBD likelihood and fit
# ---------------------------------------------------------------------------

#: Gauss-Legendre nodes per histogram row for the Pareto/NBD dropout integral.
PARETO_QUAD_NODES = 16

#: The integration window ends where the log-integrand has fallen this far below its
#: peak; the mass cut off is below ``exp(-36)`` (about 2e-16) of the integral.
_PARETO_WINDOW_DROP = 36.0

#: Newton steps locating the window ends. They approach from outside the window, so any
#: number of steps gives a safe window; more steps give a tighter one.
_PARETO_NEWTON_STEPS = 8

#: Histogram rows per block of the quadrature. Each temporary is then 4096 x 16 doubles
#: (512 KiB) and stays in cache; 16k-row blocks made an evaluation about 2.5x slower.
_PARETO_BLOCK_ROWS = 4096

#: L-BFGS-B box in log-parameter space: :data:`PARAM_RANGE` widened by this factor, so a
#: parameter that runs to the box is then rejected by the range check.
_PARETO_BOUND_SLACK = 10.0

#: L-BFGS-B tolerances on the mean penalised negative log-likelihood per customer
#: (about 2 to 15 nats) and on its gradient in log parameters.
_PARETO_FTOL = 1e-13
_PARETO_GTOL = 1e-9

#: A line-search stall (L-BFGS-B status 2) at a projected gradient below this counts as
#: converged: the objective is flat to rounding there.
_PARETO_STALL_GTOL = 1e-6

_GL_X, _GL_W = np.polynomial.legendre.leggauss(PARETO_QUAD_NODES)
_GL_NODES = 0.5 * (_GL_X + 1.0)
_GL_WEIGHTS = 0.5 * _GL_W


def _pareto_dropout_integral(
    lo: np.ndarray, hi: np.ndarray, m: np.ndarray, k: float, A: float, B: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``log J`` and the moments its derivatives need, for rows with ``lo < hi``.

    ``J = integral_lo^hi (A + v)^-m (B + v)^-k dv``. Besides ``log J`` returns the means
    of ``log(A + v)``, ``1 / (A + v)``, ``log(B + v)`` and ``1 / (B + v)`` under the
    density ``(A + v)^-m (B + v)^-k / J``, which give ``d log J / d(m, A, k, B)``.

    With ``c = min(A, B)`` and ``t = log(c + v)`` the log-integrand including
    ``dv = e^t dt`` is ``G(t) = t - m log(A - c + e^t) - k log(B - c + e^t)``: concave
    (``G''`` is minus a sum of squares) and analytic in a strip of half-width pi. Its peak
    on ``[log(c + lo), log(c + hi)]`` is found in closed form and the window is cut where
    ``G`` has dropped by :data:`_PARETO_WINDOW_DROP` (Newton steps from outside, monotone
    by concavity). Gauss-Legendre on that window converges spectrally: 16 nodes agree
    with the hypergeometric closed form to about 1e-12 relative on realistic histograms
    and parameter ranges, at well under a microsecond per row, whereas scipy's ``hyp2f1``
    takes 1-20 microseconds per call near ``z = 1`` (``beta >> alpha``).
    """
    c = min(A, B)
    da, db = A - c, B - c  # one of them is zero
    a_is_min = da == 0.0

    def logs(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # e = c + v; returns e, log(A + v), 1 / (A + v), log(B + v), 1 / (B + v)
        e = np.exp(t)
        inv_e = 1.0 / e
        if a_is_min:
            if db > 0.0:
                return e, t, inv_e, np.log(db + e), 1.0 / (db + e)
            return e, t, inv_e, t, inv_e
        return e, np.log(da + e), 1.0 / (da + e), t, inv_e

    def g_and_slope(t: np.ndarray, mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, log_a, inv_a, log_b, inv_b = logs(t)
        return t - mm * log_a - k * log_b, 1.0 - e * (mm * inv_a + k * inv_b)

    t0 = np.log(c + lo)
    t1 = np.log(c + hi)
    g0, s0 = g_and_slope(t0, m)
    g1, s1 = g_and_slope(t1, m)
    # G' decreases in t. It can change sign inside the interval only when A < B, where
    # G' = 1 - m - k e^t / (B - A + e^t) vanishes at e^t = (B - A)(1 - m) / (k - 1 + m).
    t_peak = np.where(s0 <= 0.0, t0, t1)
    interior = (s0 > 0.0) & (s1 < 0.0)
    if np.any(interior):
        mi = m[interior]
        e_star = db * (1.0 - mi) / (k - 1.0 + mi)
        t_peak[interior] = np.clip(np.log(e_star), t0[interior], t1[interior])
    g_peak, _ = g_and_slope(t_peak, m)
    target = g_peak - _PARETO_WINDOW_DROP

    t_right = t1.copy()
    cut = np.flatnonzero(g1 < target)
    if cut.size:
        tr, mm, tp, tg = t_right[cut], m[cut], t_peak[cut], target[cut]
        for _ in range(_PARETO_NEWTON_STEPS):
            gv, sv = g_and_slope(tr, mm)
            tr = np.maximum(tr - (gv - tg) / sv, tp)
        t_right[cut] = tr
    t_left = t0.copy()
    cut = np.flatnonzero(g0 < target)
    if cut.size:
        tl, mm, tp, tg = t_left[cut], m[cut], t_peak[cut], target[cut]
        for _ in range(_PARETO_NEWTON_STEPS):
            gv, sv = g_and_slope(tl, mm)
            tl = np.minimum(tl - (gv - tg) / sv, tp)
        t_left[cut] = tl

    def panel(left: np.ndarray, right: np.ndarray, mm: np.ndarray, shift: np.ndarray) -> np.ndarray:
        # Gauss-Legendre sums of the integrand times 1, log(A+v), 1/(A+v), log(B+v), 1/(B+v)
        width = right - left
        t = left[:, None] + width[:, None] * _GL_NODES
        _, log_a, inv_a, log_b, inv_b = logs(t)
        g = t - mm[:, None] * log_a - k * log_b
        # shift (the peak of G) bounds g on the window, so exp cannot overflow.
        weights = (_GL_WEIGHTS * width[:, None]) * np.exp(g - shift[:, None])
        return np.stack(
            [weights.sum(axis=1)]
            + [np.einsum("ij,ij->i", weights, q) for q in (log_a, inv_a, log_b, inv_b)]
        )

    # G bends from one slope to the other around e^t = |A - B|. When B < A the bend is
    # in the purchase term, sharp for large m = r + x and preceded by an almost flat
    # stretch (slope 1 - k); a window containing it is split there into two panels
    # (16 nodes on one panel leave errors up to ~1e-7 there). When A < B (the usual
    # alpha < beta) one panel is accurate to ~1e-10 for any k.
    t_mid = t_right
    split = np.empty(0, dtype=np.int64)
    if not a_is_min:
        t_kink = math.log(da)
        split = np.flatnonzero((t_left < t_kink) & (t_kink < t_right))
        if split.size:
            t_mid = t_right.copy()
            t_mid[split] = t_kink
    sums = panel(t_left, t_mid, m, g_peak)
    if split.size:
        sums[:, split] += panel(t_mid[split], t_right[split], m[split], g_peak[split])
    total = sums[0]
    return g_peak + np.log(total), *(sums[1:] / total)


def _wsum(w: np.ndarray, values: np.ndarray) -> float:
    return float(np.einsum("i,i->", w, values))


class _ParetoLikelihood:
    """Weighted Pareto/NBD log-likelihood of a histogram, with its analytic gradient.

    Per row (Fader & Hardie 2005, "A note on deriving the Pareto/NBD model", eq. 18)::

        L = Gamma(r + x) alpha^r beta^s / Gamma(r)
            * [ (alpha + T)^-(r + x) (beta + T)^-s
                + s * integral_{t_x}^T (alpha + v)^-(r + x) (beta + v)^-(s + 1) dv ]

    The first term is "still alive at T", the second "dropped out at some v in
    ``(t_x, T)``"; the integral comes from :func:`_pareto_dropout_integral` (zero when
    ``t_x == T``). This equals lifetimes' ``ParetoNBDFitter._conditional_log_likelihood``.
    """

    def __init__(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray, penalizer: float
    ) -> None:
        self.x = np.asarray(x, dtype=float)
        self.t_x = np.asarray(t_x, dtype=float)
        self.age = np.asarray(age, dtype=float)
        self.w = np.asarray(w, dtype=float) / float(np.sum(w))
        self.rows = len(self.x)
        # lifetimes rescales time so that max(T) == 1 and penalises the rescaled
        # parameters; it minimises -sum(w ll) / mean(w) + penalizer * |scaled params|^2.
        # objective() is that divided by the number of rows (same minimiser).
        self.scale = 1.0 / float(self.age.max())
        self.param_scale = np.array([1.0, self.scale, 1.0, self.scale])
        self.penalty = float(penalizer) / self.rows
        self.open = np.flatnonzero(self.t_x < self.age)  # rows with a dropout window
        self.unique_x, inverse = np.unique(self.x, return_inverse=True)
        self.w_unique_x = np.bincount(inverse, weights=self.w, minlength=len(self.unique_x))

    def mean_log_likelihood(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted mean log-likelihood per customer and its gradient in ``r, alpha, s, beta``."""
        r, alpha, s, beta = (float(v) for v in params)
        x, age, w = self.x, self.age, self.w
        m = r + x
        log_at = np.log(alpha + age)
        log_bt = np.log(beta + age)
        alive = -m * log_at - s * log_bt
        dead = np.full(self.rows, -np.inf)
        mean_la = np.zeros(self.rows)
        mean_ia = np.zeros(self.rows)
        mean_lb = np.zeros(self.rows)
        mean_ib = np.zeros(self.rows)
        for start in range(0, len(self.open), _PARETO_BLOCK_ROWS):
            idx = self.open[start : start + _PARETO_BLOCK_ROWS]
            log_j, mean_la[idx], mean_ia[idx], mean_lb[idx], mean_ib[idx] = (
                _pareto_dropout_integral(self.t_x[idx], age[idx], m[idx], s + 1.0, alpha, beta)
            )
            dead[idx] = math.log(s) + log_j
        z = np.logaddexp(alive, dead)
        p_alive = np.exp(alive - z)  # posterior weights of the two terms
        p_dead = np.exp(dead - z)

        # Weighted sums via einsum rather than ``@``: BLAS dot products may hand off to
        # OpenBLAS worker threads, which stall when the other core is busy (e.g. with the
        # other candidate's fit in fit_many) and made the fit several times slower.
        wx = self.w_unique_x
        value = (
            _wsum(wx, gammaln(r + self.unique_x))
            - float(gammaln(r))
            + r * math.log(alpha)
            + s * math.log(beta)
            + _wsum(w, z)
        )
        grad = np.array(
            [
                _wsum(wx, digamma(r + self.unique_x))
                - float(digamma(r))
                + math.log(alpha)
                - _wsum(w, p_alive * log_at + p_dead * mean_la),
                r / alpha - _wsum(w, m * (p_alive / (alpha + age) + p_dead * mean_ia)),
                math.log(beta) - _wsum(w, p_alive * log_bt + p_dead * (mean_lb - 1.0 / s)),
                s / beta - _wsum(w, p_alive * s / (beta + age) + p_dead * (s + 1.0) * mean_ib),
            ]
        )
        return value, grad

    def params(self, theta: np.ndarray) -> np.ndarray:
        """Model parameters from the optimiser's log time-scaled parameters."""
        return np.exp(theta) / self.param_scale

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Penalised mean negative log-likelihood and its gradient in ``theta``."""
        scaled = np.exp(theta)
        params = scaled / self.param_scale
        value, grad = self.mean_log_likelihood(params)
        penalty = self.penalty * float(np.sum(scaled**2))
        return -value + penalty, -params * grad + 2.0 * self.penalty * scaled**2


class ParetoConvergenceError(ModelError):
    """A Pareto/NBD attempt ran off (see :data:`PARETO_MAX_SHAPE`) or did not converge."""


def _fit_pareto_nbd(
    x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray, penalizer: float
) -> ParetoNBDFitter:
    """Fit Pareto/NBD at one penalizer; return a lifetimes fitter with ``params_`` set.

    Minimises lifetimes' objective (weighted negative log-likelihood on time scaled to
    ``max(T) == 1`` plus ``penalizer`` times the squared scaled parameters) with
    L-BFGS-B in log parameters, analytic gradient, from lifetimes' default scale
    (all scaled parameters 1), so the result is deterministic. At most
    :data:`PARETO_MAX_ITER` iterations.

    When the dropout process is weakly identified the unpenalised optimum lies at
    infinity: ``s`` and ``beta`` grow together (dropout rates become homogeneous, a
    fixed-rate limit of the model) and the likelihood only creeps up. Such an attempt is
    stopped as soon as ``s`` exceeds :data:`PARETO_MAX_SHAPE` and reported as degenerate,
    so the ladder moves on to a penalizer that keeps ``s`` and ``beta`` finite and
    identified, rather than accepting parameters whose size is an artefact of where the
    optimiser gave up (and that put the scoring formulas in their slowest regime).

    Raises
    ------
    ParetoConvergenceError
        On a run-off, a stall away from an optimum or the iteration cap; the ladder in
        :func:`_fit_core` then tries the next penalizer.
    """
    lik = _ParetoLikelihood(x, t_x, age, w, penalizer)
    lower = np.log(PARAM_RANGE[0] / _PARETO_BOUND_SLACK * lik.param_scale)
    upper = np.log(PARAM_RANGE[1] * _PARETO_BOUND_SLACK * lik.param_scale)
    ran_off: list[np.ndarray] = []

    def watch(theta: np.ndarray) -> None:  # called with each accepted iterate
        params = lik.params(theta)
        if params[2] > PARETO_MAX_SHAPE:
            ran_off.append(params)
            raise StopIteration

    result = minimize(
        lik.objective,
        np.zeros(4),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper, strict=True)),
        callback=watch,
        options={
            "maxiter": PARETO_MAX_ITER,
            "maxfun": 3 * PARETO_MAX_ITER,
            "ftol": _PARETO_FTOL,
            "gtol": _PARETO_GTOL,
        },
    )
    params = lik.params(result.x)
    names = PARAM_NAMES["pareto_nbd"]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, params, strict=True))
    if ran_off or params[2] > PARETO_MAX_SHAPE:
        raise ParetoConvergenceError(
            f"degenerate solution: s and beta ran off together ({shown}); the dropout "
            "rates look homogeneous and the data cannot identify their spread"
        )
    projected = np.where(
        ((result.x <= lower) & (result.jac > 0)) | ((result.x >= upper) & (result.jac < 0)),
        0.0,
        result.jac,
    )
    stalled = result.status == 2 and float(np.max(np.abs(projected))) < _PARETO_STALL_GTOL
    if not (result.success or stalled):
        raise ParetoConvergenceError(
            f"L-BFGS-B stopped without converging ({result.message}; {shown})"
        )

    fitter = ParetoNBDFitter(penalizer_coef=penalizer)
    fitter.params_ = pd.Series(params, index=list(names))
    fitter._scale = lik.scale
    # lifetimes' reported objective: scaled-time log-likelihood is ll - x log(scale).
    mean_x = _wsum(lik.w, lik.x)
    fitter._negative_log_likelihood_ = lik.rows * (float(result.fun) + mean_x * math.log(lik.scale))
    fitter._hessian_ = None
    fitter.data = pd.DataFrame({"frequency": x, "recency": t_x, "T": age, "weights": w})
    fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    return fitter


def _fit_once(
    name: str, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray, penalizer: float
) -> tuple[Any, dict[str, float], float]:
    # np.errstate is thread-local, so this is safe inside worker threads.
    with np.errstate(all="ignore"):
        if name == "pareto_nbd":
            fitter = _fit_pareto_nbd(x, t_x, age, w, penalizer)
        else:
            fitter = _FITTERS[name](penalizer_coef=penalizer)
            fitter.fit(x, t_x, age, weights=w)
    params = {p: float(fitter.params_[p]) for p in PARAM_NAMES[name]}
    ll = _log_likelihood(name, params, x, t_x, age, w)
    return fitter, params, ll


def _fit_core(
    name: str, hist: pd.DataFrame, time_unit: str, penalizers: Sequence[float]
) -> tuple[Any, dict[str, float], float, float, int]:
    _check_name(name)
    days_per_unit(time_unit)
    x, t_x, age, w = _hist_arrays(hist)
    if not penalizers:
        raise ModelError("the penalizer ladder is empty; pass at least one coefficient")
    last_error = "no attempt made"
    for penalizer in penalizers:
        try:
            fitter, params, ll = _fit_once(name, x, t_x, age, w, float(penalizer))
        except FIT_ERRORS as exc:  # no convergence / numeric breakdown only
            last_error = f"{type(exc).__name__}: {str(exc).strip()}"
            continue
        values = np.array(list(params.values()))
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            last_error = f"non-finite or non-positive parameters {params} at penalizer {penalizer}"
            continue
        if np.any(values < PARAM_RANGE[0]) or np.any(values > PARAM_RANGE[1]):
            shown = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
            last_error = (
                f"degenerate solution at penalizer {penalizer}: parameters {shown} ran to the "
                "edge of the parameter space, so the data cannot identify the model"
            )
            continue
        if not math.isfinite(ll):
            last_error = f"non-finite log-likelihood at penalizer {penalizer}"
            continue
        return fitter, params, ll, float(penalizer), int(round(w.sum()))
    tried = ", ".join(f"{p:g}" for p in penalizers)
    raise ModelError(
        f"the {MODEL_LABELS[name]} model ({name}) did not converge with any penalizer "
        f"({tried}); last error: {last_error}. Check the features for data problems "
        "(e.g. almost no repeat customers or all customers alike), add more history, or "
        "drop this model from the candidates"
    )


def fit_purchase_model(
    name: str,
    hist: pd.DataFrame,
    time_unit: TimeUnit,
    *,
    penalizers: Sequence[float] = PENALIZER_LADDER,
) -> FittedPurchaseModel:
    """Fit one purchase model on the weighted histogram, escalating the penalizer.

    Parameters
    ----------
    name : {"bgnbd", "pareto_nbd", "mbgnbd"}
        Model to fit.
    hist : pandas.DataFrame
        ``frequency, recency, T`` in the model time unit plus ``weight`` (customer
        counts, see :func:`ml.histogram.histogram`). Without ``weight`` each row counts
        as one customer.
    time_unit : {"week", "day"}
        Unit of ``recency`` and ``T``; recorded on the result.
    penalizers : sequence of float, default (0.0, 0.001, 0.01, 0.1)
        Ladder of L2 penalizer coefficients tried in order. A fit counts as converged
        when lifetimes raises no error, every parameter is finite and > 0 and the
        log-likelihood is finite. Additionally, a solution with a parameter outside
        :data:`PARAM_RANGE` (1e-6 to 1e6) is degenerate (the optimizer ran to a
        boundary, e.g. ``a -> 0``) and the next penalizer is tried. A Pareto/NBD attempt
        also fails when L-BFGS-B has not converged after :data:`PARETO_MAX_ITER`
        iterations or the dropout shape ``s`` exceeds :data:`PARETO_MAX_SHAPE` (``s`` and
        ``beta`` running off together); this bounds the cost of a failing attempt.

    Returns
    -------
    FittedPurchaseModel
        Parameters, log-likelihood, the penalizer used and the fitted lifetimes object.

    Raises
    ------
    ModelError
        If the name or unit is unknown, the histogram is invalid, or no penalizer on the
        ladder converges (the message names the model and the last error).
    """
    with filtered_stdout() as stdout, stdout.silence_current_thread():
        fitter, params, ll, penalizer, customers = _fit_core(name, hist, time_unit, penalizers)
    return FittedPurchaseModel(name, params, ll, penalizer, customers, time_unit, fitter)


def fit_many(
    hist: pd.DataFrame,
    names: Sequence[str],
    time_unit: TimeUnit,
    parallel: bool = True,
    *,
    penalizers: Sequence[float] = PENALIZER_LADDER,
    parallel_min_rows: int = 20_000,
) -> tuple[dict[str, FittedPurchaseModel], dict[str, str]]:
    """Fit several models, collecting failures instead of raising.

    Parameters are as in :func:`fit_candidates`.

    Returns
    -------
    fitted : dict of str to FittedPurchaseModel
        Converged models in the order of ``names``.
    failures : dict of str to str
        ModelError messages of the models that did not converge.
    """
    ordered = list(dict.fromkeys(names))
    if not ordered:
        raise ModelError(
            f"no purchase models requested; choose one or more of {', '.join(MODEL_NAMES)}"
        )
    for name in ordered:
        _check_name(name)
    days_per_unit(time_unit)
    _hist_arrays(hist)  # validate once, in the caller's thread
    ladder = tuple(float(p) for p in penalizers)

    with filtered_stdout() as stdout:

        def run(name: str) -> FittedPurchaseModel | ModelError:
            with stdout.silence_current_thread():
                try:
                    fitter, params, ll, pen, customers = _fit_core(name, hist, time_unit, ladder)
                except ModelError as exc:
                    return exc
            return FittedPurchaseModel(name, params, ll, pen, customers, time_unit, fitter)

        if parallel and len(ordered) > 1 and len(hist) >= parallel_min_rows:
            with ThreadPoolExecutor(max_workers=min(2, len(ordered))) as pool:
                outcomes = list(pool.map(run, ordered))
        else:
            outcomes = [run(name) for name in ordered]

    results = dict(zip(ordered, outcomes, strict=True))
    fitted = {n: r for n, r in results.items() if isinstance(r, FittedPurchaseModel)}
    failures = {n: str(r) for n, r in results.items() if isinstance(r, ModelError)}
    return fitted, failures


def fit_candidates(
    hist: pd.DataFrame,
    names: Sequence[str],
    time_unit: TimeUnit,
    parallel: bool = True,
    *,
    penalizers: Sequence[float] = PENALIZER_LADDER,
    parallel_min_rows: int = 20_000,
) -> dict[str, FittedPurchaseModel]:
    """Fit several purchase models on the same histogram, optionally in two processes.

    Parameters
    ----------
    hist : pandas.DataFrame
        Weighted histogram in the model time unit (see :func:`fit_purchase_model`).
    names : sequence of str
        Models to fit, e.g. ``("bgnbd", "pareto_nbd", "mbgnbd")``.
    time_unit : {"week", "day"}
        Unit of ``recency`` and ``T``.
    parallel : bool, default True
        Fit the candidates concurrently in two threads when the histogram has at least
        ``parallel_min_rows`` rows; otherwise fit sequentially. The heavy work is numpy
        and scipy array code that releases the GIL, so two threads use both cores
        (about 1.8x faster on a 400k-row histogram) without process start-up,
        pickling or ``if __name__ == "__main__"`` requirements. Each fit is
        deterministic and independent, so both paths return identical results.
    penalizers : sequence of float, default (0.0, 0.001, 0.01, 0.1)
        Penalizer escalation ladder.
    parallel_min_rows : int, default 20000
        Below this many histogram rows fits take well under a second and run
        sequentially.

    Returns
    -------
    dict of str to FittedPurchaseModel
        Fitted models keyed by name, in the order of ``names``.

    Raises
    ------
    ModelError
        If any model fails to converge (all failures are listed) or a name is unknown.
    """
    fitted, failures = fit_many(
        hist,
        names,
        time_unit,
        parallel,
        penalizers=penalizers,
        parallel_min_rows=parallel_min_rows,
    )
    if failures:
        raise ModelError("; ".join(failures.values()))
    return fitted


def load_purchase_model(
    name: str,
    params: Mapping[str, float],
    time_unit: TimeUnit,
    *,
    log_likelihood: float = math.nan,
    penalizer: float = math.nan,
    customers: int = 0,
) -> FittedPurchaseModel:
    """Rebuild a purchase model from saved parameters (e.g. JSON) for scoring.

    Parameters
    ----------
    name : {"bgnbd", "pareto_nbd", "mbgnbd"}
        Model name.
    params : mapping of str to float
        Parameters as saved by :meth:`FittedPurchaseModel.to_dict`.
    time_unit : {"week", "day"}
        Time unit the parameters were fitted in.
    log_likelihood, penalizer : float, optional
        Fit diagnostics to carry along (NaN if unknown).
    customers : int, default 0
        Fitting sample size, if known.

    Returns
    -------
    FittedPurchaseModel
        With a lifetimes fitter whose ``params_`` are set, so its prediction methods work.

    Raises
    ------
    ModelError
        If the name or unit is unknown or a parameter is missing, non-finite or <= 0.
    """
    _check_name(name)
    days_per_unit(time_unit)
    expected = PARAM_NAMES[name]
    missing = [p for p in expected if p not in params]
    if missing:
        raise ModelError(
            f"saved {MODEL_LABELS[name]} parameters lack {', '.join(missing)}; expected "
            f"{', '.join(expected)} — refit the model"
        )
    clean = {p: float(params[p]) for p in expected}
    bad = [p for p, v in clean.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ModelError(
            f"saved {MODEL_LABELS[name]} parameter(s) {', '.join(bad)} must be finite and "
            "> 0 — refit the model"
        )
    return FittedPurchaseModel(
        name=name,
        params=clean,
        log_likelihood=float(log_likelihood),
        penalizer=float(penalizer),
        customers=int(customers),
        time_unit=time_unit,
        fitter=_make_fitter(name, clean),
    )
