"""Materialize the real asset graph on the hand-checked fixture and check the marts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from tests.conftest import point_env_at

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small"
AS_OF = "2024-06-30"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(FIXTURE, root / "landing")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, AS_OF)
        from orchestration.runner import run_pipeline

        # the fixture is far too small for the CLV model: RFM and lifecycle only
        outcome = run_pipeline(groups=["ingest", "transform"])
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield outcome, con, root
    con.close()


def q(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


def test_run_succeeds_and_summary_names_outputs(run) -> None:
    outcome, _, root = run
    assert outcome.success, outcome.failure
    assert "customers with a purchase 8" in outcome.summary
    assert str(root / "warehouse.duckdb") in outcome.summary


def test_lifecycle_stage_of_every_member(run) -> None:
    _, con, _ = run
    stages = dict(
        con.sql("select member_id, lifecycle_stage from marts.customer_lifecycle").fetchall()
    )
    assert stages == {
        "M01": "prospect",  # member without orders
        "M02": "new",  # one purchase 10 days ago (its cancelled order does not count)
        "M03": "churned",  # 532 days since the only purchase
        "M04": "silent",  # 150 days since the last purchase
        "M05": "reactivated",  # back after a 508-day gap
        "M06": "mature",  # 6 occasions, steady (refund after as-of... ignored)
        "M07": "declining",  # 3 purchases in the previous window, 1 in the recent one
        "M08": "rising",  # two occasions (two same-day orders merged)
        "M09": "new",  # only in the orders file: derived member
        "M10": "prospect",  # only ordered after the as-of date
    }  # M11 registered after the as-of date: not a member yet


def test_features_equal_lifetimes_definitions(run) -> None:
    _, con, _ = run
    ours = q(
        con,
        'select member_id, frequency, recency, "T", monetary_value from marts.customer_features',
    )
    paid = q(
        con,
        "select member_id, order_date, cast(amount as double) as amount "
        "from staging.stg_shop__orders where is_purchase",
    )
    paid["order_date"] = pd.to_datetime(paid["order_date"])
    oracle = summary_data_from_transaction_data(
        paid,
        "member_id",
        "order_date",
        monetary_value_col="amount",
        observation_period_end=AS_OF,
        freq="D",
    )
    merged = ours.set_index("member_id").sort_index()
    oracle = oracle.sort_index()
    assert list(merged.index) == list(oracle.index)
    for col in ("frequency", "recency", "T", "monetary_value"):
        assert merged[col].astype(float).round(6).tolist() == oracle[col].round(6).tolist(), col
    # hand-checked: M08 has two orders on 2024-06-01 (50 + 30) merged into one occasion of 80
    m08 = merged.loc["M08"]
    assert (m08.frequency, m08.recency, m08["T"], m08.monetary_value) == (1, 31, 60, 80.0)
    # M07's O014 arrived twice with different amounts: the later row (99.00) is used
    assert merged.loc["M07"].monetary_value == pytest.approx((95 + 85 + 100) / 3)


def test_rfm_and_grid(run) -> None:
    _, con, _ = run
    rfm = q(con, "select * from marts.customer_rfm").set_index("member_id")
    assert len(rfm) == 8
    assert rfm.loc["M06", "rfm_segment"] == "Champions"
    assert rfm.loc["M06", "rf_cell"] == "active_fan"
    assert rfm.loc["M03", "rf_cell"] == "lost_new"
    assert rfm.loc["M03", "monetary_total"] == 1299  # "¥1,299.00"
    assert set(rfm["r_score"]) <= {1, 2, 3, 4, 5}


def test_quarantine_keeps_every_rejected_row_with_reason(run) -> None:
    _, con, _ = run
    rows = con.sql(
        "select source_row, order_id, reason from marts.orders_quarantine order by source_row"
    ).fetchall()
    assert rows == [
        (14, "O014", "order_id O014 again with different contents; kept orders.csv row 29"),
        (24, "O024", "unparseable amount: abc"),
        (25, "O025", "negative amount: -5.00"),
        (27, "O026", "unparseable ordered_at: not a date"),
        (28, "O027", "unknown status: shipped"),
    ]
    recon = q(con, "select * from marts.ingest_reconciliation").set_index("source")
    assert recon.loc["orders"].to_dict() == {
        "rows_landed": 29,
        "rows_staged": 23,
        "rows_quarantined": 5,
        "exact_duplicates_removed": 1,
        "rows_merged": 0,
        "balanced": True,
    }
    assert recon.loc["members", "rows_merged"] == 1 and bool(recon.loc["members", "balanced"])


def test_conflicting_member_rows_keep_conservative_consent(run) -> None:
    _, con, _ = run
    consent = con.sql(
        "select marketing_consent from staging.stg_shop__members where member_id = 'M04'"
    ).fetchall()
    assert consent == [(False,)]
    assert con.sql(
        "select marketing_consent from staging.stg_shop__members where member_id = 'M08'"
    ).fetchall() == [(True,)]  # "yes"


def test_run_is_visible_in_the_dagster_instance(run) -> None:
    outcome, _, root = run
    import dagster as dg

    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        record = instance.get_run_by_id(outcome.run_id)
        assert record is not None and record.is_success
        mat = instance.get_latest_materialization_event(dg.AssetKey("customer_lifecycle"))
        meta = mat.asset_materialization.metadata
        assert meta["stage_counts"].value["prospect"] == 2
        assert meta["dagster/row_count"].value == 10


def test_cli_reports_schema_drift_in_one_line(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text("order_id,customer,ordered_at,amount\nA,M1,2024-01-01,1\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("crm")),
            "run",
            "--as-of",
            AS_OF,
            "--landing",
            str(landing),
            "--warehouse",
            str(tmp_path / "wh.duckdb"),
            "--exports",
            str(tmp_path / "exports"),
        ],
        capture_output=True,
        text=True,
        env={
            **__import__("os").environ,
            "DAGSTER_HOME": str(tmp_path / "dh"),
            "CRM_MODELS_DIR": str(tmp_path / "models"),
        },
    )
    assert proc.returncode == 1
    assert "error: raw_orders: orders.csv: required column 'member_id' is missing" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
