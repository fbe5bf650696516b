"""Pareto/NBD numerics: likelihood and gradient, dropout integral, fit, run-off guard."""

from __future__ import annotations

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes.datasets import load_cdnow_summary

from ml import pareto_nbd
from ml import purchase_models as pm
from ml.fitting import PARAM_RANGE
from ml.histogram import histogram, histogram_arrays
from ml.purchase_models import ParetoNBD


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
    x, t_x, age, w = histogram_arrays(histogram(_simulate_pareto_nbd(3000, *params, seed=1)))
    values = np.array(params) * np.array(shift)
    lik = pareto_nbd.ParetoLikelihood(x, t_x, age, w, 0.0)
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
    ours = pareto_nbd.dropout_integral(lo, hi, m, k, A, B)[0]
    np.testing.assert_allclose(ours, _log_integral_brute_force(lo, hi, m, k, A, B), atol=1e-9)


@pytest.mark.parametrize(
    ("r", "k", "A", "B"),
    [(0.55, 1.61, 10.58, 11.67), (1.88, 283.7, 18.29, 25832.0), (0.3, 1.05, 40.0, 0.2)],
)
def test_endpoint_grid_matches_the_direct_quadrature(r, k, A, B) -> None:
    """The grid's differences of segment sums equal the per-row quadrature, including rows
    it must hand to the direct path: T a day after t_x, exponents so large that the sums
    underflow (x up to 900), and rows without a window (t_x == T)."""
    rng = np.random.default_rng(7)
    n = 100_000
    x = np.where(rng.random(n) < 0.99, rng.geometric(0.3, n) - 1, rng.integers(40, 900, n))
    hi = rng.integers(1, 1100, n)
    lo = np.where(x == 0, 0, rng.integers(0, hi + 1))
    lo = np.where(rng.random(n) < 0.05, np.maximum(hi - 1, 0), lo)  # a day apart
    key, lo, hi = x.astype(float), lo / 7.0, hi / 7.0
    grid = pareto_nbd.EndpointGrid(key, lo, hi)
    assert grid.segments < n / 2  # else every row would take the direct path
    got = grid.integrals(r, k, A, B)
    open_ = lo < hi
    assert 0 < np.count_nonzero(~open_)
    assert np.all(got[0][~open_] == -np.inf)
    for mean in got[1:]:
        assert np.all(mean[~open_] == 0.0)
    # the direct quadrature is good to ~1e-10 in log J at large x (its window ends are
    # Newton iterates); the grid's short segments are closer to the brute force
    want = pareto_nbd.dropout_integrals(lo[open_], hi[open_], r + key[open_], k, A, B)
    np.testing.assert_allclose(got[0][open_], want[0], rtol=0, atol=2e-10)
    for ours, direct in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(ours[open_], direct, rtol=1e-9, atol=1e-14)
    sample = rng.choice(np.flatnonzero(open_), 40, replace=False)
    brute = _log_integral_brute_force(lo[sample], hi[sample], r + key[sample], k, A, B)
    np.testing.assert_allclose(got[0][sample], brute, rtol=1e-12, atol=2e-11)
    # too few shared end points: the same values from the direct path only
    few = rng.choice(n, 500, replace=False)
    sparse = pareto_nbd.EndpointGrid(key[few], lo[few], hi[few])
    assert not sparse.worthwhile
    np.testing.assert_allclose(sparse.integrals(r, k, A, B)[0], got[0][few], rtol=0, atol=2e-10)


def test_pareto_fit_matches_lifetimes_fitter_on_simulated_data() -> None:
    """About 10k customers: our L-BFGS-B fit reaches lifetimes' Nelder-Mead optimum."""
    sim = _simulate_pareto_nbd(10_000, 0.8, 12.0, 0.7, 25.0, seed=11)
    hist = histogram(sim)
    x, t_x, age, w = histogram_arrays(hist)
    ours = ParetoNBD.fit(hist, "week")
    assert type(ours) is ParetoNBD
    assert ours.penalizer == 0.0
    with np.errstate(all="ignore"):
        theirs = lifetimes.ParetoNBDFitter().fit(x, t_x, age, weights=w, initial_params=np.ones(4))
    their_params = {p: float(theirs.params_[p]) for p in ("r", "alpha", "s", "beta")}
    their_ll = pareto_nbd.log_likelihood(their_params, x, t_x, age, w)
    assert ours.log_likelihood == pytest.approx(their_ll, rel=1e-3)
    assert ours.log_likelihood >= their_ll - 1e-6 * abs(their_ll)  # at least as good
    for key, value in their_params.items():
        assert ours.params[key] == pytest.approx(value, rel=0.02), key
    assert ours.fitter.params_["s"] == ours.params["s"]
    assert ours.fitter.penalizer_coef == 0.0


def test_pareto_fit_is_deterministic() -> None:
    hist = histogram(load_cdnow_summary())
    first = pm.fit_purchase_model("pareto_nbd", hist, "week")
    second = pm.fit_purchase_model("pareto_nbd", hist, "week")
    assert first.params == second.params
    assert first.log_likelihood == second.log_likelihood


def test_pareto_run_off_escalates_the_penalizer_quickly() -> None:
    """Homogeneous dropout rates: s and beta run off together without a penalty."""
    sim = _simulate_pareto_nbd(8000, 0.8, 10.0, 1e6, 1e8, seed=5)
    x, t_x, age, w = histogram_arrays(histogram(sim))
    with pytest.raises(pareto_nbd.ParetoConvergenceError, match="s and beta ran off together"):
        pareto_nbd.fit(x, t_x, age, w, 0.0)
    fit = pm.fit_purchase_model("pareto_nbd", histogram(sim), "week")
    assert fit.penalizer > 0.0
    assert fit.params["s"] <= pareto_nbd.MAX_SHAPE
    assert all(PARAM_RANGE[0] < v < PARAM_RANGE[1] for v in fit.params.values())
    assert np.isfinite(fit.log_likelihood)
