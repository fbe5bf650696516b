"""Purchase-model fitting: published CDNOW values, histogram equivalence, guards."""

from __future__ import annotations

import json
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest

from ml import purchase_models as pm
from ml.errors import ModelError
from ml.formulas import expected_purchases
from ml.histogram import histogram, to_model_units
from ml.simulate import simulate_bgnbd

DATASETS = Path(lifetimes.__file__).parent / "datasets"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """CDNOW summary: frequency, recency, T already in weeks (2357 customers)."""
    frame = pd.read_csv(DATASETS / "cdnow_customers_summary.csv")
    return frame.rename(columns={"ID": "member_id"})


@pytest.fixture(scope="module")
def cdnow_fits(cdnow: pd.DataFrame) -> dict[str, pm.FittedPurchaseModel]:
    return pm.fit_candidates(histogram(cdnow), pm.MODEL_NAMES, "week", parallel=False)


def test_cdnow_histogram_is_smaller_and_keeps_every_customer(cdnow: pd.DataFrame) -> None:
    hist = histogram(cdnow)
    assert list(hist.columns) == ["frequency", "recency", "T", "weight"]
    assert hist["weight"].sum() == len(cdnow) == 2357
    assert len(hist) < len(cdnow)
    assert not hist.duplicated(["frequency", "recency", "T"]).any()


def test_bgnbd_cdnow_matches_published_parameters(cdnow_fits) -> None:
    fit = cdnow_fits["bgnbd"]
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for key, value in published.items():
        assert fit.params[key] == pytest.approx(value, rel=0.01), key
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.penalizer == 0.0
    assert fit.customers == 2357
    assert fit.time_unit == "week"


def test_pareto_nbd_cdnow_matches_published_parameters(cdnow_fits) -> None:
    fit = cdnow_fits["pareto_nbd"]
    published = {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
    for key, value in published.items():
        assert fit.params[key] == pytest.approx(value, rel=0.03), key
    assert fit.log_likelihood == pytest.approx(-9595.0, abs=0.5)


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
    rng = np.random.default_rng(2024)
    n = 20_000
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
    e_week = expected_purchases("bgnbd", weekly.params, 13.0, x, t_x, age)
    e_day = expected_purchases("bgnbd", daily.params, 91.0, x, t_x * 7, age * 7)
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
    real = pm._fit_once
    seen: list[float] = []

    def flaky(name, x, t_x, age, w, penalizer):
        seen.append(penalizer)
        if penalizer < 0.01:
            raise np.linalg.LinAlgError("simulated optimizer failure")
        return real(name, x, t_x, age, w, penalizer)

    monkeypatch.setattr(pm, "_fit_once", flaky)
    fit = pm.fit_purchase_model("bgnbd", histogram(cdnow), "week")
    assert seen == [0.0, 0.001, 0.01]
    assert fit.penalizer == 0.01

    monkeypatch.setattr(
        pm, "_fit_once", lambda *a: (_ for _ in ()).throw(FloatingPointError("boom"))
    )
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


def _simulate_pareto_nbd(n: int, r: float, alpha: float, s: float, beta: float, seed: int):
    """Pareto/NBD customers: Gamma purchase and dropout rates, whole-day recency."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 365, n) / 7.0  # weeks, observed 1-364 days
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    active = np.minimum(rng.exponential(1.0 / mu), age)
    x = rng.poisson(lam * active)
    last = active * rng.random(n) ** (1.0 / np.maximum(x, 1))  # max of x uniforms
    t_x = np.where(x > 0, np.floor(last * 7.0) / 7.0, 0.0)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": age})


PARETO_CASES = [
    (0.55, 10.58, 0.61, 11.67),  # CDNOW
    (1.87, 18.3, 14.9, 1297.0),  # weakly identified dropout, beta >> alpha
    (0.3, 40.0, 0.05, 0.2),  # beta << alpha
    (2.5, 3.0, 2.0, 3.0),
]


@pytest.mark.parametrize("params", PARETO_CASES)
@pytest.mark.parametrize("shift", [(1.0, 1.0, 1.0, 1.0), (1.3, 0.8, 0.7, 1.4)])
def test_pareto_likelihood_and_gradient_match_lifetimes(params, shift) -> None:
    x, t_x, age, w = pm._hist_arrays(histogram(_simulate_pareto_nbd(3000, *params, seed=1)))
    values = np.array(params) * np.array(shift)
    lik = pm._ParetoLikelihood(x, t_x, age, w, 0.0)
    mean_ll, grad = lik.mean_log_likelihood(values)
    with np.errstate(all="ignore"):
        rows = lifetimes.ParetoNBDFitter._conditional_log_likelihood(values, x, t_x, age)
    assert np.all(np.isfinite(rows))
    assert mean_ll == pytest.approx(np.dot(w, rows) / w.sum(), rel=1e-11)
    for i in range(4):  # central differences; per-customer gradients are O(1e-4..1)
        step = np.zeros(4)
        step[i] = 1e-5 * values[i]
        up, _ = lik.mean_log_likelihood(values + step)
        down, _ = lik.mean_log_likelihood(values - step)
        assert grad[i] == pytest.approx((up - down) / (2 * step[i]), rel=1e-5, abs=1e-8), i


def _log_integral_brute_force(lo, hi, m, k, A, B, panels=2000, nodes=8):
    """Composite Gauss-Legendre on t = log(min(A, B) + v): slow but plainly correct."""
    y, wq = np.polynomial.legendre.leggauss(nodes)
    c = min(A, B)
    out = np.empty(len(lo))
    for i in range(len(lo)):
        edges = np.linspace(np.log(c + lo[i]), np.log(c + hi[i]), panels + 1)
        half = 0.5 * np.diff(edges)[:, None]
        t = (edges[:-1, None] + half * (y + 1.0)).ravel()
        v = np.exp(t) - c
        g = t - m[i] * np.log(A + v) - k * np.log(B + v)
        out[i] = g.max() + np.log(np.sum((half * wq).ravel() * np.exp(g - g.max())))
    return out


@pytest.mark.parametrize(
    ("k", "A", "B"),
    [(1.61, 10.58, 11.67), (15.9, 18.3, 1297.0), (1.05, 40.0, 0.2), (2.7, 1390.0, 0.02)],
)
def test_pareto_dropout_integral_is_accurate(k, A, B) -> None:
    """Quadrature vs brute force over wide ranges (scipy's hyp2f1 closed form loses
    digits or returns NaN in parts of this range, e.g. beta << alpha with large x)."""
    rng = np.random.default_rng(3)
    n = 400
    hi = rng.uniform(0.1, 700.0, n)
    lo = np.where(rng.random(n) < 0.3, 0.0, hi * rng.random(n))
    m = np.exp(rng.uniform(np.log(0.05), np.log(10.0), n)) + rng.integers(0, 300, n)
    ours = pm._pareto_dropout_integral(lo, hi, m, k, A, B)[0]
    np.testing.assert_allclose(ours, _log_integral_brute_force(lo, hi, m, k, A, B), atol=1e-9)


def test_pareto_fit_matches_lifetimes_fitter_on_simulated_data() -> None:
    """About 10k customers: our L-BFGS-B fit reaches lifetimes' Nelder-Mead optimum."""
    sim = _simulate_pareto_nbd(10_000, 0.8, 12.0, 0.7, 25.0, seed=11)
    hist = histogram(sim)
    x, t_x, age, w = pm._hist_arrays(hist)
    ours = pm.fit_purchase_model("pareto_nbd", hist, "week")
    assert ours.penalizer == 0.0
    with np.errstate(all="ignore"):
        theirs = lifetimes.ParetoNBDFitter().fit(x, t_x, age, weights=w, initial_params=np.ones(4))
    their_params = {p: float(theirs.params_[p]) for p in ("r", "alpha", "s", "beta")}
    their_ll = pm._log_likelihood("pareto_nbd", their_params, x, t_x, age, w)
    assert ours.log_likelihood == pytest.approx(their_ll, rel=1e-3)
    assert ours.log_likelihood >= their_ll - 1e-6 * abs(their_ll)  # at least as good
    for key, value in their_params.items():
        assert ours.params[key] == pytest.approx(value, rel=0.02), key
    assert ours.fitter.params_["s"] == ours.params["s"]
    assert ours.fitter.penalizer_coef == 0.0


def test_pareto_fit_is_deterministic(cdnow: pd.DataFrame) -> None:
    hist = histogram(cdnow)
    first = pm.fit_purchase_model("pareto_nbd", hist, "week")
    second = pm.fit_purchase_model("pareto_nbd", hist, "week")
    assert first.params == second.params
    assert first.log_likelihood == second.log_likelihood


def test_pareto_run_off_escalates_the_penalizer_quickly() -> None:
    """Homogeneous dropout rates: s and beta run off together without a penalty."""
    sim = _simulate_pareto_nbd(8000, 0.8, 10.0, 1e6, 1e8, seed=5)
    x, t_x, age, w = pm._hist_arrays(histogram(sim))
    with pytest.raises(pm.ParetoConvergenceError, match="s and beta ran off together"):
        pm._fit_pareto_nbd(x, t_x, age, w, 0.0)
    fit = pm.fit_purchase_model("pareto_nbd", histogram(sim), "week")
    assert fit.penalizer > 0.0
    assert fit.params["s"] <= pm.PARETO_MAX_SHAPE
    assert all(pm.PARAM_RANGE[0] < v < pm.PARAM_RANGE[1] for v in fit.params.values())
    assert np.isfinite(fit.log_likelihood)
