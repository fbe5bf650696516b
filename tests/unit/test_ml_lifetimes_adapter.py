"""The lifetimes adapter: known answers through lifetimes, and that nothing else touches it."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import lifetimes
import numpy as np
import pytest
from lifetimes.datasets import load_cdnow_summary

from ml import lifetimes_adapter as lt
from ml.histogram import histogram, histogram_arrays

ML = Path(__file__).resolve().parents[2] / "ml"

#: Published CDNOW BG/NBD maximum (Fader, Hardie & Lee 2005): parameters in weeks and
#: the log-likelihood -9582.4 that lifetimes' fitter also reaches.
CDNOW_BGNBD = {"r": 0.2425929282798223, "alpha": 4.413532265271833,
               "a": 0.7928859664406973, "b": 2.4257523826258964}  # fmt: skip
BG_NAMES = ("r", "alpha", "a", "b")

#: lifetimes attributes only the adapter may use: private ones and the fitted params_.
LIFETIMES_INTERNALS = {
    "_negative_log_likelihood", "_negative_log_likelihood_", "_scale", "_hessian_", "_fit",
    "_unload_params", "_conditional_log_likelihood", "params_",
}  # fmt: skip


@pytest.fixture(scope="module")
def cdnow():
    return histogram_arrays(histogram(load_cdnow_summary()))


def test_with_params_behaves_like_a_fitted_fitter(cdnow) -> None:
    fitted = lifetimes.BetaGeoFitter().fit(*cdnow[:3], weights=cdnow.weight)
    rebuilt = lt.with_params(lt.BetaGeoFitter, dict(fitted.params_), BG_NAMES)
    x, t_x, age = np.array([0, 2, 7]), np.array([0.0, 30.4, 35.0]), np.array([38.0, 38.9, 36.0])
    np.testing.assert_allclose(rebuilt.predict(13, x, t_x, age), fitted.predict(13, x, t_x, age))
    np.testing.assert_allclose(
        lt.expected_purchases_new_customer(rebuilt, [10.0, 52.0]),
        fitted.expected_number_of_purchases_up_to_time(np.array([10.0, 52.0])),
    )
    spend = lt.with_params(lt.GammaGammaFitter, {"p": 6.25, "q": 3.74, "v": 15.44}, "pqv")
    assert spend.conditional_expected_average_profit(0, 0.0) == pytest.approx(6.25 * 15.44 / 2.74)


def test_pareto_fitter_is_left_as_lifetimes_fit_leaves_it(cdnow) -> None:
    names = ("r", "alpha", "s", "beta")
    params = {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
    scale = 1.0 / float(cdnow.T.max())
    fitter = lt.pareto_fitter(
        params, names, penalizer=0.01, time_scale=scale, mean_objective=4.0,
        frequency=cdnow.frequency, recency=cdnow.recency, T=cdnow.T, weights=cdnow.weight,
    )  # fmt: skip
    assert fitter.penalizer_coef == 0.01
    assert dict(fitter.params_) == params
    assert len(fitter.data) == len(cdnow.frequency)
    assert fitter.data["weights"].sum() == 2357
    mean_x = float(np.sum(cdnow.weight * cdnow.frequency) / cdnow.weight.sum())
    expected = len(cdnow.frequency) * (4.0 + mean_x * math.log(scale))
    assert fitter._negative_log_likelihood_ == pytest.approx(expected)
    alive = fitter.conditional_probability_alive(1, 1.7, 38.9)
    assert 0.0 < alive < 1.0


def test_beta_geo_fitter_is_left_as_lifetimes_fit_leaves_it(cdnow) -> None:
    fitted = lifetimes.BetaGeoFitter().fit(*cdnow[:3], weights=cdnow.weight)
    fitter = lt.beta_geo_fitter(
        lt.BetaGeoFitter, CDNOW_BGNBD, BG_NAMES, penalizer=0.0, time_scale=fitted._scale,
        mean_objective=fitted._negative_log_likelihood_, frequency=cdnow.frequency,
        recency=cdnow.recency, T=cdnow.T, weights=cdnow.weight,
    )  # fmt: skip
    assert fitter.penalizer_coef == 0.0
    assert fitter._negative_log_likelihood_ == fitted._negative_log_likelihood_
    assert fitter.data["weights"].sum() == 2357
    x, t_x, age = np.array([0, 2, 7]), np.array([0.0, 30.4, 35.0]), np.array([38.0, 38.9, 36.0])
    np.testing.assert_allclose(fitter.predict(13, x, t_x, age), fitted.predict(13, x, t_x, age))


def _lifetimes_users(tree: ast.AST) -> tuple[set[str], set[str]]:
    imports: set[str] = set()
    private: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports |= {a.name for a in node.names if a.name.split(".")[0] == "lifetimes"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lifetimes":
            imports.add(node.module or "")
        elif isinstance(node, ast.Attribute) and node.attr in LIFETIMES_INTERNALS:
            private.add(node.attr)
    return imports, private


def test_only_the_adapter_touches_lifetimes() -> None:
    offenders = {}
    for path in sorted(ML.glob("*.py")):
        imports, private = _lifetimes_users(ast.parse(path.read_text(encoding="utf-8")))
        if (imports or private) and path.name != "lifetimes_adapter.py":
            offenders[path.name] = sorted(imports | private)
    assert offenders == {}
    imports, private = _lifetimes_users(ast.parse((ML / "lifetimes_adapter.py").read_text()))
    assert imports and {"_negative_log_likelihood_", "_scale", "params_"} <= private
