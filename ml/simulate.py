"""Draw synthetic customer features from a known BG/NBD process (for tests and demos)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


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
    spend: tuple[float, float, float] | None = (6.25, 3.74, 15.44),
) -> pd.DataFrame:
    """Simulate ``n`` customers from BG/NBD, optionally with a holdout window and spend.

    Each customer draws ``lambda ~ Gamma(r, rate=alpha)`` and ``p ~ Beta(a, b)``, makes
    a first purchase at time 0, then buys as a Poisson process with rate ``lambda`` and
    drops out right after each repeat purchase with probability ``p``. The simulation
    is exact and vectorised: the number of repeat purchases before dropout is
    ``Geometric(p)``, the number of Poisson events in ``(0, T]`` is
    ``M ~ Poisson(lambda T)``, ``x = min(M, N_dropout)`` and the ``x``-th event time is
    ``T * Beta(x, M - x + 1)`` (order statistic of ``M`` uniforms).

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
    spend : tuple of float or None, default (6.25, 3.74, 15.44)
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
    age = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    drop = rng.beta(a, b, size=n)
    # Repeat purchases made before dropping out (support 1, 2, ...).
    lifetime_purchases = rng.geometric(np.clip(drop, 1e-12, 1.0))
    events = rng.poisson(lam * age)
    x = np.minimum(events, lifetime_purchases)
    rec = np.zeros(n)
    has = x > 0
    rec[has] = age[has] * rng.beta(x[has], events[has] - x[has] + 1)
    alive = events < lifetime_purchases

    frame = pd.DataFrame(
        {
            "member_id": [f"m{i:07d}" for i in range(n)],
            "frequency": x.astype(np.int64),
            "recency": rec,
            "T": age,
        }
    )
    if spend is not None:
        p, q, v = spend
        # Customer scale nu ~ Gamma(q, rate=v); mean of k values ~ Gamma(p k, rate=nu k).
        nu = rng.gamma(q, 1.0 / v, size=n)
        money = np.zeros(n)
        money[has] = rng.gamma(p * x[has], 1.0 / (nu[has] * x[has]))
        frame["monetary_value"] = money
    else:
        frame["monetary_value"] = 0.0
    if holdout > 0:
        remaining = np.where(alive, lifetime_purchases - events, 0)
        future = np.minimum(rng.poisson(lam * holdout), remaining).astype(np.int64)
        frame["holdout_frequency"] = future
        hold_money = np.zeros(n)
        if spend is not None:
            got = future > 0
            hold_money[got] = rng.gamma(p * future[got], 1.0 / (nu[got] * future[got]))
        frame["holdout_monetary"] = hold_money
    frame["lambda"] = lam
    frame["p"] = drop
    frame["alive"] = alive
    return frame
