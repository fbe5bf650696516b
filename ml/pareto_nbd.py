"""Pareto/NBD estimation: the likelihood, its dropout integral and the fit.

lifetimes' ``ParetoNBDFitter`` runs Nelder-Mead on a likelihood that evaluates a Gauss
hypergeometric function per row, which costs up to tens of microseconds near
``beta >> alpha`` and returns NaN where the dropout process is weakly identified. Here
the same objective (including lifetimes' penalizer on time-scaled parameters) is a
Gauss-Legendre quadrature with an analytic gradient, minimised by L-BFGS-B from a fixed
start (see :func:`fit`), on the weighted histogram of :mod:`ml.histogram`. The model
class with the predictions is :class:`ml.purchase_models.ParetoNBD`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from ml.errors import ModelError
from ml.fitting import PARAM_RANGE

#: Parameter names in lifetimes' order.
PARAM_NAMES: tuple[str, ...] = ("r", "alpha", "s", "beta")

#: L-BFGS-B iterations allowed per penalizer attempt (function evaluations: three times
#: as many, about 0.15 s each for 640k histogram rows of whole-day times). Fits need 20-45.
MAX_ITER = 100

#: An iterate with dropout shape ``s`` above this is a run-off: the Gamma distribution
#: of dropout rates has collapsed to a point (coefficient of variation ``1 / sqrt(s)``
#: below 3%) and ``s`` and ``beta`` grow together without bound. The attempt stops there
#: and counts as degenerate, so the next penalizer is tried.
MAX_SHAPE = 1e3

#: Gauss-Legendre nodes per histogram row for the dropout integral.
QUAD_NODES = 16

#: The integration window ends where the log-integrand has fallen this far below its
#: peak; the mass cut off is below ``exp(-36)`` (about 2e-16) of the integral.
_WINDOW_DROP = 36.0

#: Newton steps locating the window ends. They approach from outside the window, so any
#: number of steps gives a safe window; more steps give a tighter one.
_NEWTON_STEPS = 8

#: Histogram rows per block of the quadrature. Each temporary is then 4096 x 16 doubles
#: (512 KiB) and stays in cache; 16k-row blocks made an evaluation about 2.5x slower.
_BLOCK_ROWS = 4096

#: L-BFGS-B box in log-parameter space: :data:`PARAM_RANGE` widened by this factor, so a
#: parameter that runs to the box is then rejected by the range check.
_BOUND_SLACK = 10.0

#: L-BFGS-B tolerances on the mean penalised negative log-likelihood per customer
#: (about 2 to 15 nats) and on its gradient in log parameters.
_FTOL = 1e-13
_GTOL = 1e-9

#: A line-search stall (L-BFGS-B status 2) at a projected gradient below this counts as
#: converged: the objective is flat to rounding there.
_STALL_GTOL = 1e-6

_GL_X, _GL_W = np.polynomial.legendre.leggauss(QUAD_NODES)
_GL_NODES = 0.5 * (_GL_X + 1.0)
_GL_WEIGHTS = 0.5 * _GL_W


def dropout_integral(
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
    ``G`` has dropped by :data:`_WINDOW_DROP` (Newton steps from outside, monotone
    by concavity). Gauss-Legendre on that window converges spectrally: 16 nodes agree
    with the hypergeometric closed form to about 1e-12 relative on realistic histograms
    and parameter ranges, at well under a microsecond per row, whereas scipy's ``hyp2f1``
    takes 1-20 microseconds per call near ``z = 1`` (``beta >> alpha``).

    Parameters
    ----------
    lo, hi : numpy.ndarray
        Integration bounds per row, ``0 <= lo < hi``.
    m : numpy.ndarray
        Exponent of ``A + v`` per row (``r + x`` in the likelihood).
    k : float
        Exponent of ``B + v`` (``s + 1`` in the likelihood), > 0.
    A, B : float
        Shifts (``alpha`` and ``beta``), > 0.

    Returns
    -------
    tuple of numpy.ndarray
        ``log J`` and the four means, one value per row each.
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
    # G' decreases in t. When A <= B, G' = 1 - m - k e^t / (B - A + e^t) vanishes at
    # e^t = (B - A)(1 - m) / (k - 1 + m); when B < A, G' = 1 - k - m e^t / (A - B + e^t)
    # at e^t = (A - B)(1 - k) / (m - 1 + k), which needs k < 1 (predictions only).
    t_peak = np.where(s0 <= 0.0, t0, t1)
    interior = (s0 > 0.0) & (s1 < 0.0)
    if np.any(interior):
        mi = m[interior]
        if a_is_min:
            e_star = db * (1.0 - mi) / (k - 1.0 + mi)
        else:  # only for k < 1, never in the fit (k = s + 1)
            e_star = da * (1.0 - k) / (mi - 1.0 + k)
        t_peak[interior] = np.clip(np.log(e_star), t0[interior], t1[interior])
    g_peak, _ = g_and_slope(t_peak, m)
    target = g_peak - _WINDOW_DROP

    def window_end(t_end: np.ndarray, g_end: np.ndarray, clamp: np.ufunc) -> np.ndarray:
        # Newton steps from an interval end towards the peak, for rows whose end lies
        # below the target; ``clamp`` (maximum on the right, minimum on the left) keeps
        # them on the outer side of the peak.
        out = t_end.copy()
        cut = np.flatnonzero(g_end < target)
        if cut.size:
            t, mm, tp, tg = out[cut], m[cut], t_peak[cut], target[cut]
            for _ in range(_NEWTON_STEPS):
                gv, sv = g_and_slope(t, mm)
                t = clamp(t - (gv - tg) / sv, tp)
            out[cut] = t
        return out

    t_right = window_end(t1, g1, np.maximum)
    t_left = window_end(t0, g0, np.minimum)

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


#: Integrals on the end-point grid (:class:`EndpointGrid`) are differences of two sums
#: of segment integrals; a row whose integral is below this share of the larger sum would
#: lose more than a factor ``1 / share`` of the segments' relative accuracy (~1e-13) to
#: cancellation and takes the direct quadrature instead.
_GRID_MIN_SHARE = 0.05

#: Smallest larger sum (relative to its group's largest segment) the grid trusts; below it
#: the sums approach underflow (very large exponents) and the row takes the direct path.
_GRID_MIN_SUM = 1e-200

Integrals = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def dropout_integrals(
    lo: np.ndarray, hi: np.ndarray, m: np.ndarray, k: float, A: float, B: float
) -> Integrals:
    """:func:`dropout_integral` for any number of rows, in cache-sized blocks.

    Parameters and returns as :func:`dropout_integral` (rows with ``lo < hi``).
    """
    out = tuple(np.empty(len(lo)) for _ in range(5))
    for start in range(0, len(lo), _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        for dest, values in zip(
            out, dropout_integral(lo[block], hi[block], m[block], k, A, B), strict=True
        ):
            dest[block] = values
    return out  # type: ignore[return-value]


class EndpointGrid:
    """Dropout integrals of many rows from the integrals between their distinct end points.

    The likelihood needs ``J = integral_{t_x}^T (A + v)^-(r + x) (B + v)^-k dv`` for every
    histogram row, but the rows share few distinct ``(x, t_x)`` and ``(x, T)`` pairs
    (whole days: about 38k pairs for 640k rows over three years). Per ``x`` the distinct
    end points ``u_0 < u_1 < ...`` cut the time axis into segments; the quadrature runs once
    per segment, and with ``S(u_i)`` the sum of the segment integrals right of ``u_i``,
    ``J = S(t_x) - S(T)`` (the moments likewise). The sums are of positive terms, so they
    keep the segments' relative accuracy; the difference loses a factor
    ``S(t_x) / J``, so rows where ``J`` is below :data:`_GRID_MIN_SHARE` of ``S(t_x)``
    (``T`` just after ``t_x`` on the scale of the integrand's decay) use the direct
    quadrature.

    Parameters
    ----------
    key : numpy.ndarray
        The exponent's per-row part (``x``); the exponent is ``shift + key``.
    lo, hi : numpy.ndarray
        Integration bounds per row, ``0 <= lo <= hi``; the integral is zero (``log J``
        is ``-inf``, the moments 0) where ``lo == hi``.
    """

    def __init__(self, key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self.key, self.lo, self.hi = key, lo, hi
        rows = len(key)
        # complex numbers sort by real, then imaginary part: by key, then end point
        points, inverse = np.unique(
            np.concatenate([key + 1j * lo, key + 1j * hi]), return_inverse=True
        )
        group_key, starts, sizes = np.unique(points.real, return_index=True, return_counts=True)
        group = np.repeat(np.arange(len(group_key)), sizes)
        self.points = len(points)
        # a segment runs from each point to the next one with the same key
        seg = np.flatnonzero(group[:-1] == group[1:])
        self.seg_point = seg
        self.seg_lo = points.imag[seg]
        self.seg_hi = points.imag[seg + 1]
        self.seg_key = points.real[seg]
        self.seg_group = group[seg]
        self.groups = len(group_key)
        self.row_group = group[inverse[:rows]]
        self.lo_point = inverse[:rows]
        self.hi_point = inverse[rows:]
        # The sums right of each point are reversed cumulative sums within each group, run
        # on padded tables (one row per group). Groups are binned by size (powers of two)
        # so the padding at most doubles the table: its cells stay below 2 x points.
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        size_class = np.ceil(np.log2(np.maximum(sizes, 1))).astype(int)
        for c in np.unique(size_class):
            members = np.flatnonzero(size_class == c)
            width = int(sizes[members].max())
            cells = starts[members][:, None] + np.arange(width)
            inside = np.arange(width) < sizes[members][:, None]
            # padding reads an extra zero at index ``points``
            self.blocks.append((np.where(inside, cells, self.points), inside))
        self.is_open = lo < hi
        self.closed = np.flatnonzero(~self.is_open)
        # with few shared end points (small or continuous-time data) the segments would
        # outnumber the rows: then every row takes the direct quadrature
        self.worthwhile = 2 * len(seg) < np.count_nonzero(self.is_open)

    @property
    def segments(self) -> int:
        """Number of segment integrals an evaluation computes."""
        return len(self.seg_lo)

    def integrals(self, shift: float, k: float, A: float, B: float) -> Integrals:
        """``log J`` and the four moments of :func:`dropout_integral` for every row.

        Parameters
        ----------
        shift : float
            Exponent of ``A + v`` minus the key (``r``).
        k, A, B : float
            As in :func:`dropout_integral`.

        Returns
        -------
        tuple of numpy.ndarray
            As :func:`dropout_integral`, one value per row.
        """
        if not self.worthwhile:
            out = [np.full(len(self.key), -np.inf), *(np.zeros(len(self.key)) for _ in range(4))]
            rows = np.flatnonzero(self.is_open)
            values = dropout_integrals(
                self.lo[rows], self.hi[rows], shift + self.key[rows], k, A, B
            )
            for dest, value in zip(out, values, strict=True):
                dest[rows] = value
            return tuple(out)  # type: ignore[return-value]
        log_seg, *seg_means = dropout_integrals(
            self.seg_lo, self.seg_hi, shift + self.seg_key, k, A, B
        )
        scale = np.full(self.groups, -np.inf)
        np.maximum.at(scale, self.seg_group, log_seg)
        mass = np.exp(log_seg - scale[self.seg_group])
        # mass (and moment sums) of the segment starting at each point: 0 at a group's last
        # point and at the padding slot
        starts = np.zeros((5, self.points + 1))
        starts[0, self.seg_point] = mass
        for i, mean in enumerate(seg_means, start=1):
            starts[i, self.seg_point] = mass * mean
        right = np.empty((5, self.points))  # sums from each point to its group's end
        for cells, inside in self.blocks:
            block = starts[:, cells][:, :, ::-1].cumsum(axis=2)[:, :, ::-1]
            right[:, cells[inside]] = block[:, inside]
        upper = np.take(right, self.lo_point, axis=1)  # faster than fancy indexing
        part = upper - np.take(right, self.hi_point, axis=1)
        total = part[0]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = [np.take(scale, self.row_group) + np.log(total), *(part[1:] * (1.0 / total))]
            grid_ok = (total >= _GRID_MIN_SHARE * upper[0]) & (upper[0] >= _GRID_MIN_SUM)
        for mean in out[1:]:
            mean[self.closed] = 0.0  # log J is -inf there
        direct = np.flatnonzero(~grid_ok & self.is_open)
        if direct.size:
            values = dropout_integrals(
                self.lo[direct], self.hi[direct], shift + self.key[direct], k, A, B
            )
            for dest, value in zip(out, values, strict=True):
                dest[direct] = value
        return tuple(out)  # type: ignore[return-value]


def _wsum(w: np.ndarray, values: np.ndarray) -> float:
    return float(np.einsum("i,i->", w, values))


class ParetoLikelihood:
    """Weighted Pareto/NBD log-likelihood of a histogram, with its analytic gradient.

    Per row (Fader & Hardie 2005, "A note on deriving the Pareto/NBD model", eq. 18)::

        L = Gamma(r + x) alpha^r beta^s / Gamma(r)
            * [ (alpha + T)^-(r + x) (beta + T)^-s
                + s * integral_{t_x}^T (alpha + v)^-(r + x) (beta + v)^-(s + 1) dv ]

    The first term is "still alive at T", the second "dropped out at some v in
    ``(t_x, T)``"; the integral comes from :func:`dropout_integral` (zero when
    ``t_x == T``). It equals lifetimes' per-customer Pareto/NBD log-likelihood.

    Parameters
    ----------
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row, in the model time unit.
    w : numpy.ndarray
        Customers per row.
    penalizer : float
        L2 penalizer coefficient for :meth:`objective` (lifetimes' convention: on the
        parameters with time scaled to ``max(T) == 1``).
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
        self.grid = EndpointGrid(self.x, self.t_x, self.age)
        self.unique_x, inverse = np.unique(self.x, return_inverse=True)
        self.w_unique_x = np.bincount(inverse, weights=self.w, minlength=len(self.unique_x))

    def mean_log_likelihood(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted mean log-likelihood per customer and its gradient in ``r, alpha, s, beta``.

        Parameters
        ----------
        params : numpy.ndarray
            ``r, alpha, s, beta`` in the data's time unit.

        Returns
        -------
        value : float
            Mean log-likelihood (no penalty).
        grad : numpy.ndarray
            Its gradient in the four parameters.
        """
        r, alpha, s, beta = (float(v) for v in params)
        x, age, w = self.x, self.age, self.w
        m = r + x
        log_at = np.log(alpha + age)
        log_bt = np.log(beta + age)
        alive = -m * log_at - s * log_bt
        log_j, mean_la, mean_ia, mean_lb, mean_ib = self.grid.integrals(r, s + 1.0, alpha, beta)
        dead = math.log(s) + log_j
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
        """Model parameters ``r, alpha, s, beta`` from the optimiser's log time-scaled ones.

        Parameters
        ----------
        theta : numpy.ndarray
            Logs of the time-scaled parameters.

        Returns
        -------
        numpy.ndarray
            Parameters in the data's time unit.
        """
        return np.exp(theta) / self.param_scale

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Penalised mean negative log-likelihood and its gradient in ``theta``.

        Parameters
        ----------
        theta : numpy.ndarray
            Logs of the time-scaled parameters.

        Returns
        -------
        value : float
            The objective L-BFGS-B minimises.
        grad : numpy.ndarray
            Its gradient in ``theta``.
        """
        scaled = np.exp(theta)
        params = scaled / self.param_scale
        value, grad = self.mean_log_likelihood(params)
        penalty = self.penalty * float(np.sum(scaled**2))
        return -value + penalty, -params * grad + 2.0 * self.penalty * scaled**2


class ParetoConvergenceError(ModelError):
    """A Pareto/NBD attempt ran off (see :data:`MAX_SHAPE`) or did not converge."""


class ParetoFit(NamedTuple):
    """Result of :func:`fit` at one penalizer.

    Attributes
    ----------
    params : dict of str to float
        ``r, alpha, s, beta`` in the data's time unit.
    time_scale : float
        lifetimes' time rescaling ``1 / max(T)`` the penalty was applied in.
    mean_objective : float
        Minimised penalised negative log-likelihood per histogram row.
    """

    params: dict[str, float]
    time_scale: float
    mean_objective: float


def fit(
    x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray, penalizer: float
) -> ParetoFit:
    """Fit Pareto/NBD on a weighted histogram at one penalizer coefficient.

    Minimises lifetimes' objective (weighted negative log-likelihood on time scaled to
    ``max(T) == 1`` plus ``penalizer`` times the squared scaled parameters) with
    L-BFGS-B in log parameters, analytic gradient, from lifetimes' default scale
    (all scaled parameters 1), so the result is deterministic. At most
    :data:`MAX_ITER` iterations.

    When the dropout process is weakly identified the unpenalised optimum lies at
    infinity: ``s`` and ``beta`` grow together (dropout rates become homogeneous, a
    fixed-rate limit of the model) and the likelihood only creeps up. Such an attempt is
    stopped as soon as ``s`` exceeds :data:`MAX_SHAPE` and reported as degenerate,
    so the ladder moves on to a penalizer that keeps ``s`` and ``beta`` finite and
    identified, rather than accepting parameters whose size is an artefact of where the
    optimiser gave up (and that put the scoring formulas in their slowest regime).

    Parameters
    ----------
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row, in the model time unit.
    w : numpy.ndarray
        Customers per row.
    penalizer : float
        L2 penalizer coefficient on the time-scaled parameters (lifetimes' convention).

    Returns
    -------
    ParetoFit
        Parameters and the optimiser's result.

    Raises
    ------
    ParetoConvergenceError
        On a run-off, a stall away from an optimum or the iteration cap; the penalizer
        ladder (see :func:`ml.fitting.climb_ladder`) then tries the next coefficient.
    """
    lik = ParetoLikelihood(x, t_x, age, w, penalizer)
    lower = np.log(PARAM_RANGE[0] / _BOUND_SLACK * lik.param_scale)
    upper = np.log(PARAM_RANGE[1] * _BOUND_SLACK * lik.param_scale)
    ran_off: list[np.ndarray] = []

    def watch(theta: np.ndarray) -> None:  # called with each accepted iterate
        params = lik.params(theta)
        if params[2] > MAX_SHAPE:
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
            "maxiter": MAX_ITER,
            "maxfun": 3 * MAX_ITER,
            "ftol": _FTOL,
            "gtol": _GTOL,
        },
    )
    params = lik.params(result.x)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(PARAM_NAMES, params, strict=True))
    if ran_off or params[2] > MAX_SHAPE:
        raise ParetoConvergenceError(
            f"degenerate solution: s and beta ran off together ({shown}); the dropout "
            "rates look homogeneous and the data cannot identify their spread"
        )
    projected = np.where(
        ((result.x <= lower) & (result.jac > 0)) | ((result.x >= upper) & (result.jac < 0)),
        0.0,
        result.jac,
    )
    stalled = result.status == 2 and float(np.max(np.abs(projected))) < _STALL_GTOL
    if not (result.success or stalled):
        raise ParetoConvergenceError(
            f"L-BFGS-B stopped without converging ({result.message}; {shown})"
        )

    fitted = {k: float(v) for k, v in zip(PARAM_NAMES, params, strict=True)}
    return ParetoFit(fitted, lik.scale, float(result.fun))


def log_likelihood(
    params: Mapping[str, float], x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray
) -> float:
    """Total (weight-summed) Pareto/NBD log-likelihood without penalty.

    Parameters
    ----------
    params : mapping of str to float
        ``r, alpha, s, beta`` in the data's time unit.
    x, t_x, age : numpy.ndarray
        Frequency, recency and T per histogram row.
    w : numpy.ndarray
        Customers per row.

    Returns
    -------
    float
        The log-likelihood; may be non-finite, the caller checks.
    """
    values = np.array([float(params[p]) for p in PARAM_NAMES])
    with np.errstate(all="ignore"):
        mean_ll, _ = ParetoLikelihood(x, t_x, age, w, 0.0).mean_log_likelihood(values)
    return float(mean_ll * np.sum(w))


def log_integral(
    lo: ArrayLike, hi: ArrayLike, m: ArrayLike, k: float, A: float, B: float
) -> NDArray[np.float64]:
    """Return ``log integral_lo^hi (A + v)^-m (B + v)^-k dv``, broadcasting ``lo, hi, m``.

    The predictions of :class:`ml.purchase_models.ParetoNBD` evaluate their integrals
    with the fit's quadrature :func:`dropout_integral`, in blocks of rows. (scipy's
    ``hyp2f1`` closed form returned NaN for most customers at the dropout shapes large
    shops fit, e.g. ``s = 283, beta = 25,832``, and took 84 (p_alive) to 146 (p_purchase)
    microseconds a row.)

    Parameters
    ----------
    lo, hi : array_like
        Integration bounds, ``0 <= lo <= hi``.
    m : array_like
        Exponent of ``A + v``, > 0.
    k : float
        Exponent of ``B + v``, > 0.
    A, B : float
        Shifts, > 0.

    Returns
    -------
    numpy.ndarray
        The log-integral in the broadcast shape of ``lo, hi, m``; ``-inf`` where
        ``lo == hi``.
    """
    lo_b, hi_b, m_b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (lo, hi, m)))
    out = np.full(lo_b.shape, -np.inf)
    lo_f, hi_f, m_f, flat = lo_b.ravel(), hi_b.ravel(), m_b.ravel(), out.reshape(-1)
    rows = np.flatnonzero(lo_f < hi_f)
    for start in range(0, len(rows), _BLOCK_ROWS):
        idx = rows[start : start + _BLOCK_ROWS]
        log_j, *_ = dropout_integral(lo_f[idx], hi_f[idx], m_f[idx], float(k), float(A), float(B))
        flat[idx] = log_j
    return out
