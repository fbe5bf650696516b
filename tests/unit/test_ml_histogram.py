"""Time-unit conversion, histogram construction and simulation helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import ModelError
from ml.histogram import histogram, spend_histogram, summarize, to_model_units
from ml.simulate import simulate_bgnbd


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": ["a", "b", "c", "d", "e"],
            "frequency": [0, 2, 2, 0, 1],
            "recency": [0, 14, 14, 0, 7],
            "T": [70, 70, 70, 70, 35],
            "monetary_value": [0.0, 20.0, 20.0, 0.0, 5.0],
        }
    )


def test_to_model_units_divides_days_by_seven_for_weeks() -> None:
    feats = _features()
    weeks = to_model_units(feats, "week")
    np.testing.assert_allclose(weeks["T"], [10, 10, 10, 10, 5])
    np.testing.assert_allclose(weeks["recency"], [0, 2, 2, 0, 1])
    days = to_model_units(feats, "day")
    np.testing.assert_allclose(days["T"], feats["T"])
    assert feats["T"].tolist() == [70, 70, 70, 70, 35]  # input untouched
    with pytest.raises(ModelError, match="'month' is not supported"):
        to_model_units(feats, "month")  # type: ignore[arg-type]


def test_histogram_counts_distinct_triples() -> None:
    hist = histogram(to_model_units(_features(), "week"))
    assert hist.to_dict("records") == [
        {"frequency": 0, "recency": 0.0, "T": 10.0, "weight": 2},
        {"frequency": 1, "recency": 1.0, "T": 5.0, "weight": 1},
        {"frequency": 2, "recency": 2.0, "T": 10.0, "weight": 2},
    ]


def test_spend_histogram_keeps_repeat_customers_with_spend() -> None:
    hist = spend_histogram(_features())
    assert hist.to_dict("records") == [
        {"frequency": 1, "monetary_value": 5.0, "weight": 1},
        {"frequency": 2, "monetary_value": 20.0, "weight": 2},
    ]


def test_summarize() -> None:
    summary = summarize(_features(), "week")
    assert (summary.customers, summary.repeat_customers, summary.histogram_rows) == (5, 3, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frequency": [0, 2, 2, 0, 1.5]}, "whole numbers"),
        ({"recency": [0, 14, 14, 0, -7]}, "negative"),
        ({"T": [70, 70, np.nan, 70, 35]}, "missing or infinite"),
    ],
)
def test_histogram_validation(change, message) -> None:
    with pytest.raises(ModelError, match=message):
        histogram(_features().assign(**change))
    with pytest.raises(ModelError, match="empty"):
        histogram(_features().iloc[:0])


def test_simulation_is_deterministic_and_consistent() -> None:
    one = simulate_bgnbd(2_000, 0.25, 4.0, 0.8, 2.5, 52.0, seed=1, holdout=26.0)
    two = simulate_bgnbd(2_000, 0.25, 4.0, 0.8, 2.5, 52.0, seed=1, holdout=26.0)
    pd.testing.assert_frame_equal(one, two)
    assert (one["recency"] <= one["T"]).all()
    assert (one.loc[one["frequency"] == 0, "recency"] == 0).all()
    assert (one.loc[one["frequency"] == 0, "monetary_value"] == 0).all()
    assert (one.loc[one["frequency"] > 0, "monetary_value"] > 0).all()
    assert (one.loc[~one["alive"], "holdout_frequency"] == 0).all()
    # Population mean repeat purchases match the BG/NBD closed form E[X(T)].
    from lifetimes import BetaGeoFitter

    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series({"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5})
    big = simulate_bgnbd(200_000, 0.25, 4.0, 0.8, 2.5, 52.0, seed=2)
    expected = fitter.expected_number_of_purchases_up_to_time(52.0)
    assert big["frequency"].mean() == pytest.approx(expected, rel=0.03)
