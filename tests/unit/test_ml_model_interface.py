"""The purchase-model interface: registry, to_dict/from_dict, and artifacts of earlier runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from lifetimes.datasets import load_cdnow_summary

from ml import purchase_models as pm
from ml.errors import ModelError
from ml.histogram import histogram
from ml.spend_model import FittedSpendModel, load_spend_model

#: The model sections of a params.json written before the model classes existed
#: (CDNOW, weeks), byte for byte as `orchestration/defs/model.py` wrote them.
LEGACY_PARAMS_JSON = """{
  "purchase_models": {
    "bgnbd": {
      "name": "bgnbd",
      "params": {
        "r": 0.2425929282798223,
        "alpha": 4.413532265271833,
        "a": 0.7928859664406973,
        "b": 2.4257523826258964
      },
      "log_likelihood": -9582.425560567366,
      "penalizer": 0.0,
      "customers": 2357,
      "time_unit": "week"
    },
    "pareto_nbd": {
      "name": "pareto_nbd",
      "params": {
        "r": 0.5532755094635282,
        "alpha": 10.57761225672389,
        "s": 0.6062135712787006,
        "beta": 11.667911334419989
      },
      "log_likelihood": -9594.973929826867,
      "penalizer": 0.0,
      "customers": 2357,
      "time_unit": "week"
    },
    "mbgnbd": {
      "name": "mbgnbd",
      "params": {
        "r": 0.5248377255676715,
        "alpha": 6.182988479134003,
        "a": 0.8913562809311278,
        "b": 1.6140000256720817
      },
      "log_likelihood": -9582.13268489992,
      "penalizer": 0.0,
      "customers": 2357,
      "time_unit": "week"
    }
  },
  "spend_model": {
    "params": {
      "p": 6.248802496073244,
      "q": 3.744588460923386,
      "v": 15.44774806493587
    },
    "log_likelihood": -4055.9232435028666,
    "penalizer": 0.0,
    "customers": 946,
    "frequency_spend_corr": 0.1138839104860041
  }
}"""

#: Histories (x, t_x, T in weeks) and lifetimes 0.11.3's own predictions at the legacy
#: parameters: conditional_probability_alive and the conditional expected purchases in
#: the next 13 weeks.
HISTORIES = ([0, 1, 2, 5, 7], [0.0, 1.7, 30.4, 10.0, 35.0], [38.0, 38.9, 38.9, 50.0, 36.0])
LIFETIMES_ANSWERS = {
    "bgnbd": (
        [1.0, 0.21169639849053185, 0.7258130923807906, 0.007599014191507606, 0.8986124977678812],
        [0.07116862694286365, 0.07444605544480433, 0.45626095249922755, 0.008900943248278574,
         1.9069746566548078],
    ),
    "pareto_nbd": (
        [0.30022454463554116, 0.16736811193792056, 0.8678779492179334, 0.013789578238569723,
         0.9861361838183643],
        [0.041348936510422575, 0.06361189243890727, 0.5422173846791297, 0.015487867438272683,
         1.9284323298491495],
    ),
    "mbgnbd": (
        [0.3921254441302175, 0.17035461431497867, 0.7052309185692469, 0.00759750789930557,
         0.8897181932162456],
        [0.05741604577035351, 0.07005952401100224, 0.4758409391369962, 0.009022337167123556,
         1.8645269239802276],
    ),
}  # fmt: skip


def test_registry_maps_names_to_classes_in_preference_order() -> None:
    assert pm.MODEL_NAMES == ("bgnbd", "pareto_nbd", "mbgnbd")
    assert pm.MODELS == {
        "bgnbd": pm.BetaGeo,
        "pareto_nbd": pm.ParetoNBD,
        "mbgnbd": pm.ModifiedBetaGeo,
    }
    assert pm.MODEL_LABELS == {"bgnbd": "BG/NBD", "pareto_nbd": "Pareto/NBD", "mbgnbd": "MBG/NBD"}
    for name, cls in pm.MODELS.items():
        assert pm.model_class(name) is cls
        assert cls.name == name
        assert issubclass(cls, pm.PurchaseModel)
    assert pm.ParetoNBD.param_names == ("r", "alpha", "s", "beta")
    assert pm.BetaGeo.param_names == pm.ModifiedBetaGeo.param_names == ("r", "alpha", "a", "b")
    with pytest.raises(ModelError, match="unknown purchase model 'nbd'; choose from bgnbd, pareto"):
        pm.model_class("nbd")


def test_the_base_class_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        pm.PurchaseModel(params={}, time_unit="week")  # type: ignore[abstract]


@pytest.fixture(scope="module")
def fitted() -> dict[str, pm.PurchaseModel]:
    sample = load_cdnow_summary().iloc[:1500]
    return pm.fit_candidates(histogram(sample), pm.MODEL_NAMES, "week", parallel=False)


@pytest.mark.parametrize("name", pm.MODEL_NAMES)
def test_fit_returns_the_registered_class(fitted, name: str) -> None:
    model = fitted[name]
    assert type(model) is pm.MODELS[name]
    assert list(model.params) == list(model.param_names)
    assert model.customers == 1500
    assert math.isfinite(model.log_likelihood)


@pytest.mark.parametrize("name", pm.MODEL_NAMES)
def test_to_dict_from_dict_round_trip(fitted, name: str) -> None:
    model = fitted[name]
    doc = json.loads(json.dumps(model.to_dict()))
    assert list(doc) == ["name", "params", "log_likelihood", "penalizer", "customers", "time_unit"]
    for loader in (pm.PurchaseModel.from_dict, pm.MODELS[name].from_dict):
        loaded = loader(doc)
        assert type(loaded) is type(model)
        assert loaded == model  # params and diagnostics, not the fitter
        assert loaded.to_dict() == doc
        x, t_x, age = (np.asarray(h, dtype=float) for h in HISTORIES)
        np.testing.assert_array_equal(loaded.p_alive(x, t_x, age), model.p_alive(x, t_x, age))
        np.testing.assert_array_equal(
            loaded.p_purchase(13.0, x, t_x, age), model.p_purchase(13.0, x, t_x, age)
        )


def test_from_dict_checks_the_document() -> None:
    legacy = json.loads(LEGACY_PARAMS_JSON)["purchase_models"]
    with pytest.raises(ModelError, match="the saved model is BG/NBD, not Pareto/NBD"):
        pm.ParetoNBD.from_dict(legacy["bgnbd"])
    with pytest.raises(ModelError, match="unknown purchase model 'nbd'"):
        pm.PurchaseModel.from_dict({**legacy["bgnbd"], "name": "nbd"})
    with pytest.raises(ModelError, match="time unit 'None' is not supported"):
        pm.PurchaseModel.from_dict({k: v for k, v in legacy["bgnbd"].items() if k != "time_unit"})
    with pytest.raises(ModelError, match="lack r, alpha, a, b"):
        pm.BetaGeo.from_dict({"time_unit": "week"})
    unknown = {**legacy["mbgnbd"], "log_likelihood": None, "penalizer": None}
    loaded = pm.PurchaseModel.from_dict(unknown)
    assert math.isnan(loaded.log_likelihood) and math.isnan(loaded.penalizer)
    assert loaded.to_dict() == unknown


def test_params_json_written_before_the_refactor_loads_and_predicts_the_same() -> None:
    doc = json.loads(LEGACY_PARAMS_JSON)
    x, t_x, age = (np.asarray(h, dtype=float) for h in HISTORIES)
    for name, saved in doc["purchase_models"].items():
        model = pm.PurchaseModel.from_dict(saved)
        assert type(model) is pm.MODELS[name]
        assert model.customers == 2357 and model.time_unit == "week"
        alive, expected = LIFETIMES_ANSWERS[name]
        np.testing.assert_allclose(model.p_alive(x, t_x, age), alive, rtol=1e-9)
        np.testing.assert_allclose(model.expected_purchases(13.0, x, t_x, age), expected, rtol=1e-9)
    spend = FittedSpendModel.from_dict(doc["spend_model"])
    assert spend.population_mean == pytest.approx(35.171002, rel=1e-7)  # p v / (q - 1)
    assert spend.fitter.conditional_expected_average_profit(0, 0.0) == pytest.approx(35.171002)
    # writing the loaded models again gives the same file, byte for byte
    again = {
        "purchase_models": {
            k: pm.PurchaseModel.from_dict(v).to_dict() for k, v in doc["purchase_models"].items()
        },
        "spend_model": spend.to_dict(),
    }
    assert json.dumps(again, indent=2) == LEGACY_PARAMS_JSON


def test_runs_table_params_load_for_scoring() -> None:
    """model.clv_model_runs stores params with sorted keys; customer_scores loads them."""
    doc = json.loads(LEGACY_PARAMS_JSON)
    for name, saved in doc["purchase_models"].items():
        stored = json.loads(json.dumps(saved["params"], sort_keys=True))
        model = pm.load_purchase_model(name, stored, "week")
        assert model.params == saved["params"]
        assert list(model.params) == list(saved["params"])  # lifetimes' order again
    stored = json.loads(json.dumps(doc["spend_model"]["params"], sort_keys=True))
    assert load_spend_model(stored).params == doc["spend_model"]["params"]


@pytest.mark.parametrize("name", pm.MODEL_NAMES)
def test_construction_validates_params_and_unit(name: str) -> None:
    cls = pm.MODELS[name]
    good = dict.fromkeys(cls.param_names, 1.5)
    assert cls(params=good, time_unit="day").fitter is not None
    with pytest.raises(ModelError, match=rf"saved {cls.label} parameter\(s\) alpha must be finite"):
        cls(params={**good, "alpha": math.inf}, time_unit="week")
    with pytest.raises(ModelError, match="time unit 'month'"):
        cls(params=good, time_unit="month")
