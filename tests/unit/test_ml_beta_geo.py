"""BG/NBD and MBG/NBD estimation outside lifetimes: same objective, same optimum."""

from __future__ import annotations

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes.datasets import load_cdnow_summary

from ml import beta_geo
from ml.fitting import LifetimesFitError
from ml.histogram import histogram, histogram_arrays
from ml.purchase_models import BetaGeo, ModifiedBetaGeo
from ml.simulate import simulate_bgnbd

HISTOGRAMS = Path(__file__).resolve().parents[1] / "fixtures" / "histograms"

FITTERS = {False: lifetimes.BetaGeoFitter, True: lifetimes.ModifiedBetaGeoFitter}


@pytest.fixture(scope="module")
def cdnow():
    return histogram_arrays(histogram(load_cdnow_summary()))


@pytest.fixture(scope="module")
def simulated():
    """Whole-day recency and age, like the warehouse's features."""
    sim = simulate_bgnbd(20_000, 0.3, 6.0, 0.9, 3.0, T=np.arange(20_000) % 300 / 7 + 1, seed=4)
    sim["recency"] = np.floor(sim["recency"] * 7) / 7
    return histogram_arrays(histogram(sim))


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize(
    "values", [(0.24, 4.41, 0.79, 2.43), (1.3, 0.4, 2.2, 0.7), (0.05, 60.0, 3.0, 0.2)]
)
@pytest.mark.parametrize("data", ["cdnow", "simulated"])
def test_likelihood_and_gradient_match_lifetimes(modified, values, data, request) -> None:
    x, t_x, age, w = request.getfixturevalue(data)
    params = np.array(values)
    lik = beta_geo.BetaGeoLikelihood(x, t_x, age, w, modified)
    mean_ll, grad = lik.mean_log_likelihood(params)
    theirs = -FITTERS[modified]._negative_log_likelihood(np.log(params), x, t_x, age, w, 0.0)
    assert mean_ll == pytest.approx(theirs, rel=1e-12)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6 * params[i]
        up, _ = lik.mean_log_likelihood(params + step)
        down, _ = lik.mean_log_likelihood(params - step)
        assert grad[i] == pytest.approx((up - down) / (2 * step[i]), rel=1e-5, abs=1e-9), i


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("penalizer", [0.0, 0.01])
@pytest.mark.parametrize("data", ["cdnow", "simulated"])
def test_fit_reaches_lifetimes_optimum(modified, penalizer, data, request) -> None:
    x, t_x, age, w = request.getfixturevalue(data)
    ours = beta_geo.fit(x, t_x, age, w, penalizer, modified=modified)
    theirs = FITTERS[modified](penalizer_coef=penalizer).fit(x, t_x, age, weights=w)
    for name in beta_geo.PARAM_NAMES:
        assert ours.params[name] == pytest.approx(float(theirs.params_[name]), rel=1e-6), name
    assert ours.time_scale == theirs._scale
    assert ours.mean_objective == pytest.approx(theirs._negative_log_likelihood_, rel=1e-10)
    total = beta_geo.log_likelihood(ours.params, x, t_x, age, w, modified=modified)
    log_values = np.log(list(ours.params.values()))
    theirs_nll = FITTERS[modified]._negative_log_likelihood(log_values, x, t_x, age, w, 0.0)
    assert total == pytest.approx(-theirs_nll * w.sum(), rel=1e-12)


def test_cdnow_bgnbd_is_the_published_fit(cdnow) -> None:
    """Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426, LL -9582.4."""
    fit = beta_geo.fit(*cdnow, 0.0, modified=False)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fit.params[name] == pytest.approx(value, abs=6e-4), name
    assert beta_geo.log_likelihood(fit.params, *cdnow, modified=False) == pytest.approx(
        -9582.4, abs=0.05
    )


def test_unidentified_parameters_fail_the_attempt() -> None:
    """Nobody repeated: BG/NBD's a and b do not enter the likelihood."""
    x, t_x, age, w = np.zeros(2), np.zeros(2), np.array([10.0, 20.0]), np.array([30.0, 20.0])
    with pytest.raises(LifetimesFitError, match="do not identify the parameters: .* flat along a"):
        beta_geo.fit(x, t_x, age, w, 0.0, modified=False)
    with pytest.raises(np.linalg.LinAlgError):  # lifetimes fails there too
        lifetimes.BetaGeoFitter().fit(x, t_x, age, weights=w)


def test_a_line_search_through_zero_fails_the_attempt_not_the_run() -> None:
    """Homogeneous dropout (lifetimes' generator, a 2000, b 8000, 3,000 customers): at
    penalizer 0 BFGS tries a point where a parameter underflows to 0. That attempt fails
    (lifetimes: ConvergenceError) and the ladder fits at 0.001, to lifetimes' numbers."""
    hist = pd.read_csv(HISTOGRAMS / "bgnbd_homogeneous_dropout.csv")
    x, t_x, age, w = histogram_arrays(hist)
    with pytest.raises(lifetimes.utils.ConvergenceError):
        lifetimes.BetaGeoFitter().fit(x, t_x, age, weights=w)
    model = BetaGeo.fit(hist, "week")
    assert model.penalizer == 0.001
    theirs = lifetimes.BetaGeoFitter(penalizer_coef=0.001).fit(x, t_x, age, weights=w)
    for name in beta_geo.PARAM_NAMES:
        assert model.params[name] == pytest.approx(float(theirs.params_[name]), rel=1e-6)


def test_a_stall_on_a_flat_ridge_counts_as_converged() -> None:
    """MBG/NBD data whose optimum lies on a flat ridge (a 212, b 495): BFGS stops on
    precision loss with a gradient of 1e-7 where lifetimes' autograd run reports success;
    both are the same optimum, so penalizer 0 is kept."""
    hist = pd.read_csv(HISTOGRAMS / "mbgnbd_flat_ridge.csv")
    x, t_x, age, w = histogram_arrays(hist)
    model = ModifiedBetaGeo.fit(hist, "week")
    assert model.penalizer == 0.0
    theirs = lifetimes.ModifiedBetaGeoFitter().fit(x, t_x, age, weights=w)
    for name in beta_geo.PARAM_NAMES:
        assert model.params[name] == pytest.approx(float(theirs.params_[name]), rel=1e-3)
