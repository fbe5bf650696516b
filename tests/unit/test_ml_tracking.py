from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from ml.purchase_models import load_purchase_model
from ml.tracking import tracking_series

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def test_weekly_predictions_add_up_to_the_models_expectation() -> None:
    model = load_purchase_model("bgnbd", CDNOW, "week")
    start = date(2024, 1, 1)  # a Monday
    first = pd.Series([start] * 10 + [start + timedelta(days=21)] * 5)
    actual = pd.DataFrame({"week_start": [date(2024, 1, 8)], "repeat_purchases": [3]})
    series = tracking_series(model, first, actual, start=start, end=date(2024, 3, 31))
    assert series["week_start"].iloc[0] == start and len(series) == 13
    assert series["actual"].tolist() == [0, 3] + [0] * 11
    fitter = model.fitter
    expected = 10 * fitter.expected_number_of_purchases_up_to_time(13.0) + 5 * (
        fitter.expected_number_of_purchases_up_to_time(10.0)
    )
    assert series["predicted"].sum() == pytest.approx(float(expected), rel=1e-9)
    assert series["predicted"].iloc[0] > 0 and (series["predicted"] >= 0).all()


def test_a_partial_last_week_is_predicted_for_its_own_days() -> None:
    """The last week ends with the data: its forecast covers the same 3 days as its
    actual count, not a whole week (the plot used to show a false drop)."""
    model = load_purchase_model("bgnbd", CDNOW, "week")
    start = date(2024, 1, 1)
    first = pd.Series([start] * 10)
    actual = pd.DataFrame({"week_start": [date(2024, 3, 25)], "repeat_purchases": [1]})
    series = tracking_series(model, first, actual, start=start, end=date(2024, 3, 27))
    assert len(series) == 13 and series["days"].tolist() == [7] * 12 + [3]
    up_to = model.fitter.expected_number_of_purchases_up_to_time
    assert series["predicted"].sum() == pytest.approx(10 * float(up_to(12 + 3 / 7)), rel=1e-9)
    assert series["predicted"].iloc[-1] == pytest.approx(
        10 * float(up_to(12 + 3 / 7) - up_to(12.0)), rel=1e-9
    )
