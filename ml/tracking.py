"""Tracking plot data: weekly repeat purchases of a cohort, actual vs predicted."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml.histogram import days_per_unit
from ml.purchase_models import PurchaseModel


def tracking_series(
    model: PurchaseModel,
    first_purchase: pd.Series,
    weekly_actual: pd.DataFrame,
    *,
    start: date,
    end: date,
) -> pd.DataFrame:
    """Actual and expected repeat purchases per week for a cohort.

    Parameters
    ----------
    model : PurchaseModel
        A model fitted on the calibration period (its unconditional
        :meth:`~ml.purchase_models.PurchaseModel.expected_purchases_new_customer` is used).
    first_purchase : pandas.Series of datetime.date
        First purchase date of every customer in the cohort.
    weekly_actual : pandas.DataFrame
        ``week_start`` (Monday) and ``repeat_purchases``.
    start, end : datetime.date
        First and last day to cover.

    Returns
    -------
    pandas.DataFrame
        ``week_start``, ``actual``, ``predicted``, ``days``: the expected repeat
        purchases of the cohort in each week, sum over customers of E[X(t_end)] -
        E[X(t_start)] with t measured from each customer's first purchase; ``days`` is
        7 except in a week cut short by ``start`` or ``end`` (predicted for those days
        only, as the actual counts are).
    """
    unit = days_per_unit(model.time_unit)
    first = pd.to_datetime(pd.Series(first_purchase)).dt.date
    counts = first.value_counts()
    first_days = np.array([(d - start).days for d in counts.index], dtype=float)
    n = counts.to_numpy(dtype=float)
    monday = start - timedelta(days=start.weekday())
    weeks = pd.date_range(monday, end, freq="7D").date

    def cumulative(day: float) -> float:
        t = np.clip(day - first_days, 0, None) / unit
        expected = model.expected_purchases_new_customer(t)
        return float((n * np.where(t > 0, expected, 0.0)).sum())

    # the last week ends with `end`: a partial week is predicted for its own days only
    last = (end - start).days + 1
    edges = [max((w - start).days, 0) for w in weeks] + [min((weeks[-1] - start).days + 7, last)]
    cum = np.array([cumulative(e) for e in edges])
    actual = (
        weekly_actual.assign(week_start=pd.to_datetime(weekly_actual["week_start"]).dt.date)
        .set_index("week_start")["repeat_purchases"]
        .reindex(weeks, fill_value=0)
    )
    return pd.DataFrame(
        {
            "week_start": weeks,
            "actual": actual.to_numpy(dtype=float),
            "predicted": np.diff(cum),
            "days": np.diff(edges),  # 7, but fewer in a week cut by `start` or `end`
        }
    )
