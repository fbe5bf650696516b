"""The portal's charts as PNG bytes (matplotlib's Agg canvas, no pyplot state), in the
style of ml.plots; the where-to-stop chart is ml.plots.plot_where_to_stop itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ml.plots import _png, plot_where_to_stop
from orchestration.portal.data import GroupRow

__all__ = ["group_chart", "message_chart", "where_to_stop_chart"]


def group_chart(rows: list[GroupRow], title: str) -> bytes:
    """Forecast buyers per priority group with their 90% intervals (error bars), and the
    cumulative forecast on a second axis; without a forecast, the sends per group."""
    pos = np.arange(len(rows))
    labels = [str(r.priority_group) for r in rows]
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.add_subplot()
    if rows and all(r.buyers is not None for r in rows):
        buyers = np.array([r.buyers for r in rows], dtype=float)
        low = np.array([r.buyers_low if r.buyers_low is not None else r.buyers for r in rows])
        high = np.array([r.buyers_high if r.buyers_high is not None else r.buyers for r in rows])
        err = np.vstack([np.clip(buyers - low, 0, None), np.clip(high - buyers, 0, None)])
        ax.bar(pos, buyers, color="#4c78a8", label="forecast buyers (90% interval)")
        ax.errorbar(pos, buyers, yerr=err, fmt="none", ecolor="#222222", capsize=3)
        ax.set_ylabel("Forecast buyers")
        cumulative = [r.cumulative_buyers for r in rows]
        if all(c is not None for c in cumulative):
            ax2 = ax.twinx()
            ax2.plot(pos, cumulative, color="#e45756", marker="o", label="cumulative buyers")
            ax2.set_ylabel("Cumulative forecast buyers")
            ax2.set_ylim(bottom=0)
            handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        else:
            handles = ax.get_legend_handles_labels()[0]
        # below the plot: bars fall and the cumulative line rises, so no corner is free
        ax.legend(
            handles,
            [h.get_label() for h in handles],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            ncol=2,
            frameon=False,
        )
    else:
        sends = [r.sends or 0 for r in rows]
        ax.bar(pos, sends, color="#9ecae9")
        ax.set_ylabel("Members to contact (no forecast: model skipped)")
    ax.set_xticks(pos, labels)
    ax.set_xlabel("Priority group (1 = contact first)")
    ax.set_title(title)
    return _png(fig)


def where_to_stop_chart(groups: pd.DataFrame) -> bytes:
    """ml.plots.plot_where_to_stop for one campaign's priority groups."""
    return plot_where_to_stop(groups, str(groups["campaign_id"].iloc[0]))


def message_chart(message: str) -> bytes:
    """A small image saying why there is no chart (an <img> must get an image)."""
    fig = Figure(figsize=(6.0, 1.2))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555555")
    return _png(fig)
