"""Simulated shops with a known buy-till-you-die process and a known future, in the
shape of the backtest's SQL tables (marts.customer_features_backtest and
backtest_holdout_weekly), for the model tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.simulate import bgnbd_buyers, bgnbd_purchases, pareto_nbd_buyers, pareto_nbd_purchases

AS_OF = 364.0  # days of history after the first day of acquisition
FUTURE = 182.0  # the true holdout after the as-of date


@dataclass
class World:
    """Customers acquired over 90 days, buying by a known process until AS_OF + FUTURE."""

    first: np.ndarray  # day of the first purchase
    purchases: object  # ml.simulate.Purchases, offsets in days since the first purchase

    def at(self, day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cohort mask, frequency, recency and T (days) as of `day`."""
        cohort = self.first <= day
        age = np.clip(day - self.first, 0, None)
        freq, rec = self.purchases.until(age)
        return cohort, freq, rec, age

    def bought(self, start: float, end: float) -> np.ndarray:
        return self.at(end)[1] - self.at(start)[1]

    def cutoffs(self, cap: float = 182.0, origins: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What marts.customer_features_backtest and backtest_holdout_weekly hold."""
        span = AS_OF - self.first.min()
        h = min(cap, max(7.0, 7 * np.floor(span / 28)))
        rows, weekly = [], []
        for k in range(1, origins + 2):
            c = AS_OF - k * h
            if c - self.first.min() < h:
                continue
            cohort, freq, rec, age = self.at(c)
            after = self.bought(c, c + h)
            ids = np.flatnonzero(cohort)
            rows.append(
                pd.DataFrame(
                    {
                        "cutoff_date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=c),
                        "cutoff_number": k,
                        "is_origin": bool(c - self.first.min() >= 2 * h and k <= origins),
                        "member_id": [f"m{i:06d}" for i in ids],
                        "frequency": freq[ids],
                        "recency": rec[ids],
                        "T": age[ids],
                        "holdout_frequency": after[ids],
                        "holdout_days": int(h),
                    }
                )
            )
            for w in range(1, int(h // 7) + 1):
                n = self.bought(c + 7 * (w - 1), c + 7 * w)[ids]
                weekly.append(
                    pd.DataFrame(
                        {"cutoff_date": rows[-1]["cutoff_date"].iloc[0],
                         "member_id": rows[-1]["member_id"][n > 0], "holdout_week": w,
                         "purchases": n[n > 0]}
                    )
                )  # fmt: skip
        return pd.concat(rows, ignore_index=True), pd.concat(weekly, ignore_index=True)


def bgnbd_world(n: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    first = rng.uniform(0, 90, n)
    lam, p = bgnbd_buyers(rng, n, 0.25, 28.0, 0.8, 2.5)
    return World(first, bgnbd_purchases(rng, lam, p, AS_OF + FUTURE - first))


def pareto_world(n: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    first = rng.uniform(0, 90, n)
    lam, _, lifetime = pareto_nbd_buyers(rng, n, 0.55, 74.0, 0.6, 82.0)
    return World(first, pareto_nbd_purchases(rng, lam, lifetime, AS_OF + FUTURE - first))
