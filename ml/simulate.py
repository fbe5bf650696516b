"""Draw customers from known buy-till-you-die processes (for tests, demos and benchmarks).

Two layers, both pure numpy (no files, settings or Dagster):

* Building blocks that take a ``numpy.random.Generator`` and always draw in the same order,
  so a caller with its own random stream and clock gets reproducible results:
  :func:`bgnbd_buyers` / :func:`bgnbd_purchases` and :func:`pareto_nbd_buyers` /
  :func:`pareto_nbd_purchases`. The demo shop (``orchestration.demo.shop``) draws its buyers
  with them in "operational time".
* :func:`simulate_bgnbd` and :func:`simulate_pareto_nbd`: whole customer-feature frames
  (``frequency``, ``recency``, ``T``, spend, an optional holdout) from a seed.

Time is in whatever unit the rate parameters use (``alpha`` and ``beta`` per that unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

#: Gamma-Gamma ``(p, q, v)`` of the CDNOW fit in the lifetimes documentation.
DEFAULT_SPEND = (6.25, 3.74, 15.44)


@dataclass(frozen=True)
class Purchases:
    """Repeat purchases of ``n`` customers, each in its own window ``(0, length]``.

    Attributes
    ----------
    count : ndarray of int64
        Repeat purchases per customer in the window.
    owner : ndarray of int64
        Customer index of each purchase; customer-major (sorted).
    offset : ndarray of float64
        Time of each purchase since the start of its customer's window, ascending within a
        customer (aligned with ``owner``).
    alive : ndarray of bool
        Whether the customer is still active at the end of the window.
    """

    count: NDArray[np.int64]
    owner: NDArray[np.int64]
    offset: NDArray[np.float64]
    alive: NDArray[np.bool_]

    def until(self, t: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Frequency and recency (time of the last purchase, 0 without one) up to ``t``."""
        n = len(self.count)
        before = self.offset <= t[self.owner]
        frequency = np.bincount(self.owner[before], minlength=n).astype(np.int64)
        # purchases up to t are a prefix of each customer's ascending purchases
        start = np.cumsum(self.count) - self.count
        padded = np.concatenate([[0.0], self.offset])
        recency = padded[(start + frequency) * (frequency > 0)]
        return frequency, recency


def _per_customer(value: float | ArrayLike, n: int) -> NDArray[np.float64]:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def _order_statistics(
    rng: np.random.Generator,
    keep: NDArray[np.int64],
    total: NDArray[np.int64],
    length: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``keep[i]`` smallest of ``total[i]`` uniform points on ``(0, length[i]]``.

    Exact and vectorised via exponential spacings: ``U_(j) = S_j / S_(N+1)``, where only the
    first ``keep`` spacings are drawn and ``S_(N+1) - S_(keep) ~ Gamma(N + 1 - keep)``.
    Returns ``(owner, offset)``, customer-major and ascending within a customer.
    """
    owner = np.repeat(np.arange(len(keep)), keep)
    csum = np.cumsum(rng.standard_exponential(int(keep.sum())))
    seg_end = np.cumsum(keep)
    seg_start = seg_end - keep
    csum -= np.repeat(np.concatenate([[0.0], csum])[seg_start], keep)
    tail = rng.standard_gamma((total + 1 - keep).astype(np.float64))
    seg_sum = np.concatenate([[0.0], csum])[seg_end] * (keep > 0)
    denom = seg_sum + tail
    return owner, length[owner] * csum / denom[owner]


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------


def bgnbd_buyers(
    rng: np.random.Generator, n: int, r: float, alpha: float, a: float, b: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Latent BG/NBD traits: ``lambda ~ Gamma(r, rate=alpha)``, then ``p ~ Beta(a, b)``."""
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    return lam, p


def bgnbd_purchases(
    rng: np.random.Generator,
    lam: NDArray[np.float64],
    p: NDArray[np.float64],
    length: float | ArrayLike,
) -> Purchases:
    """BG/NBD repeat purchases in ``(0, length]`` after a first purchase at time 0.

    The customer buys as a Poisson process with rate ``lam`` and drops out right after
    each repeat purchase with probability ``p``: the repeat purchases made before dropping
    out are ``Geometric(p)`` (support 1, 2, ...), the Poisson events in the window
    ``M ~ Poisson(lam * length)``, the purchases ``x = min(M, dropout)`` and their times the
    ``x`` smallest of ``M`` uniforms on the window. Draws: Poisson, geometric, spacings.
    """
    length = _per_customer(length, len(lam))
    events = rng.poisson(lam * length)
    before_dropout = rng.geometric(np.clip(p, 1e-12, 1.0))
    count = np.minimum(events, before_dropout)
    owner, offset = _order_statistics(rng, count, events, length)
    return Purchases(count=count, owner=owner, offset=offset, alive=events < before_dropout)


# --------------------------------------------------------------------------------------------
# Pareto/NBD
# --------------------------------------------------------------------------------------------


def pareto_nbd_buyers(
    rng: np.random.Generator, n: int, r: float, alpha: float, s: float, beta: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Latent Pareto/NBD traits: ``lambda ~ Gamma(r, rate=alpha)``, ``mu ~ Gamma(s,
    rate=beta)`` and the lifetime ``tau ~ Exponential(rate=mu)`` (drawn in that order)."""
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    mu = rng.gamma(s, 1.0 / beta, size=n)
    with np.errstate(divide="ignore"):
        lifetime = rng.standard_exponential(n) / mu
    return lam, mu, lifetime


def pareto_nbd_purchases(
    rng: np.random.Generator,
    lam: NDArray[np.float64],
    lifetime: NDArray[np.float64],
    length: float | ArrayLike,
) -> Purchases:
    """Pareto/NBD repeat purchases in ``(0, length]`` after a first purchase at time 0.

    Poisson purchases with rate ``lam`` while alive: ``M ~ Poisson(lam * min(lifetime,
    length))`` events, uniform on ``(0, min(lifetime, length)]``.
    """
    length = _per_customer(length, len(lam))
    span = np.minimum(lifetime, length)
    count = rng.poisson(lam * span)
    owner, offset = _order_statistics(rng, count, count, span)
    return Purchases(count=count, owner=owner, offset=offset, alive=lifetime > length)


# --------------------------------------------------------------------------------------------
# Customer-feature frames
# --------------------------------------------------------------------------------------------


def _mean_spend(
    rng: np.random.Generator,
    k: NDArray[np.int64],
    nu: NDArray[np.float64] | None,
    p: float,
) -> NDArray[np.float64]:
    """Gamma-Gamma mean of ``k`` order values per customer: ``Gamma(p k, rate=nu k)``."""
    money = np.zeros(len(k))
    if nu is not None:
        got = k > 0
        money[got] = rng.gamma(p * k[got], 1.0 / (nu[got] * k[got]))
    return money


def _features(
    rng: np.random.Generator,
    purchases: Purchases,
    age: NDArray[np.float64],
    holdout: float,
    spend: tuple[float, float, float] | None,
) -> pd.DataFrame:
    """``frequency``/``recency``/``T``/``monetary_value`` (+ holdout columns) of a frame."""
    n = len(age)
    x, rec = purchases.until(age)
    frame = pd.DataFrame(
        {"member_id": [f"m{i:07d}" for i in range(n)], "frequency": x, "recency": rec, "T": age}
    )
    p, q, v = spend if spend is not None else (0.0, 0.0, 0.0)
    # customer scale nu ~ Gamma(q, rate=v)
    nu = rng.gamma(q, 1.0 / v, size=n) if spend is not None else None
    frame["monetary_value"] = _mean_spend(rng, x, nu, p)
    if holdout > 0:
        future = purchases.count - x
        frame["holdout_frequency"] = future
        frame["holdout_monetary"] = _mean_spend(rng, future, nu, p)
    return frame


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | ArrayLike,
    seed: int,
    *,
    holdout: float = 0.0,
    spend: tuple[float, float, float] | None = DEFAULT_SPEND,
) -> pd.DataFrame:
    """Simulate ``n`` customers from BG/NBD, optionally with a holdout window and spend.

    Each customer draws ``lambda ~ Gamma(r, rate=alpha)`` and ``p ~ Beta(a, b)``, makes
    a first purchase at time 0, then buys as a Poisson process with rate ``lambda`` and
    drops out right after each repeat purchase with probability ``p`` (see
    :func:`bgnbd_purchases`; the window simulated is ``(0, T + holdout]``, split at ``T``).

    Parameters
    ----------
    n : int
        Number of customers.
    r, alpha, a, b : float
        BG/NBD parameters (``alpha`` in the time unit of ``T``).
    T : float or array_like
        Observation length per customer (scalar or length ``n``), in model units.
    seed : int
        Seed for ``numpy.random.default_rng``; equal seeds give equal data.
    holdout : float, default 0.0
        If > 0, also simulate ``holdout_frequency``: purchases in ``(T, T + holdout]``.
    spend : tuple of float or None, default DEFAULT_SPEND
        Gamma-Gamma ``(p, q, v)`` used to draw ``monetary_value`` (mean of the repeat
        purchases' values, 0 for one-time buyers) and ``holdout_monetary``; ``None``
        sets them to 0.

    Returns
    -------
    pandas.DataFrame
        ``member_id`` (``"m0000001"``…), ``frequency``, ``recency``, ``T``,
        ``monetary_value``, plus ``holdout_frequency`` and ``holdout_monetary`` when
        ``holdout > 0``, and the latent ``lambda``, ``p`` and ``alive`` (still active at
        ``T``).
    """
    rng = np.random.default_rng(seed)
    age = _per_customer(T, n).copy()
    lam, p = bgnbd_buyers(rng, n, r, alpha, a, b)
    purchases = bgnbd_purchases(rng, lam, p, age + holdout)
    frame = _features(rng, purchases, age, holdout, spend)
    frame["lambda"] = lam
    frame["p"] = p
    # dropout follows a purchase: alive at T unless dropped, with no purchase after T
    frame["alive"] = purchases.alive | (frame["frequency"].to_numpy() < purchases.count)
    return frame


def simulate_pareto_nbd(
    n: int,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: float | ArrayLike,
    seed: int,
    *,
    holdout: float = 0.0,
    spend: tuple[float, float, float] | None = DEFAULT_SPEND,
) -> pd.DataFrame:
    """Simulate ``n`` customers from Pareto/NBD, optionally with a holdout window and spend.

    Each customer draws ``lambda ~ Gamma(r, rate=alpha)``, ``mu ~ Gamma(s, rate=beta)`` and
    a lifetime ``tau ~ Exponential(rate=mu)``, makes a first purchase at time 0 and buys as
    a Poisson process with rate ``lambda`` while alive (see :func:`pareto_nbd_purchases`).
    Parameters and returned columns as :func:`simulate_bgnbd`, with the latent ``lambda``,
    ``mu``, ``lifetime`` and ``alive`` (``lifetime > T``).
    """
    rng = np.random.default_rng(seed)
    age = _per_customer(T, n).copy()
    lam, mu, lifetime = pareto_nbd_buyers(rng, n, r, alpha, s, beta)
    purchases = pareto_nbd_purchases(rng, lam, lifetime, age + holdout)
    frame = _features(rng, purchases, age, holdout, spend)
    frame["lambda"] = lam
    frame["mu"] = mu
    frame["lifetime"] = lifetime
    frame["alive"] = lifetime > age
    return frame
