"""Vectorised closed-form predictions for BG/NBD, Pareto/NBD and MBG/NBD.

All functions take model parameters (lifetimes' names) and customer histories
``(x, t_x, T)`` = ``(frequency, recency, T)`` as arrays in the model time unit and
broadcast over them. They are pure numpy/scipy so one million customers score in well
under a second per quantity.

Every prediction factorises as ``P(alive | history) * E[quantity | alive, x, T]``: given
the customer is still active at ``T`` the purchase rate's posterior is
``Gamma(r + x, alpha + T)`` (and for Pareto/NBD the dropout rate's posterior is
``Gamma(s, beta + T)``), independent of ``t_x``.

Probability of at least one purchase in ``(T, T + t]``
-------------------------------------------------------
*BG/NBD and MBG/NBD.* While alive, dropout can only happen right after a purchase, so
no purchase in the window means the next inter-purchase time exceeds ``t``:
``P(N >= 1 | alive, lambda) = 1 - exp(-lambda t)``. Averaging over the Gamma posterior

    P(N >= 1 | history) = P(alive) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)).

For one-time buyers BG/NBD has ``P(alive) = 1`` but the probability still falls with
``T`` through the posterior of lambda.

*Pareto/NBD.* With remaining lifetime ``Exp(mu)`` racing the next purchase ``Exp(lambda)``,
``P(N >= 1 | alive, lambda, mu) = lambda / (lambda + mu) * (1 - exp(-(lambda + mu) t))
= integral_0^t lambda exp(-(lambda + mu) u) du``. Averaging over the posteriors gives

    P(N >= 1 | history) = P(alive) * r' alpha'^r' beta'^s
                          * integral_0^t (alpha' + u)^-(r'+1) (beta' + u)^-s du

with ``r' = r + x``, ``alpha' = alpha + T``, ``beta' = beta + T``; the integral is evaluated
in closed form with the Gauss hypergeometric function (see :func:`_log_tail`).

References
----------
Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing Science.
Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related expressions".
Batislam, Denizel & Filiztekin (2007); Wagner & Hoppe (2008) for MBG/NBD.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, hyp2f1

from ml.errors import ModelError

FloatArray = NDArray[np.float64]

#: Parameter names per model, in lifetimes' order.
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
    "mbgnbd": ("r", "alpha", "a", "b"),
}


def _params(name: str, params: Mapping[str, float]) -> tuple[float, ...]:
    if name not in PARAM_NAMES:
        raise ModelError(f"unknown purchase model {name!r}; choose one of {', '.join(PARAM_NAMES)}")
    names = PARAM_NAMES[name]
    missing = [p for p in names if p not in params]
    if missing:
        raise ModelError(
            f"{name} parameters are missing {', '.join(missing)}; expected {', '.join(names)}"
        )
    return tuple(float(params[p]) for p in names)


def _arr(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _log_tail(u: ArrayLike, m: ArrayLike, k: ArrayLike, A: ArrayLike, B: ArrayLike) -> FloatArray:
    """Return ``log integral_u^inf (A + v)^-m (B + v)^-k dv`` for ``m + k > 1``.

    Substituting ``y = 1 / (max(A, B) + v)`` gives an incomplete-beta type integral; after
    Euler's transformation it reads, for ``A >= B``,

        (A + u)^-m (B + u)^(1 - k) 2F1(m, 1; m + k; (A - B) / (A + u)) / (m + k - 1)

    and symmetrically for ``B > A``. The hypergeometric argument lies in ``[0, 1)`` and the
    second upper parameter is 1, which keeps scipy's ``hyp2f1`` well conditioned.
    """
    u, m, k, A, B = np.broadcast_arrays(_arr(u), _arr(m), _arr(k), _arr(A), _arr(B))
    au = A + u
    bu = B + u
    a_ge = A >= B
    first = np.where(a_ge, m, k)
    z = np.where(a_ge, (A - B) / au, (B - A) / bu)
    with np.errstate(divide="ignore", invalid="ignore"):
        powers = np.where(
            a_ge,
            -m * np.log(au) + (1.0 - k) * np.log(bu),
            -k * np.log(bu) + (1.0 - m) * np.log(au),
        )
        return powers + np.log(hyp2f1(first, 1.0, m + k, z)) - np.log(m + k - 1.0)


def _log_integral(
    lo: ArrayLike, hi: ArrayLike, m: ArrayLike, k: ArrayLike, A: ArrayLike, B: ArrayLike
) -> FloatArray:
    """Return ``log integral_lo^hi (A + v)^-m (B + v)^-k dv`` (``-inf`` when ``lo == hi``)."""
    g_lo = _log_tail(lo, m, k, A, B)
    g_hi = _log_tail(hi, m, k, A, B)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.minimum(g_hi - g_lo, 0.0)
        return g_lo + np.log(-np.expm1(diff))


def p_alive(
    name: str,
    params: Mapping[str, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """Probability that a customer with history ``(x, t_x, T)`` is still active at ``T``.

    Parameters
    ----------
    name : {"bgnbd", "pareto_nbd", "mbgnbd"}
        Purchase model.
    params : mapping of str to float
        Model parameters (lifetimes' names).
    frequency, recency, T : array_like
        Repeat purchases, time of last purchase and age, in the model time unit.

    Returns
    -------
    numpy.ndarray
        Probabilities in ``[0, 1]``, broadcast shape of the inputs.
    """
    x, t_x, age = _arr(frequency), _arr(recency), _arr(T)
    if name == "bgnbd":
        r, alpha, a, b = _params(name, params)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds_dead = (
                np.log(a)
                - np.log(b + np.maximum(x, 1.0) - 1.0)
                + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
            )
        return np.where(x == 0, 1.0, expit(-log_odds_dead))
    if name == "mbgnbd":
        r, alpha, a, b = _params(name, params)
        log_odds_dead = (
            np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        )
        return expit(-log_odds_dead)
    r, alpha, s, beta = _params(name, params)
    log_alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    log_dead = np.log(s) + _log_integral(t_x, age, r + x, s + 1.0, alpha, beta)
    return expit(log_alive - log_dead)


def p_purchase_given_alive(
    name: str,
    params: Mapping[str, float],
    t: ArrayLike,
    frequency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """``P(at least one purchase in (T, T + t] | alive at T, x, T)``.

    Parameters
    ----------
    name : {"bgnbd", "pareto_nbd", "mbgnbd"}
        Purchase model.
    params : mapping of str to float
        Model parameters.
    t : array_like
        Horizon length in the model time unit.
    frequency, T : array_like
        Repeat purchases and age in the model time unit.

    Returns
    -------
    numpy.ndarray
        Probabilities in ``[0, 1]``.
    """
    t, x, age = _arr(t), _arr(frequency), _arr(T)
    if name in ("bgnbd", "mbgnbd"):
        r, alpha, _, _ = _params(name, params)
        return -np.expm1(-(r + x) * np.log1p(t / (alpha + age)))
    r, alpha, s, beta = _params(name, params)
    rp = r + x
    a_p = alpha + age
    b_p = beta + age
    log_int = _log_integral(0.0, t, rp + 1.0, s, a_p, b_p)
    with np.errstate(divide="ignore"):
        out = np.exp(np.log(rp) + rp * np.log(a_p) + s * np.log(b_p) + log_int)
    return np.clip(np.where(t > 0, out, 0.0), 0.0, 1.0)


def expected_purchases_given_alive(
    name: str,
    params: Mapping[str, float],
    t: ArrayLike,
    frequency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """Expected number of purchases in ``(T, T + t]`` for a customer alive at ``T``.

    Parameters
    ----------
    name : {"bgnbd", "pareto_nbd", "mbgnbd"}
        Purchase model.
    params : mapping of str to float
        Model parameters.
    t : array_like
        Horizon length in the model time unit.
    frequency, T : array_like
        Repeat purchases and age in the model time unit.

    Returns
    -------
    numpy.ndarray
        Non-negative expected counts.

    Notes
    -----
    BG/NBD (Fader, Hardie & Lee 2005, eq. 10 divided by ``P(alive)``), rewritten with
    Euler's transformation so that ``x`` only enters the lower hypergeometric parameter:

        (a + b + x - 1) / (a - 1) * [1 - (1 - z)^(a - 1) 2F1(a + b - r - 1, a - 1;
        a + b + x - 1; z)],  z = t / (alpha + T + t).

    MBG/NBD is the same with ``a + b + x`` in place of ``a + b + x - 1``. Pareto/NBD:
    ``(r + x)(beta + T) / ((alpha + T)(s - 1)) * [1 - ((beta + T)/(beta + T + t))^(s - 1)]``
    with the ``s -> 1`` limit handled.
    """
    t, x, age = _arr(t), _arr(frequency), _arr(T)
    if name in ("bgnbd", "mbgnbd"):
        r, alpha, a, b = _params(name, params)
        shift = 1.0 if name == "bgnbd" else 0.0
        c = a + b + x - shift
        z = t / (alpha + age + t)
        hyp = hyp2f1(a + b - r - shift, a - 1.0, c, z)
        tail = np.exp((a - 1.0) * np.log1p(-z)) * hyp
        out = c / (a - 1.0) * (1.0 - tail)
        return np.maximum(out, 0.0)
    r, alpha, s, beta = _params(name, params)
    b_p = beta + age
    log_ratio = np.log1p(t / b_p)
    if abs(s - 1.0) < 1e-10:
        growth = log_ratio
    else:
        growth = -np.expm1(-(s - 1.0) * log_ratio) / (s - 1.0)
    return (r + x) / (alpha + age) * b_p * growth


def p_purchase(
    name: str,
    params: Mapping[str, float],
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """``P(at least one purchase in (T, T + t] | x, t_x, T)``.

    See the module docstring for the derivation. Parameters as in :func:`p_alive` plus
    the horizon ``t`` in the model time unit.

    Returns
    -------
    numpy.ndarray
        Probabilities in ``[0, 1]``.
    """
    alive = p_alive(name, params, frequency, recency, T)
    return alive * p_purchase_given_alive(name, params, t, frequency, T)


def expected_purchases(
    name: str,
    params: Mapping[str, float],
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """Conditional expected number of purchases in ``(T, T + t]`` given ``(x, t_x, T)``.

    Equals lifetimes' ``conditional_expected_number_of_purchases_up_to_time``. Parameters
    as in :func:`p_alive` plus the horizon ``t`` in the model time unit.

    Returns
    -------
    numpy.ndarray
        Non-negative expected counts.
    """
    alive = p_alive(name, params, frequency, recency, T)
    return alive * expected_purchases_given_alive(name, params, t, frequency, T)
