"""Closed-form predictions of the model classes: agreement with lifetimes, quadrature
and Monte-Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from scipy.integrate import quad

from ml import pareto_nbd
from ml.errors import ModelError
from ml.purchase_models import MODELS, PurchaseModel, load_purchase_model

# Published / CDNOW-fitted parameters (weeks).
PARAMS = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "pareto_nbd": {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67},
    "mbgnbd": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
}
FITTERS = {"bgnbd": BetaGeoFitter, "pareto_nbd": ParetoNBDFitter, "mbgnbd": ModifiedBetaGeoFitter}

HISTORIES = np.array(
    [
        # x, t_x, T
        [0, 0.0, 1.0],
        [0, 0.0, 38.0],
        [1, 1.7, 38.9],
        [2, 30.4, 38.9],
        [5, 10.0, 50.0],
        [7, 35.0, 36.0],
        [20, 60.0, 70.0],
        [3, 12.0, 12.0],
    ]
)


def _lifetimes(name: str):
    fitter = FITTERS[name]()
    fitter.params_ = pd.Series(PARAMS[name])
    return fitter


def _model(name: str, params: dict[str, float] | None = None) -> PurchaseModel:
    return load_purchase_model(name, params or PARAMS[name], "week")


@pytest.mark.parametrize("name", list(PARAMS))
def test_p_alive_and_expected_purchases_match_lifetimes(name: str) -> None:
    x, t_x, age = HISTORIES.T
    fitter = _lifetimes(name)
    model = _model(name)
    ours = model.p_alive(x, t_x, age)
    theirs = np.atleast_1d(fitter.conditional_probability_alive(x, t_x, age))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    for t in (1.0, 13.0, 52.0):
        ours_e = model.expected_purchases(t, x, t_x, age)
        np.testing.assert_array_equal(model.predict(t, x, t_x, age), ours_e)
        theirs_e = fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, age)
        np.testing.assert_allclose(ours_e, theirs_e, rtol=1e-8, atol=1e-12)


def test_pareto_p_purchase_matches_lifetimes_conditional_pmf() -> None:
    fitter = _lifetimes("pareto_nbd")
    for x, t_x, age in HISTORIES:
        for t in (4.0, 13.0, 52.0):
            p0 = fitter.conditional_probability_of_n_purchases_up_to_time(0, t, x, t_x, age)
            ours = _model("pareto_nbd").p_purchase(t, x, t_x, age)
            assert ours == pytest.approx(1.0 - p0, abs=1e-9)


@pytest.mark.parametrize(
    ("lo", "hi", "m", "k", "A", "B"),
    [
        (0.0, 13.0, 1.5, 0.6, 20.0, 15.0),
        (0.0, 13.0, 1.5, 0.6, 15.0, 20.0),
        (3.0, 40.0, 8.2, 1.6, 10.6, 11.7),
        (3.0, 40.0, 8.2, 1.6, 11.7, 10.6),
        (0.0, 500.0, 30.0, 0.2, 700.0, 5.0),
        (10.0, 10.5, 2.0, 1.0, 1.0, 1.0),
    ],
)
def test_log_integral_matches_quadrature(lo, hi, m, k, A, B) -> None:
    expected, _ = quad(lambda v: (A + v) ** -m * (B + v) ** -k, lo, hi, epsabs=0, epsrel=1e-12)
    ours = float(np.exp(pareto_nbd.log_integral(lo, hi, m, k, A, B)))
    assert ours == pytest.approx(expected, rel=1e-8)


def _mc_p_purchase(name: str, x: int, t_x: float, age: float, t: float, n: int, seed: int) -> float:
    """Monte-Carlo P(>=1 purchase in (T, T+t] | x, t_x, T) by forward simulation.

    Latent traits are drawn from the prior and weighted by the likelihood of the observed
    history, derived directly from the generative process; the future is then simulated
    forward. No posterior algebra is shared with the closed forms.
    """
    rng = np.random.default_rng(seed)
    p = PARAMS[name]
    lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
    gap = rng.exponential(1.0 / lam)  # time from T to the next purchase opportunity
    if name == "pareto_nbd":
        mu = rng.gamma(p["s"], 1.0 / p["beta"], n)
        tau = rng.exponential(1.0 / mu)  # lifetime
        # x purchases, last at t_x, and none afterwards while alive within (0, T].
        end = np.minimum(tau, age)
        weight = np.where(tau > t_x, lam**x * np.exp(-lam * end), 0.0)
        alive = tau > age
        bought = alive & (gap < np.minimum(t, tau - age))
    else:
        drop = rng.beta(p["a"], p["b"], n)
        # Repeat purchases allowed before dropping out (MBG can drop at the first purchase).
        allowed = rng.geometric(drop) - (1 if name == "mbgnbd" else 0)
        alive = allowed > x
        end = np.where(alive, age, t_x)
        weight = np.where(allowed >= x, lam**x * np.exp(-lam * end), 0.0)
        bought = alive & (gap < t)
    return float(np.sum(weight * bought) / np.sum(weight))


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize(
    ("x", "t_x", "age", "t"),
    [(0, 0.0, 30.0, 13.0), (0, 0.0, 5.0, 13.0), (2, 20.0, 40.0, 13.0), (5, 30.0, 50.0, 8.0)],
)
def test_p_purchase_matches_monte_carlo(name, x, t_x, age, t) -> None:
    closed = float(_model(name).p_purchase(t, x, t_x, age)[()])
    simulated = _mc_p_purchase(name, x, t_x, age, t, n=600_000, seed=11)
    assert closed == pytest.approx(simulated, abs=0.01)


def test_one_time_buyer_purchase_probability_by_pure_forward_simulation() -> None:
    """BG/NBD: among simulated customers with no repeat purchase by T, the share buying
    in (T, T+t] matches the closed form although P(alive) = 1 for all of them."""
    rng = np.random.default_rng(5)
    p = PARAMS["bgnbd"]
    n, age, t = 1_000_000, 30.0, 13.0
    lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
    no_repeat = rng.poisson(lam * age) == 0  # death only follows a purchase
    bought = rng.exponential(1.0 / lam) < t
    simulated = bought[no_repeat].mean()
    model = _model("bgnbd")
    closed = float(model.p_purchase(t, 0, 0.0, age)[()])
    assert float(model.p_alive(0, 0.0, age)[()]) == 1.0
    assert closed == pytest.approx(simulated, abs=0.005)
    later = float(model.p_purchase(t, 0, 0.0, 2 * age)[()])
    assert later < closed


def test_expected_purchases_increase_with_horizon_and_start_at_zero() -> None:
    x, t_x, age = HISTORIES.T
    for name in PARAMS:
        model = _model(name)
        values = [model.expected_purchases(t, x, t_x, age) for t in (0, 4, 13, 52)]
        np.testing.assert_allclose(values[0], 0.0, atol=1e-12)
        for lower, higher in zip(values, values[1:], strict=False):
            assert np.all(higher >= lower)


def test_unknown_model_and_missing_params_raise_model_error() -> None:
    with pytest.raises(ModelError, match="unknown purchase model 'nbd'"):
        _model("nbd", PARAMS["bgnbd"])
    with pytest.raises(ModelError, match="Pareto/NBD parameters lack s, beta"):
        _model("pareto_nbd", PARAMS["bgnbd"])


@pytest.mark.parametrize("name", list(PARAMS))
def test_p_purchase_and_expectation_factorise_through_p_alive(name: str) -> None:
    """The interface's composite predictions are P(alive) times the given-alive parts."""
    x, t_x, age = HISTORIES.T
    model = MODELS[name](params=PARAMS[name], time_unit="week")
    alive = model.p_alive(x, t_x, age)
    np.testing.assert_array_equal(
        model.p_purchase(13.0, x, t_x, age), alive * model.p_purchase_given_alive(13.0, x, age)
    )
    np.testing.assert_array_equal(
        model.expected_purchases(13.0, x, t_x, age),
        alive * model.expected_purchases_given_alive(13.0, x, age),
    )


def _log_integral_adaptive(lo: float, hi: float, m: float, k: float, A: float, B: float) -> float:
    """``log integral_lo^hi (A + v)^-m (B + v)^-k dv`` by scipy's adaptive quadrature,
    scaled by the integrand's peak on a fine grid so nothing underflows."""

    def log_f(v):
        return -m * np.log(A + v) - k * np.log(B + v)

    peak = float(np.max(log_f(np.linspace(lo, hi, 20_001))))
    value, _ = quad(lambda v: np.exp(log_f(v) - peak), lo, hi, epsabs=0, epsrel=1e-13, limit=500)
    return peak + float(np.log(value))


@pytest.mark.parametrize(
    "params",
    [
        # Fitted at 100M orders (weeks): scipy's hyp2f1 closed form gave NaN for most
        # customers here.
        {"r": 1.8755, "alpha": 18.2918, "s": 282.685, "beta": 25831.85},
        {"r": 5.0, "alpha": 2.0, "s": 900.0, "beta": 90_000.0},
        # beta < alpha and s < 1: the integrand of p_purchase peaks inside the window.
        {"r": 0.3, "alpha": 40.0, "s": 0.2, "beta": 3.0},
    ],
)
def test_pareto_predictions_at_large_and_small_dropout_shapes(params) -> None:
    model = _model("pareto_nbd", params)
    r, alpha, s, beta = (params[p] for p in ("r", "alpha", "s", "beta"))
    rows = np.array(
        [
            [0, 0.0, 1.0],
            [0, 0.0, 77.86],
            [1, 6.71, 77.86],
            [5, 50.0, 77.86],
            [30, 77.0, 77.86],
            [150, 120.0, 180.0],
            [2, 3.0, 3.0],
        ]
    )
    x, t_x, age = rows.T
    p_alive = model.p_alive(x, t_x, age)
    assert np.all(np.isfinite(p_alive))
    for t in (1.0, 8.7, 52.0):
        p_buy = model.p_purchase(t, x, t_x, age)
        assert np.all(np.isfinite(p_buy)) and np.all(p_buy <= p_alive)
        for i, (xi, txi, ti) in enumerate(rows):
            log_alive = -(r + xi) * np.log(alpha + ti) - s * np.log(beta + ti)
            if txi < ti:
                log_dead = np.log(s) + _log_integral_adaptive(txi, ti, r + xi, s + 1, alpha, beta)
            else:
                log_dead = -np.inf
            expected_alive = 1.0 / (1.0 + np.exp(log_dead - log_alive))
            log_int = _log_integral_adaptive(0.0, t, r + xi + 1, s, alpha + ti, beta + ti)
            given_alive = np.exp(
                np.log(r + xi) + (r + xi) * np.log(alpha + ti) + s * np.log(beta + ti) + log_int
            )
            assert p_alive[i] == pytest.approx(expected_alive, abs=1e-9)
            assert p_buy[i] == pytest.approx(expected_alive * min(given_alive, 1.0), abs=1e-9)
