"""Known-answer tests for ml.simulate: the simulators reproduce their models' closed forms.

Every check compares a sample mean with the model's exact expectation, allowed four
standard errors (estimated from the same sample); seeds are fixed, so the tests are
deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from ml.simulate import (
    bgnbd_buyers,
    bgnbd_purchases,
    pareto_nbd_buyers,
    pareto_nbd_purchases,
    simulate_bgnbd,
    simulate_pareto_nbd,
)

N = 200_000
T = 39.0
HOLDOUT = 26.0
BGNBD = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
PARETO = {"r": 0.55, "alpha": 10.6, "s": 0.6, "beta": 11.7}  # CDNOW-like, weeks
SPEND = (6.25, 3.74, 15.44)


def _close(sample: pd.Series | np.ndarray, expected: float) -> None:
    values = np.asarray(sample, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - expected) < 4 * se, (values.mean(), expected, se)


def _bgnbd_mean(t: float, r: float, alpha: float, a: float, b: float) -> float:
    """E[X(t)], Fader, Hardie & Lee (2005), eq. 9."""
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def _pareto_mean(t: float, r: float, alpha: float, s: float, beta: float) -> float:
    """E[X(t)] of Pareto/NBD (Schmittlein, Morrison & Colombo 1987), s != 1."""
    return r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1))


@pytest.fixture(scope="module")
def bgnbd() -> pd.DataFrame:
    return simulate_bgnbd(N, *BGNBD.values(), T=T, seed=3, holdout=HOLDOUT, spend=SPEND)


@pytest.fixture(scope="module")
def pareto() -> pd.DataFrame:
    return simulate_pareto_nbd(N, *PARETO.values(), T=T, seed=4, holdout=HOLDOUT, spend=SPEND)


# ------------------------------------------------------------------------------------------
# BG/NBD
# ------------------------------------------------------------------------------------------


def test_bgnbd_columns(bgnbd: pd.DataFrame) -> None:
    assert list(bgnbd.columns) == [
        "member_id", "frequency", "recency", "T", "monetary_value", "holdout_frequency",
        "holdout_monetary", "lambda", "p", "alive",
    ]  # fmt: skip
    assert bgnbd["member_id"].iloc[0] == "m0000000" and bgnbd["member_id"].is_unique


def test_bgnbd_traits(bgnbd: pd.DataFrame) -> None:
    r, alpha, a, b = BGNBD.values()
    _close(bgnbd["lambda"], r / alpha)
    _close(bgnbd["p"], a / (a + b))


def test_bgnbd_expected_purchases(bgnbd: pd.DataFrame) -> None:
    _close(bgnbd["frequency"], _bgnbd_mean(T, **BGNBD))
    _close(bgnbd["holdout_frequency"], _bgnbd_mean(T + HOLDOUT, **BGNBD) - _bgnbd_mean(T, **BGNBD))
    # P(X(T) = 0) = E[exp(-lambda T)] = (alpha / (alpha + T))^r
    _close(bgnbd["frequency"] == 0, (BGNBD["alpha"] / (BGNBD["alpha"] + T)) ** BGNBD["r"])


def test_bgnbd_alive_matches_conditional_probability(bgnbd: pd.DataFrame) -> None:
    """E[P(alive | x, t_x, T)] over the sample equals the share alive (total expectation)."""
    r, alpha, a, b = BGNBD.values()
    x, tx = bgnbd["frequency"].to_numpy(), bgnbd["recency"].to_numpy()
    odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x), 0.0)
    p_alive = 1 / (1 + odds)
    diff = bgnbd["alive"].to_numpy(float) - p_alive
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(N)
    # nobody dropped out without a purchase, and a purchase in the holdout means alive at T
    assert bgnbd.loc[bgnbd["frequency"] == 0, "alive"].all()
    assert bgnbd.loc[bgnbd["holdout_frequency"] > 0, "alive"].all()


def test_bgnbd_recency_and_spend(bgnbd: pd.DataFrame) -> None:
    x = bgnbd["frequency"]
    assert (bgnbd.loc[x == 0, "recency"] == 0).all()
    assert ((bgnbd.loc[x > 0, "recency"] > 0) & (bgnbd.loc[x > 0, "recency"] <= T)).all()
    p, q, v = SPEND
    _close(bgnbd.loc[x > 0, "monetary_value"], p * v / (q - 1))  # E[z] = p E[1/nu]
    assert (bgnbd.loc[x == 0, "monetary_value"] == 0).all()
    assert (bgnbd.loc[bgnbd["holdout_frequency"] == 0, "holdout_monetary"] == 0).all()


def test_deterministic_and_seed_sensitive() -> None:
    one = simulate_bgnbd(500, *BGNBD.values(), T=T, seed=1, holdout=HOLDOUT)
    pd.testing.assert_frame_equal(
        one, simulate_bgnbd(500, *BGNBD.values(), T=T, seed=1, holdout=HOLDOUT)
    )
    assert not one.equals(simulate_bgnbd(500, *BGNBD.values(), T=T, seed=2, holdout=HOLDOUT))
    two = simulate_pareto_nbd(500, *PARETO.values(), T=T, seed=1)
    pd.testing.assert_frame_equal(two, simulate_pareto_nbd(500, *PARETO.values(), T=T, seed=1))


def test_no_spend_and_per_customer_ages() -> None:
    ages = np.linspace(1.0, 80.0, 1_000)
    sim = simulate_bgnbd(1_000, *BGNBD.values(), T=ages, seed=5, spend=None)
    assert (sim["monetary_value"] == 0).all() and "holdout_frequency" not in sim
    np.testing.assert_array_equal(sim["T"], ages)
    assert (sim["recency"] <= sim["T"]).all()


# ------------------------------------------------------------------------------------------
# Pareto/NBD
# ------------------------------------------------------------------------------------------


def test_pareto_traits(pareto: pd.DataFrame) -> None:
    r, alpha, s, beta = PARETO.values()
    _close(pareto["lambda"], r / alpha)
    _close(pareto["mu"], s / beta)
    # P(tau > T) = E[exp(-mu T)] = (beta / (beta + T))^s
    _close(pareto["alive"], (beta / (beta + T)) ** s)
    assert (pareto["alive"] == (pareto["lifetime"] > T)).all()


def test_pareto_expected_purchases(pareto: pd.DataFrame) -> None:
    _close(pareto["frequency"], _pareto_mean(T, **PARETO))
    _close(
        pareto["holdout_frequency"], _pareto_mean(T + HOLDOUT, **PARETO) - _pareto_mean(T, **PARETO)
    )
    # nobody buys after dying
    assert (pareto.loc[~pareto["alive"], "holdout_frequency"] == 0).all()
    assert (pareto["recency"] <= pareto["lifetime"]).all()


def test_pareto_purchase_times_uniform_while_alive(pareto: pd.DataFrame) -> None:
    """Alive all along with x purchases: the last is the max of x uniforms, E = T x / (x + 1)."""
    alive = pareto[pareto["lifetime"] > T]
    for x in (1, 3):
        _close(alive.loc[alive["frequency"] == x, "recency"], T * x / (x + 1))


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_purchases_are_ordered_within_each_window(model: str) -> None:
    rng = np.random.default_rng(9)
    n = 5_000
    length = rng.uniform(0.0, 100.0, n)
    if model == "bgnbd":
        lam, p = bgnbd_buyers(rng, n, 2.0, 10.0, 1.0, 3.0)
        got = bgnbd_purchases(rng, lam, p, length)
    else:
        lam, _mu, lifetime = pareto_nbd_buyers(rng, n, 2.0, 10.0, 1.0, 30.0)
        got = pareto_nbd_purchases(rng, lam, lifetime, length)
    assert got.count.sum() > 5_000
    np.testing.assert_array_equal(np.bincount(got.owner, minlength=n), got.count)
    assert (np.diff(got.owner) >= 0).all()
    assert ((got.offset > 0) & (got.offset <= length[got.owner])).all()
    same = np.diff(got.owner) == 0
    assert (np.diff(got.offset)[same] > 0).all()
    # up to the window end: everything; up to 0: nothing
    x, rec = got.until(length)
    np.testing.assert_array_equal(x, got.count)
    last = np.cumsum(got.count) - 1
    np.testing.assert_array_equal(rec[got.count > 0], got.offset[last[got.count > 0]])
    assert (got.until(np.zeros(n))[0] == 0).all()


def test_bgnbd_purchases_draw_order_is_fixed() -> None:
    """The demo shop relies on this order (Poisson, geometric, spacings): pinned values."""
    rng = np.random.default_rng(2024)
    lam, p = bgnbd_buyers(rng, 3, 1.2, 72.0, 1.0, 7.0)
    got = bgnbd_purchases(rng, lam * 50, p, np.array([365.0, 200.0, 0.0]))
    ref = np.random.default_rng(2024)
    ref_lam, ref_p = ref.gamma(1.2, 1 / 72.0, 3), ref.beta(1.0, 7.0, 3)
    events = ref.poisson(ref_lam * 50 * np.array([365.0, 200.0, 0.0]))
    cap = ref.geometric(ref_p)
    np.testing.assert_array_equal(lam, ref_lam)
    np.testing.assert_array_equal(got.count, np.minimum(events, cap))
    np.testing.assert_array_equal(got.alive, events < cap)
    assert got.count[2] == 0  # an empty window has no purchases
