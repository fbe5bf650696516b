"""Customer scoring: columns, ranges, horizons, CLV discounting, bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import ModelError
from ml.histogram import histogram, to_model_units
from ml.purchase_models import fit_purchase_model, load_purchase_model
from ml.scoring import SCORE_COLUMNS, churn_risk_band, score_customers, value_tier_band
from ml.simulate import simulate_bgnbd
from ml.spend_model import expected_order_value, fit_spend_model


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 5_000
    age = np.round(rng.uniform(30, 600, n))  # days, whole days like the SQL features
    sim = simulate_bgnbd(n, 0.25, 28.0, 0.8, 2.5, age, seed=8)
    sim["recency"] = np.floor(sim["recency"])
    sim["acquisition_cost"] = np.where(np.arange(n) % 3 == 0, np.nan, 12.5)
    return sim.drop(columns=["lambda", "p", "alive"])


@pytest.fixture(scope="module")
def models(features: pd.DataFrame):
    purchase = fit_purchase_model("bgnbd", histogram(to_model_units(features, "week")), "week")
    return purchase, fit_spend_model(features)


@pytest.fixture(scope="module")
def scores(features, models) -> pd.DataFrame:
    purchase, spend = models
    return score_customers(features, purchase, spend, time_unit="week", model_version="v-test")


def test_columns_and_one_row_per_member(scores: pd.DataFrame, features: pd.DataFrame) -> None:
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert len(scores) == len(features)
    assert scores["member_id"].tolist() == features["member_id"].tolist()
    assert set(scores["model"]) == {"bgnbd"}
    assert set(scores["model_version"]) == {"v-test"}


def test_probabilities_are_in_unit_interval(scores: pd.DataFrame) -> None:
    for col in ("p_alive", "p_purchase_60d", "p_purchase_90d"):
        assert scores[col].between(0.0, 1.0).all(), col
    assert (scores["p_purchase_60d"] <= scores["p_purchase_90d"] + 1e-12).all()
    assert (scores["p_purchase_90d"] <= scores["p_alive"] + 1e-12).all()


def test_expected_purchases_monotone_in_horizon(scores: pd.DataFrame) -> None:
    e30, e90, e365 = (scores[f"expected_purchases_{h}d"] for h in (30, 90, 365))
    assert (e30 >= 0).all()
    assert (e90 >= e30).all()
    assert (e365 >= e90).all()


def test_horizons_convert_days_to_model_units(scores, features, models) -> None:
    purchase, _ = models
    weeks = to_model_units(features, "week")
    x, t_x, age = (weeks[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(
        scores["expected_purchases_90d"],
        purchase.fitter.conditional_expected_number_of_purchases_up_to_time(90 / 7, x, t_x, age),
        rtol=1e-9,
    )
    np.testing.assert_allclose(scores["p_purchase_60d"], purchase.p_purchase(60 / 7, x, t_x, age))


def test_one_time_buyers_alive_but_less_likely_to_buy_when_older(scores, features) -> None:
    one_time = (features["frequency"] == 0).to_numpy()
    assert np.allclose(scores.loc[one_time, "p_alive"], 1.0)
    sub = pd.DataFrame(
        {"T": features.loc[one_time, "T"], "p": scores.loc[one_time, "p_purchase_90d"]}
    ).sort_values("T")
    assert sub["p"].is_monotonic_decreasing


def test_net_value_is_nan_where_cost_unknown(scores, features) -> None:
    unknown = features["acquisition_cost"].isna().to_numpy()
    assert scores.loc[unknown, "net_value"].isna().all()
    known = ~unknown
    expected = (
        scores.loc[known, "expected_order_value"] * scores.loc[known, "expected_purchases_365d"]
        - 12.5
    )
    np.testing.assert_allclose(scores.loc[known, "net_value"], expected)


def test_net_value_is_nan_without_cost_column(features, models) -> None:
    purchase, spend = models
    out = score_customers(
        features.drop(columns="acquisition_cost"),
        purchase,
        spend,
        time_unit="week",
        model_version="v",
    )
    assert out["net_value"].isna().all()


def test_clv_discounting(features, models, scores) -> None:
    purchase, spend = models
    undiscounted = score_customers(
        features, purchase, spend, time_unit="week", discount_rate_monthly=0.0, model_version="v"
    )
    np.testing.assert_allclose(
        undiscounted["predicted_clv_12m"],
        undiscounted["expected_order_value"] * undiscounted["expected_purchases_365d"],
        rtol=1e-10,
    )
    # Discounting lowers CLV, but by less than the full-year factor.
    assert (scores["predicted_clv_12m"] <= undiscounted["predicted_clv_12m"] + 1e-12).all()
    positive = undiscounted["predicted_clv_12m"] > 1e-9
    ratio = (
        scores.loc[positive, "predicted_clv_12m"] / undiscounted.loc[positive, "predicted_clv_12m"]
    )
    assert ratio.between(1 / 1.01**12, 1 / 1.01).all()


def test_clv_manual_monthly_sum(features, models, scores) -> None:
    purchase, spend = models
    row = features.iloc[[1]]
    weeks = to_model_units(row, "week")
    x, t_x, age = (weeks[c].to_numpy() for c in ("frequency", "recency", "T"))
    month = 365 / 12 / 7
    cum = [purchase.expected_purchases(m * month, x, t_x, age)[0] for m in range(13)]
    aov = expected_order_value(spend, row["frequency"], row["monetary_value"])[0]
    manual = sum((cum[m] - cum[m - 1]) * aov / 1.01**m for m in range(1, 13))
    assert scores["predicted_clv_12m"].iloc[1] == pytest.approx(manual, rel=1e-10)


def test_bands(scores: pd.DataFrame) -> None:
    p = scores["p_purchase_90d"]
    assert (scores.loc[p < 0.2, "churn_risk"] == "high").all()
    assert (scores.loc[(p >= 0.2) & (p < 0.5), "churn_risk"] == "medium").all()
    assert (scores.loc[p >= 0.5, "churn_risk"] == "low").all()
    share = scores["value_tier"].value_counts(normalize=True)
    assert share["top"] == pytest.approx(0.2, abs=0.02)
    assert list(churn_risk_band(np.array([0.1, 0.3, 0.9]), high_below=0.05, medium_below=0.2)) == [
        "medium",
        "low",
        "low",
    ]
    assert (
        list(value_tier_band(np.arange(10.0)))
        == ["low"] * 2 + ["medium"] * 3 + ["high"] * 3 + ["top"] * 2
    )


def test_scoring_with_saved_params_in_days(features, models) -> None:
    purchase, spend = models
    params = dict(purchase.params)
    params["alpha"] *= 7
    daily = load_purchase_model("bgnbd", params, "day")
    weekly = score_customers(features, purchase, spend, time_unit="week", model_version="v")
    by_day = score_customers(features, daily, spend, time_unit="day", model_version="v")
    np.testing.assert_allclose(by_day["p_purchase_90d"], weekly["p_purchase_90d"], rtol=1e-9)
    np.testing.assert_allclose(by_day["predicted_clv_12m"], weekly["predicted_clv_12m"], rtol=1e-9)


def test_scoring_errors(features, models) -> None:
    purchase, spend = models
    with pytest.raises(ModelError, match="fitted in weeks"):
        score_customers(features, purchase, spend, time_unit="day", model_version="v")
    with pytest.raises(ModelError, match="monetary_value"):
        score_customers(
            features.drop(columns="monetary_value"),
            purchase,
            spend,
            time_unit="week",
            model_version="v",
        )
    with pytest.raises(ModelError, match="discount_rate_monthly"):
        score_customers(
            features,
            purchase,
            spend,
            time_unit="week",
            model_version="v",
            discount_rate_monthly=-0.1,
        )


def test_score_horizons_are_settings_with_the_required_ones_kept(features, models) -> None:
    purchase, spend = models
    out = score_customers(
        features, purchase, spend, time_unit="week", model_version="v", horizons=(14, 45)
    )
    hs = (14, 45, 60, 90, 365)  # 60, 90, 365 feed the rankings, the band and the CLV
    assert [c for c in out.columns if c.startswith("p_purchase_")] == [
        f"p_purchase_{h}d" for h in hs
    ]
    probabilities = out[[f"p_purchase_{h}d" for h in hs]].to_numpy()
    assert (np.diff(probabilities, axis=1) >= -1e-12).all()  # longer horizon, more likely
    weeks = to_model_units(features, "week")
    x, t_x, age = (weeks[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(out["p_purchase_45d"], purchase.p_purchase(45 / 7, x, t_x, age))
