"""Backtest on simulated BG/NBD data with a known holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.backtest import (
    BASELINE,
    BacktestMetrics,
    backtest,
    baseline_rate,
    beats_baseline,
    decile_table,
    select_model,
)
from ml.errors import ModelError
from ml.simulate import simulate_bgnbd

HOLDOUT_DAYS = 182


@pytest.fixture(scope="module")
def calibration() -> pd.DataFrame:
    rng = np.random.default_rng(17)
    n = 12_000
    age = np.round(rng.uniform(30, 560, n))
    sim = simulate_bgnbd(n, 0.25, 28.0, 0.8, 2.5, age, seed=21, holdout=HOLDOUT_DAYS)
    sim["recency"] = np.floor(sim["recency"])  # whole days, as computed in SQL
    return sim.drop(columns=["lambda", "p", "alive"])


@pytest.fixture(scope="module")
def result(calibration: pd.DataFrame):
    return backtest(
        calibration, HOLDOUT_DAYS, ("bgnbd", "pareto_nbd", "mbgnbd"), "week", parallel=False
    )


def test_models_beat_the_naive_baseline(result) -> None:
    assert set(result.metrics) == {"bgnbd", "pareto_nbd", "mbgnbd"}
    assert beats_baseline(result)
    for metrics in result.metrics.values():
        assert metrics.rmse < result.baseline.rmse
        assert abs(metrics.aggregate_error_pct) < 10.0
    assert not result.failures


def test_selection_is_lowest_rmse(result) -> None:
    best = min(result.metrics.values(), key=lambda m: m.rmse)
    assert result.selected == best.name
    assert "lowest per-customer RMSE" in result.selection_reason
    assert "beats the naive baseline" in result.selection_reason
    table = result.metrics_table()
    assert table["selected"].sum() == 1
    assert table["name"].tolist() == ["bgnbd", "pareto_nbd", "mbgnbd", BASELINE]


def test_metric_definitions(result, calibration: pd.DataFrame) -> None:
    actual = calibration["holdout_frequency"].to_numpy()
    for name, metrics in [*result.metrics.items(), (BASELINE, result.baseline)]:
        predicted = result.predictions[name].to_numpy()
        assert metrics.actual_total == actual.sum()
        assert metrics.predicted_total == pytest.approx(predicted.sum())
        assert metrics.rmse == pytest.approx(np.sqrt(np.mean((predicted - actual) ** 2)))
        assert metrics.mae == pytest.approx(np.mean(np.abs(predicted - actual)))
        assert metrics.correlation == pytest.approx(np.corrcoef(predicted, actual)[0, 1])
        assert 0.0 <= metrics.brier <= 1.0
    expected_baseline = calibration["frequency"] / calibration["T"] * HOLDOUT_DAYS
    np.testing.assert_allclose(result.predictions[BASELINE], expected_baseline)


def test_decile_tables(result) -> None:
    for name, table in result.deciles.items():
        assert len(table) == 10, name
        assert table["share_of_purchases"].sum() == pytest.approx(1.0)
        assert table["customers"].sum() == result.calibration.customers
        assert table["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    top = result.deciles[result.selected]["share_of_purchases"].iloc[0]
    assert top > 0.4
    assert result.metrics[result.selected].top_decile_share == pytest.approx(top)


def test_by_frequency_table(result) -> None:
    table = result.by_frequency
    assert table["customers"].sum() == result.calibration.customers
    assert table["label"].iloc[-1] == "7+"
    assert {"actual", "bgnbd", "pareto_nbd", "mbgnbd", BASELINE} <= set(table.columns)


def test_decile_ties_break_by_member_id() -> None:
    ids = np.array([f"m{i:02d}" for i in range(20)])[::-1]
    predicted = np.zeros(20)
    actual = np.arange(20, dtype=float)
    table = decile_table(ids, predicted, actual)
    # With all predictions tied, decile 1 holds m00, m01 (actual 19 and 18).
    assert table["actual"].iloc[0] == 19 + 18
    assert table["customers"].tolist() == [2] * 10


def test_tie_goes_to_preference_order() -> None:
    def metrics(name: str, rmse: float) -> BacktestMetrics:
        return BacktestMetrics(name, 1.0, 1, 0.0, 0.1, rmse, 0.5, 0.1, 0.3)

    chosen, _ = select_model(
        {"mbgnbd": metrics("mbgnbd", 0.5), "pareto_nbd": metrics("pareto_nbd", 0.5)},
        metrics(BASELINE, 0.9),
    )
    assert chosen == "pareto_nbd"
    chosen, reason = select_model({"mbgnbd": metrics("mbgnbd", 1.0)}, metrics(BASELINE, 0.9))
    assert chosen == "mbgnbd"
    assert "does NOT beat" in reason


def test_baseline_rate_handles_zero_age() -> None:
    rates = baseline_rate(np.array([0, 2, 3]), np.array([0.0, 10.0, 0.0]))
    np.testing.assert_allclose(rates, [0.0, 0.2, 0.0])


def test_backtest_input_errors(calibration: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match="holdout_frequency"):
        backtest(calibration.drop(columns="holdout_frequency"), HOLDOUT_DAYS, ["bgnbd"])
    with pytest.raises(ModelError, match="holdout_days"):
        backtest(calibration, 0, ["bgnbd"])
    degenerate = pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(50)],
            "frequency": 0,
            "recency": 0.0,
            "T": 70.0,
            "holdout_frequency": 0,
        }
    )
    with pytest.raises(ModelError, match="no purchase model converged"):
        backtest(degenerate, HOLDOUT_DAYS, ["bgnbd"], parallel=False)
