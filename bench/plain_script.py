"""The plain CLV script a team would otherwise write (the benchmark's baseline).

pandas reads the orders, ``lifetimes.utils.summary_data_from_transaction_data`` builds
``(frequency, recency, T, monetary_value)`` per customer, one ``BetaGeoFitter`` and one
``GammaGammaFitter`` are fitted on every customer (no histogram weighting), and the scores
go to a CSV. Only paid orders count as purchases; same-day orders merge into one
occasion (``freq="D"``); recency and T are converted to weeks like the pipeline's default.

The last stdout line is ``PLAIN_RESULT {json}`` with the phase timings, row counts and the
fitted parameters, for ``bench/run_bench.py``.

Usage::

    .venv/bin/python bench/plain_script.py --landing data/landing --as-of 2026-06-30 \
        --out data/bench/plain_scores.csv
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

RESULT_PREFIX = "PLAIN_RESULT "
DAYS_PER_WEEK = 7.0


class _Timer:
    """Collects wall-clock seconds per named phase."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = now - self._last
        self._last = now


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise TimeoutError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", type=Path, required=True, help="folder with orders.csv")
    p.add_argument("--as-of", required=True, help="observation period end (YYYY-MM-DD)")
    p.add_argument("--out", type=Path, required=True, help="scores CSV to write")
    p.add_argument("--horizon-days", type=float, default=90.0, help="purchase forecast horizon")
    p.add_argument("--clv-months", type=int, default=12, help="CLV horizon in months")
    p.add_argument("--discount-rate", type=float, default=0.01, help="monthly discount rate")
    p.add_argument("--timeout", type=int, default=1800, help="give up after this many seconds")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read, summarise, fit, score, write; return timings, counts and parameters."""
    timer = _Timer()
    orders = pd.read_csv(
        args.landing / "orders.csv",
        usecols=["member_id", "ordered_at", "amount", "status"],
        parse_dates=["ordered_at"],
    )
    n_orders = len(orders)
    paid = orders.loc[orders["status"] == "paid", ["member_id", "ordered_at", "amount"]]
    del orders
    timer.lap("read")

    rfm = summary_data_from_transaction_data(
        paid,
        "member_id",
        "ordered_at",
        monetary_value_col="amount",
        observation_period_end=args.as_of,
        freq="D",
    )
    rfm["recency"] = rfm["recency"] / DAYS_PER_WEEK
    rfm["T"] = rfm["T"] / DAYS_PER_WEEK
    timer.lap("features")

    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(rfm["frequency"], rfm["recency"], rfm["T"])
    timer.lap("fit_bgnbd")

    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeat["frequency"], repeat["monetary_value"])
    timer.lap("fit_gamma_gamma")

    horizon = args.horizon_days / DAYS_PER_WEEK
    f, r, t = rfm["frequency"], rfm["recency"], rfm["T"]
    rfm["expected_purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        horizon, f, r, t
    )
    rfm["p_alive"] = bgf.conditional_probability_alive(f, r, t)
    rfm["expected_avg_value"] = ggf.conditional_expected_average_profit(f, rfm["monetary_value"])
    rfm["clv"] = ggf.customer_lifetime_value(
        bgf,
        f,
        r,
        t,
        rfm["monetary_value"],
        time=args.clv_months,
        discount_rate=args.discount_rate,
        freq="W",
    )
    timer.lap("score")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rfm.to_csv(args.out)
    timer.lap("write")

    return {
        "success": True,
        "orders": n_orders,
        "paid_orders": len(paid),
        "customers": len(rfm),
        "repeat_customers": len(repeat),
        "phases": timer.phases,
        "bgnbd": {k: float(v) for k, v in bgf.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in ggf.params_.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the plain script under a timeout and print the ``PLAIN_RESULT`` line."""
    args = parse_args(argv)
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.timeout)
    try:
        result = run(args)
    except TimeoutError:
        result = {
            "success": False,
            "timed_out": True,
            "failure": f"timed out after {args.timeout} s",
        }
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        result = {"success": False, "failure": f"{type(exc).__name__}: {exc}"}
    finally:
        signal.alarm(0)
    result["wall_seconds"] = time.perf_counter() - started
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0 if result["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
