"""Gamma-Gamma estimation outside lifetimes: same objective, same optimum."""

from __future__ import annotations

import lifetimes
import numpy as np
import pytest
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

from ml import gamma_gamma
from ml.fitting import LifetimesFitError
from ml.histogram import spend_histogram


@pytest.fixture(scope="module")
def cdnow():
    hist = spend_histogram(load_cdnow_summary_data_with_monetary_value())
    return tuple(hist[c].to_numpy(dtype=float) for c in ("frequency", "monetary_value", "weight"))


@pytest.fixture(scope="module")
def simulated():
    """Spend in cents-rounded amounts with many repeat customers."""
    rng = np.random.default_rng(2)
    n = 50_000
    x = rng.geometric(0.4, n).astype(float)
    nu = rng.gamma(3.0, 1.0 / 40.0, n)
    m = np.round(rng.gamma(5.0 * x, 1.0 / (nu * x)), 2)
    return x, m, np.ones(n)


@pytest.mark.parametrize("values", [(6.25, 3.74, 15.44), (1.0, 2.0, 50.0), (0.3, 9.0, 0.8)])
@pytest.mark.parametrize("data", ["cdnow", "simulated"])
def test_likelihood_and_gradient_match_lifetimes(values, data, request) -> None:
    x, m, w = request.getfixturevalue(data)
    params = np.array(values)
    lik = gamma_gamma.GammaGammaLikelihood(x, m, w)
    mean_ll, grad = lik.mean_log_likelihood(params)
    theirs = -lifetimes.GammaGammaFitter._negative_log_likelihood(np.log(params), x, m, w, 0.0)
    assert mean_ll == pytest.approx(theirs, rel=1e-12)
    for i in range(3):
        step = np.zeros(3)
        step[i] = 1e-6 * params[i]
        up, _ = lik.mean_log_likelihood(params + step)
        down, _ = lik.mean_log_likelihood(params - step)
        assert grad[i] == pytest.approx((up - down) / (2 * step[i]), rel=1e-5, abs=1e-9), i


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
@pytest.mark.parametrize("data", ["cdnow", "simulated"])
def test_fit_reaches_lifetimes_optimum(penalizer, data, request) -> None:
    x, m, w = request.getfixturevalue(data)
    ours = gamma_gamma.fit(x, m, w, penalizer)
    theirs = lifetimes.GammaGammaFitter(penalizer_coef=penalizer).fit(x, m, weights=w)
    for name in gamma_gamma.PARAM_NAMES:
        assert ours[name] == pytest.approx(float(theirs.params_[name]), rel=1e-6), name
    total = gamma_gamma.log_likelihood(ours, x, m, w)
    their_nll = lifetimes.GammaGammaFitter._negative_log_likelihood(
        np.log(list(ours.values())), x, m, w, 0.0
    )
    assert total == pytest.approx(-their_nll * w.sum(), rel=1e-12)


def test_cdnow_is_the_published_fit(cdnow) -> None:
    """Fader & Hardie's note 025: p 6.25, q 3.74, v 15.44."""
    fit = gamma_gamma.fit(*cdnow, 0.0)
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert fit[name] == pytest.approx(value, abs=0.01), name


def test_identical_spend_fails_the_attempt_as_in_lifetimes() -> None:
    """Everyone spends the same: no spread to estimate, the optimum runs off."""
    x, m, w = np.array([1.0, 2.0, 3.0]), np.full(3, 20.0), np.array([50.0, 30.0, 20.0])
    with pytest.raises(LifetimesFitError):
        gamma_gamma.fit(x, m, w, 0.0)
    with pytest.raises(lifetimes.utils.ConvergenceError):
        lifetimes.GammaGammaFitter().fit(x, m, weights=w)
