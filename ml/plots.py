"""Diagnostic charts rendered with matplotlib's Agg backend and returned as PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas directly, so
no global pyplot state is touched and nothing is written to disk.
"""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ml.backtest import BASELINE, BacktestResult, label
from ml.errors import ModelError
from ml.purchase_models import PurchaseModel

_DPI = 110


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _label(name: str) -> str:
    return label(name)


def plot_decile_lift(result: BacktestResult, model: str | None = None) -> bytes:
    """Bar chart of each decile's share of holdout purchases, model vs baseline.

    Parameters
    ----------
    result : BacktestResult
        Backtest outcome.
    model : str, optional
        Model to show; defaults to the selected model.

    Returns
    -------
    bytes
        PNG image.

    Raises
    ------
    ModelError
        If ``model`` was not part of the backtest.
    """
    name = model or result.selected
    if name not in result.deciles:
        raise ModelError(
            f"model {name!r} is not in the backtest; choose one of "
            f"{', '.join(n for n in result.deciles if n != BASELINE)}"
        )
    model_table = result.deciles[name]
    base_table = result.deciles[BASELINE]
    deciles = model_table["decile"].to_numpy()
    width = 0.4
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    ax.bar(deciles - width / 2, model_table["share_of_purchases"], width, label=_label(name))
    ax.bar(
        deciles + width / 2,
        base_table["share_of_purchases"],
        width,
        label=_label(BASELINE),
        color="0.6",
    )
    ax.axhline(0.1, color="k", linestyle=":", linewidth=1, label="Random (10%)")
    ax.set_xticks(deciles)
    ax.set_xlabel("Decile of predicted holdout purchases (1 = highest)")
    ax.set_ylabel("Share of holdout purchases")
    ax.set_title(f"Decile lift over a {result.holdout_days:g}-day holdout")
    ax.legend()
    return _png(fig)


def plot_p_alive_matrix(model: PurchaseModel, max_frequency: int, max_recency: int) -> bytes:
    """Heatmap of P(alive) by frequency and recency for a customer of age ``max_recency``.

    Parameters
    ----------
    model : PurchaseModel
        Fitted or loaded purchase model.
    max_frequency : int
        Largest repeat-purchase count on the x axis.
    max_recency : int
        Largest recency on the y axis, in the model time unit; also the customers' age T.

    Returns
    -------
    bytes
        PNG image. Cells with frequency 0 and recency > 0 are impossible and left blank.

    Raises
    ------
    ModelError
        If the bounds are not positive.
    """
    if max_frequency < 1 or max_recency < 1:
        raise ModelError("max_frequency and max_recency must be at least 1 for the P(alive) plot")
    freq = np.arange(max_frequency + 1, dtype=float)
    rec = np.arange(max_recency + 1, dtype=float)
    grid_x, grid_t = np.meshgrid(freq, rec)
    matrix = model.p_alive(grid_x, grid_t, float(max_recency))
    matrix = np.where((grid_x == 0) & (grid_t > 0), np.nan, matrix)
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.add_subplot()
    image = ax.imshow(
        matrix,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label="P(alive)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Frequency (repeat purchases)")
    ax.set_ylabel(f"Recency ({model.time_unit}s since first purchase)")
    ax.set_title(
        f"{model.label}: probability a customer is still active\n"
        f"(customer age T = {max_recency} {model.time_unit}s)"
    )
    return _png(fig)


def plot_holdout_by_frequency(result: BacktestResult) -> bytes:
    """Mean predicted vs actual holdout purchases by calibration-period frequency.

    Parameters
    ----------
    result : BacktestResult
        Backtest outcome.

    Returns
    -------
    bytes
        PNG image with one line for the actual mean, each model and the baseline.
    """
    table = result.by_frequency
    pos = np.arange(len(table))
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    ax.plot(pos, table["actual"], color="k", marker="o", linewidth=2, label="Actual")
    for name in [*result.metrics, *(b.name for b in result.baselines)]:
        style = "--" if name in {b.name for b in result.baselines} else "-"
        ax.plot(pos, table[name], linestyle=style, marker=".", label=_label(name))
    ax.set_xticks(pos, table["label"])
    ax.set_xlabel("Repeat purchases in the calibration period")
    ax.set_ylabel("Mean purchases in the holdout")
    ax.set_title(f"Predicted vs actual purchases over a {result.holdout_days:g}-day holdout")
    ax.legend()
    return _png(fig)


def plot_tracking(series: pd.DataFrame, calibration_end: date, label: str) -> bytes:
    """Weekly repeat purchases, actual vs predicted, with the calibration end marked."""
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    ax.plot(series["week_start"], series["actual"], label="actual", color="#333333")
    ax.plot(series["week_start"], series["predicted"], label=f"{label} (predicted)", ls="--")
    if "days" in series and len(series) and series["days"].iloc[-1] < 7:
        ax.annotate(
            f"last week: {int(series['days'].iloc[-1])} of 7 days",
            (series["week_start"].iloc[-1], series["actual"].iloc[-1]),
            fontsize=8, xytext=(-60, 12), textcoords="offset points",
        )  # fmt: skip
    ax.axvline(calibration_end, color="grey", ls=":", label="calibration end")
    ax.set_ylabel("repeat purchases per week")
    ax.set_title("Weekly repeat purchases of the calibration cohort")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return _png(fig)


def plot_where_to_stop(groups: pd.DataFrame, campaign: str) -> bytes:
    """Cumulative incremental buyers and ROI over a campaign's priority groups.

    Parameters
    ----------
    groups : pandas.DataFrame
        One row per priority group (1 = contacted first): ``priority_group``,
        ``incremental_buyers``, ``incremental_revenue`` and ``cost`` (messages and coupon
        subsidy; all channels).
    campaign : str
        Title.

    Returns
    -------
    bytes
        PNG: bars of cumulative incremental buyers, a line of the cumulative ROI; the
        groups after which ROI turns down are where to stop next time.
    """
    g = groups.sort_values("priority_group")
    cum_buyers = g["incremental_buyers"].fillna(0).cumsum()
    cost = g["cost"].fillna(0).cumsum()
    roi = (g["incremental_revenue"].fillna(0).cumsum() - cost) / cost.where(cost > 0)
    fig = Figure(figsize=(7.5, 4.0))
    ax = fig.add_subplot()
    pos = np.arange(len(g))
    ax.bar(pos, cum_buyers, color="#4c78a8", label="cumulative incremental buyers")
    ax.set_xticks(pos, [str(int(v)) for v in g["priority_group"]])
    ax.set_xlabel("Priority groups contacted (1 = first)")
    ax.set_ylabel("Incremental buyers (cumulative)")
    ax2 = ax.twinx()
    ax2.plot(pos, roi, color="#e45756", marker="o", label="cumulative ROI")
    ax2.set_ylabel("ROI (incremental revenue - cost) / cost")
    ax.set_title(f"Where to stop: {campaign}")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left")
    return _png(fig)
