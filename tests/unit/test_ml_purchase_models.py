"""Purchase-model fitting: published CDNOW values, histogram equivalence, ladder, guards."""

from __future__ import annotations

import json
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest

from ml import purchase_models as pm
from ml.errors import ModelError
from ml.histogram import histogram, to_model_units
from ml.simulate import simulate_bgnbd

DATASETS = Path(lifetimes.__file__).parent / "datasets"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """CDNOW summary: frequency, recency, T already in weeks (2357 customers)."""
    frame = pd.read_csv(DATASETS / "cdnow_customers_summary.csv")
    return frame.rename(columns={"ID": "member_id"})


@pytest.fixture(scope="module")
def cdnow_fits(cdnow: pd.DataFrame) -> dict[str, pm.PurchaseModel]:
    return pm.fit_candidates(histogram(cdnow), pm.MODEL_NAMES, "week", parallel=False)


def test_cdnow_histogram_is_smaller_and_keeps_every_customer(cdnow: pd.DataFrame) -> None:
    hist = histogram(cdnow)
    assert list(hist.columns) == ["frequency", "recency", "T", "weight"]
    assert hist["weight"].sum() == len(cdnow) == 2357
    assert len(hist) < len(cdnow)
    assert not hist.duplicated(["frequency", "recency", "T"]).any()


PUBLISHED = {  # Fader, Hardie & Lee (2005); Fader & Hardie (2005)
    "bgnbd": ({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, 0.01, -9582.4, 0.1),
    "pareto_nbd": ({"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}, 0.03, -9595.0, 0.5),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_cdnow_matches_published_parameters(cdnow_fits, name: str) -> None:
    published, rel, log_likelihood, tolerance = PUBLISHED[name]
    fit = cdnow_fits[name]
    assert isinstance(fit, pm.MODELS[name])
    for key, value in published.items():
        assert fit.params[key] == pytest.approx(value, rel=rel), key
    assert fit.log_likelihood == pytest.approx(log_likelihood, abs=tolerance)
    assert fit.penalizer == 0.0
    assert fit.customers == 2357
    assert fit.time_unit == "week"


def test_mbgnbd_cdnow_fits_with_comparable_likelihood(cdnow_fits) -> None:
    fit = cdnow_fits["mbgnbd"]
    assert set(fit.params) == {"r", "alpha", "a", "b"}
    assert all(v > 0 for v in fit.params.values())
    assert fit.log_likelihood == pytest.approx(cdnow_fits["bgnbd"].log_likelihood, abs=5.0)


@pytest.mark.parametrize("name", pm.MODEL_NAMES)
def test_histogram_fit_equals_per_customer_fit(cdnow: pd.DataFrame, name: str) -> None:
    small = cdnow.iloc[:800]
    by_hist = pm.fit_purchase_model(name, histogram(small), "week")
    per_customer = pm.fit_purchase_model(name, small[["frequency", "recency", "T"]], "week")
    assert len(histogram(small)) < len(small)
    for key, value in per_customer.params.items():
        assert by_hist.params[key] == pytest.approx(value, rel=1e-4), key
    assert by_hist.log_likelihood == pytest.approx(per_customer.log_likelihood, rel=1e-6)
    assert by_hist.customers == per_customer.customers == 800


def test_simulated_bgnbd_parameters_are_recovered() -> None:
    # b's sampling spread at this size is about 5% (40 seeds): 15% is three of them
    rng = np.random.default_rng(2024)
    n = 50_000
    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    sim = simulate_bgnbd(n, *truth.values(), T=rng.uniform(30, 80, n), seed=7)
    fit = pm.fit_purchase_model("bgnbd", histogram(sim), "week")
    for key, value in truth.items():
        assert fit.params[key] == pytest.approx(value, rel=0.15), key


def test_days_and_weeks_give_the_same_predictions(cdnow: pd.DataFrame) -> None:
    sample = cdnow.iloc[:1000].copy()
    days = sample.assign(recency=sample["recency"] * 7, T=sample["T"] * 7)
    weekly = pm.fit_purchase_model("bgnbd", histogram(to_model_units(days, "week")), "week")
    daily = pm.fit_purchase_model("bgnbd", histogram(to_model_units(days, "day")), "day")
    assert daily.params["alpha"] == pytest.approx(weekly.params["alpha"] * 7, rel=1e-3)
    x, t_x, age = (sample[c].to_numpy() for c in ("frequency", "recency", "T"))
    e_week = weekly.expected_purchases(13.0, x, t_x, age)
    e_day = daily.expected_purchases(91.0, x, t_x * 7, age * 7)
    np.testing.assert_allclose(e_week, e_day, rtol=2e-3)


def test_penalizer_escalates_when_the_unpenalized_fit_fails(cdnow: pd.DataFrame) -> None:
    """On this 40-customer sample lifetimes' unpenalized BG/NBD fit does not converge."""
    sample = cdnow.sample(40, random_state=4)
    fit = pm.fit_purchase_model("bgnbd", histogram(sample), "week")
    assert fit.penalizer > 0.0
    assert fit.penalizer in pm.PENALIZER_LADDER
    assert all(1e-3 < v < 1e3 for v in fit.params.values())


def test_degenerate_data_raises_model_error_naming_model_and_last_error(capsys) -> None:
    degenerate = pd.DataFrame({"frequency": [0] * 50, "recency": [0.0] * 50, "T": [10.0] * 50})
    with pytest.raises(ModelError) as info:
        pm.fit_purchase_model("bgnbd", histogram(degenerate), "week")
    assert capsys.readouterr().out == ""  # lifetimes' optimizer dump is suppressed
    message = str(info.value)
    assert "BG/NBD" in message
    assert "did not converge with any penalizer (0, 0.001, 0.01, 0.1)" in message
    assert "last error:" in message and "degenerate solution" in message


def test_ladder_records_the_step_that_converged(monkeypatch, cdnow: pd.DataFrame) -> None:
    real = pm.BetaGeo._fit_at
    seen: list[float] = []

    def flaky(cls, data, penalizer):
        seen.append(penalizer)
        if penalizer < 0.01:
            raise np.linalg.LinAlgError("simulated optimizer failure")
        return real(data, penalizer)

    monkeypatch.setattr(pm.BetaGeo, "_fit_at", classmethod(flaky))
    fit = pm.fit_purchase_model("bgnbd", histogram(cdnow), "week")
    assert seen == [0.0, 0.001, 0.01]
    assert fit.penalizer == 0.01

    def boom(cls, data, penalizer):
        raise FloatingPointError("boom")

    monkeypatch.setattr(pm.ParetoNBD, "_fit_at", classmethod(boom))
    with pytest.raises(ModelError, match=r"Pareto/NBD.*last error: FloatingPointError: boom"):
        pm.fit_purchase_model("pareto_nbd", histogram(cdnow), "week")


def test_fit_candidates_parallel_equals_sequential(cdnow: pd.DataFrame, capsys) -> None:
    hist = histogram(cdnow.sample(60, random_state=4))  # bgnbd escalates to 0.001 here
    names = ["bgnbd", "pareto_nbd", "mbgnbd"]
    sequential = pm.fit_candidates(hist, names, "week", parallel=False)
    pooled = pm.fit_candidates(hist, names, "week", parallel=True, parallel_min_rows=0)
    assert list(pooled) == names
    assert capsys.readouterr().out == ""
    for name in sequential:
        assert pooled[name].params == sequential[name].params
        assert pooled[name].penalizer == sequential[name].penalizer
        assert pooled[name].fitter is not None
    assert pooled["bgnbd"].penalizer > 0


def test_fit_candidates_reports_failures() -> None:
    degenerate = pd.DataFrame({"frequency": [0] * 50, "recency": [0.0] * 50, "T": [10.0] * 50})
    with pytest.raises(ModelError, match="BG/NBD"):
        pm.fit_candidates(histogram(degenerate), ["bgnbd"], "week", parallel=False)
    with pytest.raises(ModelError, match="unknown purchase model 'nbd'"):
        pm.fit_candidates(histogram(degenerate), ["nbd"], "week")


def test_saved_params_round_trip_through_json(cdnow_fits, cdnow: pd.DataFrame) -> None:
    fit = cdnow_fits["pareto_nbd"]
    saved = json.loads(json.dumps(fit.to_dict()))
    loaded = pm.load_purchase_model(
        saved["name"], saved["params"], saved["time_unit"], penalizer=saved["penalizer"]
    )
    assert type(loaded) is pm.ParetoNBD
    assert loaded.params == fit.params
    x, t_x, age = (cdnow[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(
        loaded.fitter.conditional_expected_number_of_purchases_up_to_time(10, x, t_x, age),
        fit.fitter.conditional_expected_number_of_purchases_up_to_time(10, x, t_x, age),
    )


def test_load_rejects_bad_params() -> None:
    with pytest.raises(ModelError, match="lack b"):
        pm.load_purchase_model("bgnbd", {"r": 1, "alpha": 1, "a": 1}, "week")
    with pytest.raises(ModelError, match="alpha"):
        pm.load_purchase_model("bgnbd", {"r": 1, "alpha": -1, "a": 1, "b": 1}, "week")
    with pytest.raises(ModelError, match="time unit 'month'"):
        pm.load_purchase_model("bgnbd", {"r": 1, "alpha": 1, "a": 1, "b": 1}, "month")


def _features(customers: int, repeat: int) -> pd.DataFrame:
    freq = np.r_[np.ones(repeat, dtype=int), np.zeros(customers - repeat, dtype=int)]
    return pd.DataFrame({"frequency": freq, "recency": freq * 10.0, "T": np.full(customers, 100.0)})


def test_check_fit_data_guards() -> None:
    with pytest.raises(ModelError) as info:
        pm.check_fit_data(_features(600, 42))
    message = str(info.value)
    assert "only 42 customers with a repeat purchase" in message
    assert "needs at least 100" in message
    assert "CRM_MIN_REPEAT_CUSTOMERS" in message

    with pytest.raises(ModelError, match=r"only 300 customers.*at least 500.*CRM_MIN_CUSTOMERS"):
        pm.check_fit_data(_features(300, 200))

    summary = pm.check_fit_data(_features(600, 150), min_customers=500, min_repeat_customers=100)
    assert (summary.customers, summary.repeat_customers) == (600, 150)
    assert pm.check_fit_data(_features(60, 42), min_customers=10, min_repeat_customers=40)


def test_invalid_features_raise_model_error() -> None:
    bad = pd.DataFrame({"frequency": [1, 0], "recency": [20.0, 0.0], "T": [10.0, 5.0]})
    with pytest.raises(ModelError, match="recency > T"):
        pm.check_fit_data(bad, min_customers=1, min_repeat_customers=1)
    with pytest.raises(ModelError, match="missing column"):
        pm.check_fit_data(bad.drop(columns="T"))
    stray = pd.DataFrame({"frequency": [0], "recency": [3.0], "T": [10.0]})
    with pytest.raises(ModelError, match="frequency 0 but recency"):
        histogram(stray)
