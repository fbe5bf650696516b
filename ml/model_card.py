"""Render a Markdown model card describing data, fits, backtest and selection."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from ml.backtest import BacktestMetrics, BacktestResult, beats_baseline, label
from ml.errors import ModelError
from ml.histogram import DataSummary
from ml.purchase_models import PurchaseModel
from ml.spend_model import FittedSpendModel

_GREEK = {"alpha": "α", "beta": "β"}


def _num(value: float, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}g}" if abs(value) < 1e5 else f"{value:,.0f}"


def markdown_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines from text cells (``|`` in a cell is escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def _params(params: Mapping[str, float]) -> str:
    return ", ".join(f"{_GREEK.get(k, k)} = {_num(v)}" for k, v in params.items())


def _model_rows(models: Mapping[str, PurchaseModel], fitted_on: str) -> list[list[str]]:
    return [
        [
            m.label,
            fitted_on,
            _params(m.params),
            _num(m.log_likelihood, 8),
            _num(m.penalizer),
            f"{m.customers:,}",
        ]
        for m in models.values()
    ]


def _metric_row(m: BacktestMetrics, selected: bool) -> list[str]:
    name = f"**{label(m.name)}** (selected)" if selected else label(m.name)
    return [
        name,
        _num(m.predicted_total, 6),
        f"{m.actual_total:,.0f}",
        _num(m.aggregate_error_pct, 3),
        _num(m.mae),
        _num(m.rmse),
        _num(m.tracking_error_pct, 3),
        _num(m.loss),
        _num(m.correlation, 3),
        _num(m.brier),
        _num(m.top_decile_share, 3),
    ]


def _summary_rows(label: str, s: DataSummary) -> list[str]:
    return [label, f"{s.customers:,}", f"{s.repeat_customers:,}", f"{s.histogram_rows:,}"]


def render_model_card(
    result: BacktestResult,
    spend_model: FittedSpendModel,
    *,
    as_of: date | str,
    data_summary: DataSummary | None = None,
    final_models: Mapping[str, PurchaseModel] | None = None,
    model_version: str | None = None,
    discount_rate_monthly: float | None = None,
    backtest_sample: str | None = None,
) -> str:
    """Render the model card as Markdown.

    Parameters
    ----------
    result : BacktestResult
        Backtest on the calibration/holdout split.
    spend_model : FittedSpendModel
        Gamma-Gamma model used for order values.
    as_of : datetime.date or str
        As-of date of the scoring data (ISO string accepted). The calibration period
        ends ``holdout_days`` earlier.
    data_summary : DataSummary, optional
        Sizes of the full (scoring) data set; see :func:`ml.histogram.summarize`.
    final_models : mapping of str to PurchaseModel, optional
        Models refitted on the full data, listed alongside the calibration fits.
    model_version : str, optional
        Version label shown in the title.
    discount_rate_monthly : float, optional
        CLV discount rate, shown if given.
    backtest_sample : str, optional
        Which customers the backtest read (every one, or a hash sample), shown if given.

    Returns
    -------
    str
        Markdown text.

    Raises
    ------
    ModelError
        If ``as_of`` is not an ISO date.
    """
    if isinstance(as_of, str):
        try:
            as_of = date.fromisoformat(as_of)
        except ValueError:
            raise ModelError(f"as_of={as_of!r} is not an ISO date (YYYY-MM-DD)") from None
    calibration_end = result.cutoff or (as_of - timedelta(days=round(result.holdout_days)))

    title = "# Model card: purchase (CLV/churn) and spend models"
    lines = [title + (f" — {model_version}" if model_version else ""), ""]

    lines += ["## Data window", ""]
    lines += markdown_lines(
        ["Item", "Value"],
        [
            ["As-of date", as_of.isoformat()],
            ["Newest forecast origin (calibration end)", str(calibration_end)],
            ["Forecast origins", str(result.decision.origins)],
            ["Holdout window", f"{result.holdout_days:g} days (a quarter of the history, capped)"],
            ["Model time unit", result.time_unit],
        ]
        + (
            [["Monthly CLV discount rate", f"{discount_rate_monthly:.2%}"]]
            if discount_rate_monthly is not None
            else []
        ),
    )

    lines += ["", "## Data sizes", ""]
    size_rows = []
    if data_summary is not None:
        size_rows.append(_summary_rows("Full data (as of as-of date)", data_summary))
    size_rows.append(_summary_rows("Calibration data", result.calibration))
    lines += markdown_lines(
        ["Data set", "Customers", "Repeat customers", "Distinct (x, t_x, T) rows"], size_rows
    )
    if backtest_sample:
        lines += ["", f"The backtest read {backtest_sample}."]

    lines += ["", "## Purchase model parameters", ""]
    lines.append(
        f"Parameters are in {result.time_unit}s (lifetimes' names). Log-likelihood is the "
        "weight-summed total without the penalty."
    )
    lines.append("")
    rows = _model_rows(result.fitted, "calibration")
    if final_models:
        rows += _model_rows(final_models, "full data")
    lines += markdown_lines(
        ["Model", "Fitted on", "Parameters", "Log-likelihood", "Penalizer", "Customers"], rows
    )
    if result.failures:
        lines += ["", "Candidates that did not converge:", ""]
        lines += [f"- **{name}**: {msg}" for name, msg in result.failures.items()]

    lines += ["", f"## Backtest ({result.holdout_days:g}-day holdout)", ""]
    lines.append(
        f"Each candidate is fitted before each forecast origin exactly as it is published "
        f"(same penalizer rule) and predicts each customer's purchases in the "
        f"{result.holdout_days:g} days after it; figures are means over "
        f"{result.decision.origins} origin(s) (totals summed). Loss = RMSE / mean actual + "
        "|aggregate error| + weekly tracking error. Baselines: the naive rate "
        "(frequency / T, no dropout) and the recency-frequency rule (what customers with "
        "the same repeat purchases and days since their last purchase bought in the "
        "holdout before)."
    )
    lines.append("")
    metric_rows = [_metric_row(m, m.name == result.selected) for m in result.metrics.values()]
    metric_rows += [_metric_row(b, False) for b in result.baselines]
    lines += markdown_lines(
        [
            "Predictor",
            "Predicted total",
            "Actual total",
            "Aggregate error %",
            "MAE",
            "RMSE",
            "Tracking error %",
            "Loss",
            "Correlation",
            "Brier",
            "Top-decile share",
        ],
        metric_rows,
    )

    d = result.decision
    lines += ["", "## Selection", ""]
    lines.append(f"Selected: **{label(result.selected)}**. {result.selection_reason}.")
    lines.append("")
    lines += markdown_lines(
        ["Item", "Value"],
        [
            ["Default model", label(d.default)],
            ["Best challenger", label(d.challenger) if d.challenger else "—"],
            ["Margin (default loss − challenger loss)", _num(d.margin)],
            ["Confidence (challenger better in bootstrap resamples)", _num(d.confidence, 3)],
            [
                "Gate",
                "passed: beats every baseline"
                if beats_baseline(result)
                else "FAILED: worse than a baseline, not published",
            ],
        ],
    )
    if not result.calibration_table.empty:
        sel = result.metrics[result.selected]
        lines += ["", "## Calibration (newest origin)", ""]
        lines.append(
            f"Customers in deciles of the selected model's P(purchase in "
            f"{result.holdout_days:g} days), predicted vs observed. Aggregate bias of "
            f"expected purchases: {_num(sel.aggregate_error_pct, 3)}% (mean over origins); "
            "no correction is applied."
        )
        lines.append("")
        lines += markdown_lines(
            [
                "Decile",
                "Customers",
                "Predicted P(buy)",
                "Observed share",
                "Predicted purchases",
                "Actual purchases",
            ],
            [
                [
                    str(r.decile),
                    f"{r.customers:,}",
                    _num(r.predicted_p, 3),
                    _num(r.observed_p, 3),
                    _num(r.predicted_purchases, 3),
                    _num(r.actual_purchases, 3),
                ]
                for r in result.calibration_table.itertuples()
            ],
        )
    lines.append("")

    sp = spend_model
    corr = sp.frequency_spend_corr
    if math.isfinite(corr) and abs(corr) > 0.3:
        verdict = "the independence assumption of Gamma-Gamma is doubtful"
    elif math.isfinite(corr):
        verdict = "consistent with Gamma-Gamma's independence assumption"
    else:
        verdict = "not computable"
    lines += ["", "## Spend model (Gamma-Gamma)", ""]
    lines += markdown_lines(
        ["Item", "Value"],
        [
            ["Parameters", _params(sp.params)],
            ["Population mean order value p·v/(q−1)", _num(sp.population_mean, 6)],
            ["Log-likelihood", _num(sp.log_likelihood, 8)],
            ["Penalizer", _num(sp.penalizer)],
            ["Repeat customers fitted", f"{sp.customers:,}"],
            ["Frequency–spend correlation (Pearson)", f"{_num(corr, 3)} ({verdict})"],
        ],
    )
    lines.append("")
    return "\n".join(lines)
