"""The bad-input catalogue through the real graph: every row's fate is asserted.

tests/fixtures/messy: orders.csv in UTF-8 with BOM and CRLF header, an extra
column, amounts as text (`1 299,00`, `1.299,50`, `￥88`, `RMB 12.5`), a zero
amount, mixed date layouts and a UTC-offset timestamp, statuses with stray
spaces/case/synonyms, orders after the as-of date and far in the future, an
order for a member missing from the members file, and a truncated last line;
members.csv in GBK with Chinese names, `是/否/yes/1` consent and a duplicate.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import point_env_at

FIXTURE = Path(__file__).parents[1] / "fixtures" / "messy"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("messy")
    shutil.copytree(FIXTURE, root / "landing")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root)
        mp.setenv("CRM_AS_OF", "2024-06-30")
        from orchestration.runner import run_pipeline

        outcome = run_pipeline(groups=["ingest", "transform"])
    assert outcome.success, outcome.failure
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as c:
        yield c


def test_every_order_row_accounted_for(con) -> None:
    staged = {
        r[0]: r[1:]
        for r in con.execute(
            "select order_id, ordered_at, amount, status from staging.stg_shop__orders"
        ).fetchall()
    }
    assert staged == {
        "A1": (datetime(2024, 5, 1, 10, 0), Decimal("1299.00"), "paid"),
        "A2": (datetime(2024, 5, 20), Decimal("1299.50"), "paid"),
        "A3": (datetime(2024, 6, 1), Decimal("0.00"), "paid"),
        # +00:00 converted to the business timezone (Asia/Shanghai, +08:00)
        "A4": (datetime(2024, 6, 10, 17, 30), Decimal("88.00"), "cancelled"),
        "A5": (datetime(2024, 9, 1), Decimal("50.00"), "paid"),  # kept, ignored as of 06-30
        "A6": (datetime(2031, 1, 1), Decimal("60.00"), "paid"),  # kept, ignored as of 06-30
        "A7": (datetime(2024, 6, 1), Decimal("70.00"), "refunded"),
        "A8": (datetime(2024, 6, 15), Decimal("12.50"), "paid"),
    }
    quarantined = con.execute(
        "select row_key, order_id, reason from marts.orders_quarantine"
    ).fetchall()
    assert quarantined == [
        ("orders.csv:9", "A9", "too few fields: 3 of 9 on line 10; the row looks cut short")
    ]
    recon = con.execute(
        "select rows_landed, rows_staged, rows_quarantined, exact_duplicates_removed, balanced "
        "from marts.ingest_reconciliation where source = 'orders'"
    ).fetchall()
    assert recon == [(9, 8, 1, 0, True)]


def test_members_gbk_consent_and_derived_members(con) -> None:
    members = {
        r[0]: r[1:]
        for r in con.execute(
            "select member_id, name, marketing_consent, registered_at::varchar, in_members_file "
            "from intermediate.int_members_unioned"
        ).fetchall()
    }
    assert members == {
        "K1": ("王芳", True, "2024-01-01", True),  # two rows merged, earliest registration
        "K2": ("张秀英", True, "2024-02-01", True),
        "K3": ("李伟", False, "2024-03-01", True),  # 否
        "K9": (None, None, "2024-06-01", False),  # only in orders: derived
    }


def test_as_of_semantics_on_messy_rows(con) -> None:
    stages = dict(
        con.execute("select member_id, lifecycle_stage from marts.customer_lifecycle").fetchall()
    )
    # K2's only paid order is a zero-value sample (still a purchase); K3 only ordered after
    # the as-of date; K9 only has a refund.
    assert stages == {"K1": "rising", "K2": "new", "K3": "prospect", "K9": "prospect"}
    k1 = con.execute(
        'select frequency, recency, "T", monetary_value from marts.customer_features '
        "where member_id = 'K1'"
    ).fetchall()
    assert k1 == [(2, 45, 60, 656.0)]
