"""Campaign results against a simulated past campaign with a known truth (the real graph).

`crm demo-data` lands a win-back campaign sent 90 days before the as-of date with a
60-day window: a send log (25% control per priority group, ~3% bounced or failed),
coupon events and the orders it caused, drawn with a known base rate and true uplift per
priority group (`.crm-demo-campaign.json`). The pipeline knows none of that: it reads
the landed files like any shop's. The readout must count exactly the simulated members
and buyers, and its intervals must hold the true uplift.
"""

from __future__ import annotations

import json
import math
from datetime import date

import duckdb
import pytest

from orchestration.demo import generate_demo_data
from tests.conftest import point_env_at

pytestmark = pytest.mark.integration
AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def readout(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("results")
    landing = root / "landing"
    generate_demo_data(landing, members=20_000, seed=7, end=date(2026, 6, 30))
    truth = json.loads((landing / ".crm-demo-campaign.json").read_text(encoding="utf-8"))
    # a redemption of a code no campaign sent, and an unreadable event row
    with (landing / "coupon_events.csv").open("a", encoding="utf-8") as fh:
        fh.write("NOSUCHCODE,M0000001,redeemed,2026-04-05 12:00:00,,,,30.00,199.00\n")
        fh.write("WBX,M0000001,lost,2026-04-05 12:00:00,,,,,\n")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, as_of=AS_OF)
        from orchestration.runner import run_pipeline

        outcome = run_pipeline(groups=["ingest", "transform", "results"])
    assert outcome.success, outcome.failure
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield truth, con, root
    con.close()


def _rows(con, sql: str, *args) -> list[dict]:
    cur = con.execute(sql, list(args))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_readout_counts_exactly_the_simulated_campaign(readout) -> None:
    truth, con, _ = readout
    groups = {
        r["priority_group"]: r
        for r in _rows(
            con,
            "select priority_group, sum(treated) as treated, sum(control) as control, "
            "sum(not_delivered) as not_delivered, sum(treated_buyers) as treated_buyers, "
            "sum(control_buyers) as control_buyers, sum(coupons_redeemed) as redeemed, "
            "bool_and(window_closed) as closed "
            "from marts.campaign_results where campaign_id = ? and priority_group is not null "
            "and channel is not null group by 1",
            truth["campaign_id"],
        )
    }
    assert sorted(groups) == [g["priority_group"] for g in truth["groups"]]
    for g in truth["groups"]:
        got = groups[g["priority_group"]]
        # bounced and failed sends are not treated members; the log's control rows are the control
        assert got["treated"] == g["delivered"]
        assert got["not_delivered"] == g["treated"] - g["delivered"]
        assert got["control"] == g["control"]
        assert got["treated_buyers"] == g["delivered_buyers"]
        assert got["control_buyers"] == g["control_buyers"]
        assert got["redeemed"] == g["redeemed"]
        assert got["closed"]


def test_intervals_hold_the_true_uplift(readout) -> None:
    truth, con, _ = readout
    uplift = {g["priority_group"]: g["uplift"] for g in truth["groups"]}
    rows = _rows(
        con,
        "select priority_group, channel, treated, control, uplift, uplift_ci_low, "
        "uplift_ci_high from marts.campaign_results where campaign_id = ?",
        truth["campaign_id"],
    )
    # per priority group over all channels, and per group x channel where the arms are not tiny
    per_group = [r for r in rows if r["priority_group"] is not None and r["control"] >= 20]
    assert len([r for r in per_group if r["channel"] is None]) == 5
    covered = [
        r["uplift_ci_low"] <= uplift[r["priority_group"]] <= r["uplift_ci_high"] for r in per_group
    ]
    assert sum(covered) >= 0.8 * len(per_group), per_group
    # the total: the expected difference of the two arms' rates given the realised group sizes
    delivered = sum(g["delivered"] for g in truth["groups"])
    control = sum(g["control"] for g in truth["groups"])
    expected = sum(
        g["delivered"] / delivered * (g["base_rate"] + g["uplift"])
        - g["control"] / control * g["base_rate"]
        for g in truth["groups"]
    )
    total = next(r for r in rows if r["priority_group"] is None)
    assert total["uplift_ci_low"] <= expected <= total["uplift_ci_high"]
    # and the point estimate is close: within three standard errors
    t = next(r for r in _rows(
        con,
        "select treated_rate, control_rate, treated, control from marts.campaign_results "
        "where campaign_id = ? and priority_group is null",
        truth["campaign_id"],
    ))  # fmt: skip
    se = math.sqrt(
        t["treated_rate"] * (1 - t["treated_rate"]) / t["treated"]
        + t["control_rate"] * (1 - t["control_rate"]) / t["control"]
    )
    assert abs(total["uplift"] - expected) < 3 * se
    # the group with no true effect is not declared a success by a wide margin
    assert min(r["uplift_ci_low"] for r in per_group if uplift[r["priority_group"]] == 0) < 0


def test_coupons_and_roi_follow_the_coupon_events(readout) -> None:
    truth, con, _ = readout
    total = _rows(
        con,
        "select coupons_issued, coupons_redeemed, redemption_rate, subsidy, message_cost, "
        "incremental_revenue, roi, recall_rate from marts.campaign_results "
        "where campaign_id = ? and priority_group is null",
        truth["campaign_id"],
    )[0]
    redeemed = sum(g["redeemed"] for g in truth["groups"])
    treated = sum(g["treated"] for g in truth["groups"])
    assert total["coupons_issued"] == treated  # every send's coupon was issued, bounced or not
    assert total["coupons_redeemed"] == redeemed
    assert total["redemption_rate"] == pytest.approx(redeemed / treated)
    assert total["subsidy"] == pytest.approx(redeemed * truth["coupon"]["face_value"])
    cost = total["message_cost"] + total["subsidy"]
    assert total["roi"] == pytest.approx((total["incremental_revenue"] - cost) / cost)
    # every member was lapsed when the campaign went out
    assert 0 < total["recall_rate"] < 1
    # the redemption of a code no campaign sent counts nowhere; the unreadable row is kept
    stray = con.execute(
        "select campaign_id from intermediate.int_member_coupons where coupon_code = 'NOSUCHCODE'"
    ).fetchall()
    assert stray == [(None,)]
    quarantined = con.execute(
        "select entity, source_row, reason from marts.campaign_feedback_quarantine"
    ).fetchall()
    assert [(e, r) for e, _, r in quarantined] == [
        ("coupon_events", "unknown event: lost (use issued, redeemed, expired or revoked)")
    ]
    (balanced,) = con.execute(
        "select bool_and(balanced) from marts.ingest_reconciliation"
    ).fetchone()
    assert balanced


def test_coupon_codes_stay_out_of_dagster_storage(readout) -> None:
    """A coupon code is a member's own bearer code: previews show it masked."""
    import csv

    import dagster as dg

    truth, _, root = readout
    with (root / "landing" / "campaign_sends.csv").open(encoding="utf-8") as fh:
        codes = {r["coupon_code"] for r in csv.DictReader(fh) if r["coupon_code"]}
    assert codes
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        texts = []
        for key in ("raw_campaign_sends", "raw_coupon_events", "campaign_results"):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            texts += [str(v.value) for v in event.asset_materialization.metadata.values()]
    blob = "\n".join(texts)
    assert truth["campaign_id"] in blob  # the readout is there
    assert not [c for c in codes if c in blob]


def test_dbt_unit_tests_pass(readout, tmp_path) -> None:
    """The SQL's unit tests (hand-checked fixtures in the models' YAML). Runs skip them
    (`--exclude-resource-type unit_test`): they check code, not data, so they run here,
    once, on a copy of a built warehouse (dbt reads the parents' columns from it)."""
    import shutil

    from orchestration.defs.project import dbt_cli, dbt_vars
    from orchestration.settings import load_settings

    _, _, root = readout
    copy = tmp_path / "unit.duckdb"
    shutil.copyfile(root / "warehouse.duckdb", copy)
    s = load_settings(warehouse=copy, as_of=AS_OF, models_dir=tmp_path / "models")
    invocation = dbt_cli().cli(
        ["test", "--select", "test_type:unit", "--vars", json.dumps(dbt_vars(s))],
        raise_on_error=False,
        target_path=tmp_path / "target",
    )
    results = [
        (e.raw_event["data"]["node_info"]["node_name"], e.raw_event["data"]["status"])
        for e in invocation.stream_raw_events()
        if e.raw_event["info"]["name"] == "LogTestResult"
    ]
    assert len(results) >= 8, results
    assert invocation.is_successful(), [r for r in results if r[1] != "pass"]


def _dbt_build_results(warehouse, as_of: str, tmp_path, rebuild: bool = False) -> None:
    """`dbt build` of the contact record, the coupons and the readout (with their tests),
    as a run's results step does."""
    from orchestration.defs.project import dbt_cli, dbt_vars
    from orchestration.settings import load_settings

    s = load_settings(
        warehouse=warehouse,
        as_of=as_of,
        models_dir=tmp_path / "models",
        rebuild_campaign_results=rebuild or None,
    )
    invocation = dbt_cli().cli(
        [
            "build",
            "--select",
            "int_campaign_contacts int_member_coupons campaign_results",
            "--indirect-selection",
            "buildable",
            "--exclude-resource-type",
            "unit_test",
            "--vars",
            json.dumps(dbt_vars(s)),
        ],
        raise_on_error=False,
        target_path=tmp_path / f"target-{as_of}-{rebuild}",
    )
    assert invocation.is_successful(), as_of


def test_kept_results_equal_a_rebuild(readout, tmp_path) -> None:
    """campaign_results is incremental: a run reads only the campaigns with a recent
    contact or without a final readout and keeps the other rows. After nightly-style runs
    and a re-run of an earlier day, the table must equal a rebuild from the whole record;
    the simulated campaign (sent 04-01, 90 days before the fixture's as-of date) is kept
    once final and read again after the re-run made its readout provisional."""
    import shutil

    truth, _, root = readout
    nightly, rebuilt = tmp_path / "nightly.duckdb", tmp_path / "rebuilt.duckdb"
    shutil.copyfile(root / "warehouse.duckdb", nightly)
    shutil.copyfile(root / "warehouse.duckdb", rebuilt)
    _dbt_build_results(rebuilt, "2026-08-31", tmp_path, rebuild=True)
    con = duckdb.connect()
    con.execute(f"attach '{rebuilt}' as r (read_only)")
    columns = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = 'r' and table_name = 'campaign_results' "
            "and column_name <> 'computed_as_of'"
        ).fetchall()
    )
    assert {"treated", "roi", "window_closed"} <= set(columns)
    # doubles to 9 places: a parallel sum may add in another order
    listed = ", ".join(
        f'round("{c}", 9)' if t == "DOUBLE" else f'"{c}"' for c, t in columns.items()
    )
    rebuilt_on = con.execute("select min(computed_as_of) from r.marts.campaign_results")
    assert str(rebuilt_on.fetchall()[0][0]) == "2026-08-31"  # every campaign recomputed

    def state() -> tuple[int, str, int]:
        """(contact rows of the campaign read by the last run, its computed_as_of, rows
        that differ from the rebuild)"""
        con.execute(f"attach '{nightly}' as n (read_only)")
        try:
            read = con.execute(
                "select count(*) from n.intermediate.int_campaign_contacts where campaign_id = ?",
                [truth["campaign_id"]],
            ).fetchall()[0][0]
            computed = con.execute(
                "select distinct computed_as_of from n.marts.campaign_results "
                "where campaign_id = ?",
                [truth["campaign_id"]],
            ).fetchall()
            differ = con.execute(
                f"select count(*) from ((select {listed} from n.marts.campaign_results "
                f"except all select {listed} from r.marts.campaign_results) union all "
                f"(select {listed} from r.marts.campaign_results except all "
                f"select {listed} from n.marts.campaign_results))"
            ).fetchall()[0][0]
        finally:
            con.execute("detach n")
        return read, ",".join(str(c[0]) for c in computed), differ

    _dbt_build_results(nightly, "2026-07-31", tmp_path)
    _dbt_build_results(nightly, "2026-08-31", tmp_path)
    # final since the fixture's run on 06-30 (the 90-day look-back after its send): kept
    assert state() == (0, "2026-06-30", 0)
    _dbt_build_results(nightly, "2026-05-01", tmp_path)  # a re-run of an earlier day ...
    _dbt_build_results(nightly, "2026-08-31", tmp_path)
    read, computed, differ = state()
    assert read > 0 and computed == "2026-08-31" and differ == 0  # ... read it again
