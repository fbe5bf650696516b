"""The demo shop's calendar: seasonality, operational time and times of day.

Seasonality (Singles' Day, Chinese New Year, 618, weekends) is a daily intensity multiplier
with mean 1 over the generation window. Its running sum is the *operational clock*: buyers
purchase at a constant rate in operational time, which runs faster on peak days, so the
purchase process stays exactly BG/NBD while its calendar placement is seasonal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

CNY_DATES: tuple[date, ...] = (
    date(2018, 2, 16),
    date(2019, 2, 5),
    date(2020, 1, 25),
    date(2021, 2, 12),
    date(2022, 2, 1),
    date(2023, 1, 22),
    date(2024, 2, 10),
    date(2025, 1, 29),
    date(2026, 2, 17),
    date(2027, 2, 6),
    date(2028, 1, 26),
    date(2029, 2, 13),
    date(2030, 2, 3),
    date(2031, 1, 23),
)
"""Chinese New Year (Spring Festival) dates; years outside the table get no CNY effect."""

CNY_PREP_DAYS = 21

# Hour-of-day weights (local time), 0:00 .. 23:00.
HOURS_ONLINE: tuple[float, ...] = (2.0, 1.2, 0.6, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.0, 2.6, 2.8) + (
    3.0,
    2.8,
    2.6,
    2.6,
    2.7,
    2.8,
    3.0,
    3.6,
    4.4,
    5.0,
    4.6,
    3.2,
)
HOURS_STORE: tuple[float, ...] = (
    (0.0,) * 10 + (2.0, 3.0, 3.0, 3.0, 3.0, 3.2, 3.5, 3.8, 4.0, 4.2, 3.6, 2.0) + (0.0, 0.0)
)
NOV11_MIDNIGHT_SHARE = 0.2
"""Share of online Singles' Day orders placed in the first hour of Nov 11."""


def weights(values: Sequence[float]) -> NDArray[np.float64]:
    """``values`` normalised to probabilities."""
    w = np.asarray(values, dtype=np.float64)
    return w / w.sum()


@dataclass(frozen=True)
class Calendar:
    """Daily grid of the generation window with seasonality and operational time.

    Attributes
    ----------
    start, end : date
        First and last day of the window (inclusive).
    n_days : int
        Number of days in the window.
    season : ndarray of float
        Daily intensity multiplier, mean 1 over the window.
    op_clock : ndarray of float
        Operational time at the start of each day (length ``n_days + 1``).
    d11, cny, m618, nov11 : ndarray of bool
        Promotion windows (Nov 1-11, the 3 weeks before CNY, Jun 1-18, Nov 11 itself).
    """

    start: date
    end: date
    n_days: int
    season: NDArray[np.float64]
    op_clock: NDArray[np.float64]
    d11: NDArray[np.bool_]
    cny: NDArray[np.bool_]
    m618: NDArray[np.bool_]
    nov11: NDArray[np.bool_]

    @classmethod
    def build(cls, end: date, years: float) -> Calendar:
        """The window of ``years`` (rounded to whole days) ending on ``end``."""
        n_days = max(1, int(round(years * 365.25)))
        start = end - timedelta(days=n_days - 1)
        days = np.datetime64(start, "D") + np.arange(n_days)
        month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
        dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
        weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
        season = np.ones(n_days)
        season *= np.where(weekday >= 5, 1.12, 0.95)
        presale = (month == 10) & (dom >= 20)
        d11 = (month == 11) & (dom <= 11)
        nov11 = (month == 11) & (dom == 11)
        post11 = (month == 11) & (dom >= 12) & (dom <= 16)
        m618 = (month == 6) & (dom <= 18)
        d12 = (month == 12) & (dom == 12)
        season[presale] *= 0.75
        season[d11] *= 2.3
        season[nov11] *= 2.8  # ~6.4x an ordinary day
        season[post11] *= 0.8
        season[m618] *= 1.3
        season[(month == 6) & (dom == 18)] *= 2.2
        season[d12] *= 1.6
        cny = np.zeros(n_days, dtype=bool)
        holiday = np.zeros(n_days, dtype=bool)
        for cny_day in CNY_DATES:
            k = (np.datetime64(cny_day, "D") - np.datetime64(start, "D")).astype(np.int64)
            cny[max(0, k - CNY_PREP_DAYS) : max(0, min(n_days, k))] = True
            holiday[max(0, k) : max(0, min(n_days, k + 7))] = True
        season[cny] *= 1.9
        season[holiday] *= 0.45
        season /= season.mean()
        op_clock = np.concatenate([[0.0], np.cumsum(season)])
        return cls(start, end, n_days, season, op_clock, d11, cny, m618, nov11)

    def day_of(self, op_time: NDArray[np.float64]) -> NDArray[np.int32]:
        """Map operational time to a day index of the window."""
        d = np.searchsorted(self.op_clock, op_time, side="right") - 1
        return np.clip(d, 0, self.n_days - 1).astype(np.int32)

    def date_of(self, day: int) -> date:
        """Calendar date of a day index."""
        return self.start + timedelta(days=int(day))


def registration_days(rng: np.random.Generator, n: int, cal: Calendar) -> NDArray[np.int32]:
    """Draw sorted registration day indices (more early on, promotion bumps)."""
    x = (np.arange(cal.n_days) + 0.5) / cal.n_days
    w = (2.0 - x) * np.sqrt(cal.season)
    w /= w.sum()
    days = rng.choice(cal.n_days, size=n, p=w).astype(np.int32)
    days.sort()
    return days


def seconds_of_day(
    rng: np.random.Generator,
    cal: Calendar,
    day: NDArray[np.int32],
    in_store: NDArray[np.bool_],
) -> NDArray[np.int32]:
    """Draw local time of day (seconds): online or store hours; online midnight rush on Nov 11."""
    n = len(day)
    hour = rng.choice(24, size=n, p=weights(HOURS_ONLINE))
    hour[in_store] = rng.choice(24, size=int(in_store.sum()), p=weights(HOURS_STORE))
    rush = cal.nov11[day] & ~in_store & (rng.random(n) < NOV11_MIDNIGHT_SHARE)
    hour[rush] = 0
    return (hour * 3600 + rng.integers(0, 3600, n)).astype(np.int32)
