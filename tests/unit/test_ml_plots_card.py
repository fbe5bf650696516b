"""Plots render to PNG bytes; the model card carries the required sections."""

from __future__ import annotations

import numpy as np
import pytest

from ml.backtest import backtest
from ml.errors import ModelError
from ml.histogram import summarize
from ml.model_card import render_model_card
from ml.plots import plot_decile_lift, plot_holdout_by_frequency, plot_p_alive_matrix
from ml.simulate import simulate_bgnbd
from ml.spend_model import fit_spend_model
from tests.btyd_world import bgnbd_world

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(99)
    n = 4_000
    sim = simulate_bgnbd(
        n, 0.3, 25.0, 0.7, 2.0, np.round(rng.uniform(60, 500, n)), seed=5, holdout=120
    )
    sim["recency"] = np.floor(sim["recency"])
    cutoffs, weekly = bgnbd_world(n, 5).cutoffs()
    result = backtest(cutoffs, weekly, ("bgnbd", "mbgnbd"), "week", parallel=False)
    return sim, result, fit_spend_model(sim)


def test_plots_are_png(data) -> None:
    _, result, _ = data
    for png in (
        plot_decile_lift(result),
        plot_decile_lift(result, "mbgnbd"),
        plot_p_alive_matrix(result.fitted["bgnbd"], 20, 60),
        plot_holdout_by_frequency(result),
    ):
        assert png.startswith(PNG_MAGIC)
        assert len(png) > 5_000
    with pytest.raises(ModelError, match="not in the backtest"):
        plot_decile_lift(result, "pareto_nbd")
    with pytest.raises(ModelError, match="at least 1"):
        plot_p_alive_matrix(result.fitted["bgnbd"], 0, 10)


def test_model_card_sections(data) -> None:
    sim, result, spend = data
    card = render_model_card(
        result,
        spend,
        as_of="2025-03-31",
        data_summary=summarize(sim, "week"),
        final_models=result.fitted,
        model_version="2025-03-31-abc",
        discount_rate_monthly=0.01,
    )
    assert card.startswith("# Model card")
    for text in (
        "2025-03-31-abc",
        "| As-of date | 2025-03-31 |",
        f"| Newest forecast origin (calibration end) | {result.cutoff} |",
        f"{result.holdout_days:g} days",
        "| Forecast origins | 2 |",
        "## Data sizes",
        f"{result.calibration.customers:,}",
        "Distinct (x, t_x, T) rows",
        "## Purchase model parameters",
        "BG/NBD",
        "MBG/NBD",
        "α = ",
        "## Backtest",
        "naive rate",
        "recency-frequency rule",
        "RMSE",
        "Tracking error %",
        "Brier",
        "## Selection",
        result.selection_reason,
        "| Default model | BG/NBD |",
        "| Gate | passed: beats every baseline |",
        "## Calibration (newest origin)",
        "| Decile | Customers | Predicted P(buy) | Observed share |",
        "## Spend model (Gamma-Gamma)",
        f"p = {spend.params['p']:.4g}",
        "Frequency–spend correlation",
    ):
        assert text in card, text
    with pytest.raises(ModelError, match="ISO date"):
        render_model_card(result, spend, as_of="31/03/2025")


def test_where_to_stop_plot() -> None:
    import pandas as pd

    from ml.plots import plot_where_to_stop

    groups = pd.DataFrame(
        {"priority_group": [2, 1, 3], "incremental_buyers": [5.0, 12.0, -1.0],
         "incremental_revenue": [900.0, 2400.0, -100.0], "cost": [10.0, 10.0, 10.0]}
    )  # fmt: skip
    png = plot_where_to_stop(groups, "win_back-20240701")
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
