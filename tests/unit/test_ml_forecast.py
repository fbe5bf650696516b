"""Forecast intervals on a simulated shop with a known future: the 90% intervals of
expected buyers per priority group hold the buyers that really came."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import forecast
from ml.errors import ModelError
from ml.histogram import histogram, to_model_units
from ml.purchase_models import BetaGeo
from tests.btyd_world import AS_OF, FUTURE, bgnbd_world


def world_purchases(n: int, seed: int) -> np.ndarray:
    world = bgnbd_world(n, seed)
    cohort = world.at(AS_OF)[0]
    return world.bought(AS_OF, AS_OF + FUTURE)[cohort].astype(float)


def test_revenue_intervals_cover_over_many_shops() -> None:
    """Coverage over 60 groups (6 shops x 10 priority groups): near 90%, not 80%."""
    hits = groups = 0
    for seed in range(50, 56):
        model, hist, frame, _ = _case(4_000, seed)
        draws = forecast.parameter_draws(model, forecast.log_parameter_covariance(model, hist))
        table = forecast.group_forecast(
            model, draws, frame, ["list_name", "priority_group"], FUTURE
        )
        revenue = frame.assign(r=100.0 * world_purchases(4_000, seed))
        got = revenue.groupby("priority_group")["r"].sum().to_numpy()
        hits += int(((got >= table["revenue_low"]) & (got <= table["revenue_high"])).sum())
        groups += len(table)
    assert hits / groups >= 0.85, hits / groups


def _case(n: int, seed: int):
    world = bgnbd_world(n, seed)
    cohort, freq, rec, age = world.at(AS_OF)
    frame = pd.DataFrame({"frequency": freq, "recency": rec, "T": age})[cohort].reset_index(
        drop=True
    )
    hist = histogram(to_model_units(frame, "week"))
    model = BetaGeo.fit(hist, "week")
    bought = world.bought(AS_OF, AS_OF + FUTURE)[cohort] > 0
    # priority groups: deciles of the forecast, as a list ranks its members
    p = model.p_purchase(FUTURE / 7, freq[cohort], rec[cohort] / 7, age[cohort] / 7)
    frame["priority_group"] = pd.qcut(-p, 10, labels=False, duplicates="drop") + 1
    frame["list_name"] = "win_back"
    frame["expected_order_value"] = 100.0
    return model, hist, frame, bought


@pytest.mark.parametrize(("n", "seed"), [(5_000, 31), (20_000, 32)])
def test_ninety_percent_intervals_hold_the_real_buyers(n: int, seed: int) -> None:
    model, hist, frame, bought = _case(n, seed)
    cov = forecast.log_parameter_covariance(model, hist)
    draws = forecast.parameter_draws(model, cov, draws=100, seed=1)
    table = forecast.group_forecast(model, draws, frame, ["list_name", "priority_group"], FUTURE)
    actual = frame.assign(bought=bought).groupby("priority_group")["bought"].sum()
    inside = (actual.to_numpy() >= table["buyers_low"]) & (
        actual.to_numpy() <= table["buyers_high"]
    )
    assert inside.sum() >= 8, table.assign(actual=actual.to_numpy())  # 90% nominal, 10 groups
    total = forecast.group_forecast(model, draws, frame, ["list_name"], FUTURE).iloc[0]
    assert total.buyers_low <= bought.sum() <= total.buyers_high
    assert table["cumulative_buyers"].iloc[-1] == pytest.approx(total.expected_buyers)


def test_parameter_uncertainty_shrinks_with_data_and_widens_intervals() -> None:
    small, small_hist, _, _ = _case(2_000, 41)
    large, large_hist, frame, _ = _case(20_000, 41)
    var_small = np.diag(forecast.log_parameter_covariance(small, small_hist))
    var_large = np.diag(forecast.log_parameter_covariance(large, large_hist))
    # variance of an estimate falls like 1 / n: ten times the customers, about a tenth
    np.testing.assert_allclose(var_large / var_small, 0.1, rtol=0.5)
    draws = forecast.parameter_draws(large, forecast.log_parameter_covariance(large, large_hist))
    with_params = forecast.group_forecast(large, draws, frame, ["list_name"], FUTURE).iloc[0]
    chance_only = forecast.group_forecast(large, [], frame, ["list_name"], FUTURE).iloc[0]
    assert with_params.expected_buyers == pytest.approx(chance_only.expected_buyers)
    width = with_params.buyers_high - with_params.buyers_low
    assert width > chance_only.buyers_high - chance_only.buyers_low


def test_groups_to_target_and_empty_input() -> None:
    table = pd.DataFrame({"priority_group": [1, 2, 3], "cumulative_buyers": [40.0, 70.0, 90.0]})
    assert forecast.groups_to_target(table, 60, "priority_group") == 2
    assert forecast.groups_to_target(table, 100, "priority_group") is None
    model, _, frame, _ = _case(2_000, 5)
    empty = forecast.group_forecast(model, [], frame.head(0), ["list_name"], 60)
    assert empty.empty and "buyers_low" in empty.columns


def test_a_flat_likelihood_is_refused() -> None:
    model, hist, _, _ = _case(2_000, 6)
    flat = hist.assign(frequency=0, recency=0.0)
    with pytest.raises(ModelError, match="not curved like a maximum"):
        forecast.log_parameter_covariance(model, flat)
