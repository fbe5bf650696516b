"""The penalizer ladder and the fitted-model record shared by purchase and spend models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.errors import ModelError
from ml.fitting import RejectedFit, climb_ladder, json_float, parameter_problem

FAILURE = "did not converge with any penalizer ({tried}); last error: {last_error}"


def test_first_usable_rung_wins_and_later_rungs_are_not_tried() -> None:
    seen: list[float] = []

    def attempt(penalizer: float) -> str:
        seen.append(penalizer)
        if penalizer == 0.0:
            raise RejectedFit("degenerate")
        if penalizer == 0.001:
            raise np.linalg.LinAlgError("singular")
        return f"fit at {penalizer}"

    assert climb_ladder(attempt, (0, 0.001, 0.01, 0.1), FAILURE) == "fit at 0.01"
    assert seen == [0.0, 0.001, 0.01]
    assert all(type(p) is float for p in seen)


def test_failure_names_every_rung_and_the_last_error() -> None:
    def attempt(penalizer: float) -> None:
        if penalizer < 0.1:
            raise FloatingPointError(" overflow ")
        raise RejectedFit(f"q <= 1 at {penalizer}")

    with pytest.raises(ModelError) as info:
        climb_ladder(attempt, (0.0, 0.01, 0.1), FAILURE)
    assert str(info.value) == (
        "did not converge with any penalizer (0, 0.01, 0.1); last error: q <= 1 at 0.1"
    )
    with pytest.raises(ModelError, match="last error: FloatingPointError: overflow$"):
        climb_ladder(attempt, (0.0,), FAILURE)


def test_bugs_propagate_and_an_empty_ladder_is_refused() -> None:
    def attempt(penalizer: float) -> None:
        raise KeyError("a bug, not non-convergence")

    with pytest.raises(KeyError):
        climb_ladder(attempt, (0.0, 0.1), FAILURE)
    with pytest.raises(ModelError, match="penalizer ladder is empty"):
        climb_ladder(attempt, (), FAILURE)


def test_parameter_problem_and_json_float() -> None:
    assert parameter_problem({"r": 0.2, "alpha": 4.0}) is None
    assert parameter_problem({"r": 0.0, "alpha": 4.0}) == (
        "non-finite or non-positive parameters {'r': 0.0, 'alpha': 4.0}"
    )
    assert parameter_problem({"r": math.nan}) is not None
    assert json_float(1.5) == 1.5
    assert json_float(math.nan) is None and json_float(-math.inf) is None
