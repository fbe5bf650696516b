"""Gamma-Gamma spend model on CDNOW and its guards."""

from __future__ import annotations

import json
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes import GammaGammaFitter

from ml.errors import ModelError
from ml.histogram import spend_histogram
from ml.spend_model import (
    FittedSpendModel,
    expected_order_value,
    fit_spend_model,
    load_spend_model,
)

DATASETS = Path(lifetimes.__file__).parent / "datasets"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """CDNOW with x, t_x, T, zbar (mean repeat transaction value) per customer."""
    frame = pd.read_csv(DATASETS / "cdnow_customers_summary_with_transactions.csv")
    return frame.rename(
        columns={"ID": "member_id", "x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )


def test_gamma_gamma_cdnow_matches_published_parameters(cdnow: pd.DataFrame) -> None:
    model = fit_spend_model(cdnow)
    for key, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert model.params[key] == pytest.approx(value, rel=0.01), key
    assert model.customers == int((cdnow["frequency"] > 0).sum()) == 946
    assert model.penalizer == 0.0
    repeat = cdnow[cdnow["frequency"] > 0]
    assert model.frequency_spend_corr == pytest.approx(
        np.corrcoef(repeat["frequency"], repeat["monetary_value"])[0, 1]
    )


def test_histogram_weighted_fit_equals_per_customer_fit(cdnow: pd.DataFrame) -> None:
    # Duplicate rows so the histogram actually collapses something.
    doubled = pd.concat([cdnow, cdnow.iloc[:300]], ignore_index=True)
    hist = spend_histogram(doubled)
    assert hist["weight"].sum() > len(hist)
    ours = fit_spend_model(doubled)
    repeat = doubled[doubled["frequency"] > 0]
    theirs = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    for key in ("p", "q", "v"):
        assert ours.params[key] == pytest.approx(theirs.params_[key], rel=1e-4)


def test_expected_order_value_matches_lifetimes_and_uses_population_mean(cdnow) -> None:
    model = fit_spend_model(cdnow)
    freq, money = cdnow["frequency"].to_numpy(), cdnow["monetary_value"].to_numpy()
    ours = expected_order_value(model, freq, money)
    theirs = model.fitter.conditional_expected_average_profit(freq, money)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    p, q, v = model.params["p"], model.params["q"], model.params["v"]
    one_timers = freq == 0
    np.testing.assert_allclose(ours[one_timers], p * v / (q - 1))
    assert model.population_mean == pytest.approx(p * v / (q - 1))
    missing = expected_order_value(model, np.array([3, 0]), np.array([np.nan, np.nan]))
    np.testing.assert_allclose(missing, model.population_mean)


def test_load_spend_model_round_trip_and_validation(cdnow: pd.DataFrame) -> None:
    model = fit_spend_model(cdnow)
    saved = json.loads(json.dumps(model.to_dict()))
    loaded = load_spend_model(saved["params"], customers=saved["customers"])
    assert loaded.params == model.params
    restored = FittedSpendModel.from_dict(saved)
    assert restored.to_dict() == saved
    freq, money = cdnow["frequency"].to_numpy(), cdnow["monetary_value"].to_numpy()
    np.testing.assert_array_equal(
        restored.fitter.conditional_expected_average_profit(freq, money),
        model.fitter.conditional_expected_average_profit(freq, money),
    )
    with pytest.raises(ModelError, match="q > 1"):
        load_spend_model({"p": 1.0, "q": 0.5, "v": 1.0})
    with pytest.raises(ModelError, match="lack v"):
        load_spend_model({"p": 1.0, "q": 2.0})


def test_too_few_repeat_customers_raise_model_error(cdnow: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match=r"only 0 repeat customers with a positive"):
        fit_spend_model(cdnow[cdnow["frequency"] == 0])
    with pytest.raises(ModelError, match="missing column"):
        fit_spend_model(cdnow.drop(columns="monetary_value"))


def test_a_bug_is_not_mistaken_for_non_convergence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The penalizer ladder tries the next rung only on convergence / numeric errors."""
    from ml import purchase_models, spend_model

    def broken(*_args, **_kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(purchase_models.BetaGeo, "_fit_at", classmethod(broken))
    monkeypatch.setattr(spend_model.gamma_gamma, "fit", broken)
    hist = pd.DataFrame(
        {"frequency": [1, 2], "recency": [5.0, 8.0], "T": [10.0, 10.0], "weight": [3, 4],
         "monetary_value": [10.0, 12.0]}
    )  # fmt: skip
    with pytest.raises(TypeError, match="a bug"):
        purchase_models.fit_purchase_model("bgnbd", hist, time_unit="week")
    with pytest.raises(TypeError, match="a bug"):
        spend_model.fit_spend_model(hist, min_customers=1)
