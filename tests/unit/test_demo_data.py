"""Known-answer tests for the demo dataset generators (orchestration.demo)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from orchestration.demo import (
    CAMPAIGN_SENDS_COLUMNS,
    COUPON_EVENTS_COLUMNS,
    MEMBERS_COLUMNS,
    ORDERS_COLUMNS,
    TRUTH_FILE,
    DemoDataSummary,
    default_end_date,
    generate_demo_data,
    simulate_past_campaign,
    write_cdnow,
)
from orchestration.demo.csv_writer import csv_writer
from orchestration.demo.seasons import Calendar
from orchestration.lib import landing

END = date(2025, 12, 31)
YEARS = 2.0
N_MEMBERS = 2_000

ORDERS_HEADER = "order_id,member_id,ordered_at,amount,status,channel,store_id,coupon_code"
MEMBERS_HEADER = (
    "member_id,registered_at,name,gender,birthday,city,phone,email,"
    "acquisition_channel,acquisition_cost,marketing_consent"
)
SENDS_HEADER = (
    "campaign_id,member_id,channel,sent_at,status,is_control,coupon_code,list_name,"
    "priority_group,cost"
)
EVENTS_HEADER = (
    "coupon_code,member_id,event,event_at,campaign_id,channel_code,order_id,face_value,threshold"
)
SEND_DAY = END - timedelta(days=90)
CAMPAIGN_ID = f"win_back-{SEND_DAY:%Y%m%d}"
BASE = (0.10, 0.08, 0.06, 0.05, 0.04)
UPLIFT = (0.12, 0.08, 0.05, 0.02, 0.0)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("demo")
    summary = generate_demo_data(out, members=N_MEMBERS, seed=7, end=END, years=YEARS)
    return summary, _read(out / "orders.csv"), _read(out / "members.csv")


@pytest.fixture(scope="module")
def cdnow_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoDataSummary, Path]:
    out = tmp_path_factory.mktemp("cdnow")
    return write_cdnow(out, sample=True), out


# ------------------------------------------------------------------------------------------
# generate_demo_data
# ------------------------------------------------------------------------------------------


def test_headers_exact(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    summary, _, _ = demo
    orders_path, members_path = summary.files[:2]
    assert orders_path.name == "orders.csv" and members_path.name == "members.csv"
    assert orders_path.read_text(encoding="utf-8").splitlines()[0] == ORDERS_HEADER
    assert members_path.read_text(encoding="utf-8").splitlines()[0] == MEMBERS_HEADER
    assert ",".join(ORDERS_COLUMNS) == ORDERS_HEADER
    assert ",".join(MEMBERS_COLUMNS) == MEMBERS_HEADER


def test_summary_matches_files(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    summary, orders, members = demo
    assert summary.members == N_MEMBERS == len(members)
    assert summary.orders == len(orders)
    days = pd.to_datetime(orders["ordered_at"]).dt.date
    assert summary.first_order == days.min()
    assert summary.last_order == days.max()
    assert not any(p.name.endswith(".tmp") for p in summary.out_dir.iterdir())
    # about 5-6 orders per buyer
    assert 4.0 < len(orders) / orders["member_id"].nunique() < 7.0


def test_deterministic_and_seed_sensitive(tmp_path: Path) -> None:
    kwargs = {"members": 300, "end": END, "years": 1.0}
    generate_demo_data(tmp_path / "a", seed=1, **kwargs)
    generate_demo_data(tmp_path / "b", seed=1, **kwargs)
    generate_demo_data(tmp_path / "c", seed=2, **kwargs)
    for name in ("orders.csv", "members.csv", "campaign_sends.csv", "coupon_events.csv"):
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes()
        assert a != (tmp_path / "c" / name).read_bytes()
    truth = (tmp_path / "a" / TRUTH_FILE).read_bytes()
    assert truth == (tmp_path / "b" / TRUTH_FILE).read_bytes()


# sha256 of the files of generate_demo_data(members=300, seed=1, end=END, years=1.0), as
# written by orchestration/lib/demo_data.py before the move to orchestration.demo and to
# ml.simulate's BG/NBD draws. A change here changes every demo and benchmark dataset: update
# the digests only on purpose (and say so), never to make a refactoring pass.
PINNED_SHA256 = {
    "orders.csv": "23d1a74b6bdd717c51a08ae54c18815674ae174ce6e060e797d584cf6bb085ce",
    "members.csv": "6728eb5735ac90d87189364e85dca33555310d6171cc44edd3240f81728f6b50",
}


def test_output_pinned_byte_for_byte(tmp_path: Path) -> None:
    """Without the campaign the shop's files are exactly what they were before it existed."""
    generate_demo_data(tmp_path, members=300, seed=1, end=END, years=1.0, campaign=False)
    for name, digest in PINNED_SHA256.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


# The same with the simulated past campaign (added with orchestration/demo/campaign.py):
# members.csv is unchanged, orders.csv differs by the campaign members' orders in the window.
PINNED_CAMPAIGN_SHA256 = {
    "members.csv": PINNED_SHA256["members.csv"],
    "orders.csv": "63ba1f6e7e791cca061d4543058b236faf96d7620a732c351e2ff4d6e0d4912b",
    "campaign_sends.csv": "232618a180ff38cb40cccc9a7d44bcf0ed9bec00012cd16dbe158c4e8784ef79",
    "coupon_events.csv": "366a9ae30bd17b9664844dd0276351037bbd961a80c7c64faef62e9d846b67ea",
    TRUTH_FILE: "87f136f04b2bd7ae210858d32474464a3978b1683e8c953f59adfd082500646d",
}


def test_campaign_output_pinned_byte_for_byte(tmp_path: Path) -> None:
    generate_demo_data(tmp_path, members=300, seed=1, end=END, years=1.0)
    for name, digest in PINNED_CAMPAIGN_SHA256.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


def test_rerun_overwrites(tmp_path: Path) -> None:
    generate_demo_data(tmp_path, members=200, end=END, years=1.0)
    (tmp_path / "orders.csv").write_text("garbage", encoding="utf-8")
    summary = generate_demo_data(tmp_path, members=200, end=END, years=1.0)
    assert len(_read(tmp_path / "orders.csv")) == summary.orders
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".crm-demo",
        TRUTH_FILE,
        "campaign_sends.csv",
        "coupon_events.csv",
        "members.csv",
        "orders.csv",
    ]
    # regenerated without a campaign: the earlier demo campaign's files go too
    summary = generate_demo_data(tmp_path, members=200, end=END, years=1.0, campaign=False)
    assert summary.campaign is None and len(summary.files) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".crm-demo", "members.csv", "orders.csv"]


def test_no_campaign_keeps_foreign_feedback_files(tmp_path: Path) -> None:
    """Send logs not written by the demo (no truth file beside them) are never removed."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "campaign_sends.csv").write_text(SENDS_HEADER + "\n", encoding="utf-8")
    generate_demo_data(tmp_path, members=50, end=END, years=1.0, campaign=False)
    assert (tmp_path / "campaign_sends.csv").read_text(encoding="utf-8") == SENDS_HEADER + "\n"


def test_order_dates_within_window(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame],
) -> None:
    _, orders, members = demo
    assert orders["ordered_at"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").all()
    ts = pd.to_datetime(orders["ordered_at"], format="%Y-%m-%d %H:%M:%S")
    lower = pd.Timestamp(END - timedelta(days=round(YEARS * 365.25)))
    assert ts.max() < pd.Timestamp(END + timedelta(days=1))
    assert ts.min() >= lower
    reg = pd.to_datetime(members["registered_at"], format="%Y-%m-%d")
    assert reg.min() >= lower and reg.max() <= pd.Timestamp(END)
    # sorted by ordered_at, then order_id
    keys = list(zip(orders["ordered_at"], orders["order_id"], strict=True))
    assert keys == sorted(keys)


def test_registered_before_first_order(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame],
) -> None:
    _, orders, members = demo
    first = pd.to_datetime(orders["ordered_at"]).dt.normalize().groupby(orders["member_id"]).min()
    reg = pd.to_datetime(members.set_index("member_id")["registered_at"])
    assert set(first.index) <= set(reg.index)
    assert (reg.loc[first.index] <= first).all()


def test_ids(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, orders, members = demo
    assert orders["order_id"].is_unique
    assert orders["order_id"].str.fullmatch(r"O\d{9}").all()
    assert members["member_id"].is_unique
    assert members["member_id"].str.fullmatch(r"M\d{7}").all()
    assert orders["member_id"].isin(members["member_id"]).all()


def test_non_buyer_share(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, orders, members = demo
    share = 1 - orders["member_id"].nunique() / len(members)
    assert 0.10 <= share <= 0.25


def test_status_shares(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, orders, _ = demo
    assert set(orders["status"]) == {"paid", "cancelled", "refunded"}
    shares = orders["status"].value_counts(normalize=True)
    assert 0.025 <= shares["cancelled"] <= 0.055
    assert 0.018 <= shares["refunded"] <= 0.045


def test_singles_day_peak(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, orders, _ = demo
    days = pd.to_datetime(orders["ordered_at"]).dt.normalize()
    last_year = days[days > pd.Timestamp(END - timedelta(days=365))]
    daily_avg = len(last_year) / 365
    nov = last_year[(last_year.dt.month == 11) & (last_year.dt.day <= 11)]
    assert len(nov) / 11 > 1.6 * daily_avg
    assert (last_year == pd.Timestamp(END.year, 11, 11)).sum() > 3 * daily_avg


def test_chinese_new_year_peak(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame],
) -> None:
    _, orders, _ = demo
    days = pd.to_datetime(orders["ordered_at"]).dt.normalize()
    cny = pd.Timestamp(2025, 1, 29)
    before = ((days >= cny - pd.Timedelta(days=21)) & (days < cny)).sum() / 21
    after = ((days >= cny + pd.Timedelta(days=21)) & (days < cny + pd.Timedelta(days=42))).sum()
    assert before > 1.3 * after / 21


def test_amounts_and_codes(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, orders, _ = demo
    assert orders["amount"].str.fullmatch(r"\d+\.\d{2}").all()
    amount = orders["amount"].astype(float)
    assert (amount >= 0).all()
    assert 150 < amount[orders["status"] == "paid"].mean() < 350
    assert set(orders["channel"]) == {"tmall", "jd", "wechat_mini", "store"}
    shares = orders["channel"].value_counts(normalize=True)
    assert 0.28 < shares["tmall"] < 0.42 and 0.13 < shares["store"] < 0.27
    is_store = orders["channel"] == "store"
    assert orders.loc[is_store, "store_id"].str.fullmatch(r"S\d{3}").all()
    assert (orders.loc[~is_store, "store_id"] == "").all()
    coupons = orders["coupon_code"]
    assert 0.5 < (coupons == "").mean() < 0.98
    shop_coupons = coupons[~coupons.str.fullmatch(r"WB[0-9A-F]{10}")]  # the campaign's: below
    assert set(shop_coupons) <= {"", "NEW20", "D11-50", "CNY30", "618-30", "VIP10"}
    d11 = pd.to_datetime(orders.loc[coupons == "D11-50", "ordered_at"])
    assert ((d11.dt.month == 11) & (d11.dt.day <= 11)).all()


def test_member_attributes(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    _, _, members = demo
    assert set(members["marketing_consent"]) == {"true", "false"}
    assert 0.7 < (members["marketing_consent"] == "true").mean() < 0.9
    assert set(members["gender"]) == {"F", "M"}
    assert members["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    phone = members["phone"]
    assert phone[phone != ""].str.fullmatch(r"1[3589]\d{9}").all()
    assert phone[phone != ""].is_unique
    assert 0.85 < (phone != "").mean() < 0.95
    email = members["email"]
    assert email[email != ""].str.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+\.com").all()
    assert email[email != ""].is_unique
    assert 0.4 < (email != "").mean() < 0.6
    assert {"上海", "北京", "广州", "深圳"} <= set(members["city"])
    bday = pd.to_datetime(members.loc[members["birthday"] != "", "birthday"])
    age = (pd.Timestamp(END) - bday).dt.days / 365.25
    assert age.min() >= 17.9 and age.max() <= 65.1
    assert (members["birthday"] == "").any()
    assert set(members["acquisition_channel"]) <= {
        "tmall",
        "jd",
        "wechat_ads",
        "douyin",
        "store",
        "referral",
    }
    cost = members["acquisition_cost"]
    assert cost[cost != ""].str.fullmatch(r"\d+\.\d{2}").all()
    assert (cost == "").any()
    by_channel = cost[cost != ""].astype(float).groupby(members["acquisition_channel"]).mean()
    assert by_channel["douyin"] > by_channel["store"]


def test_btyd_rate_recoverable(demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame]) -> None:
    """Mean inter-purchase time of buyers' repeat purchases is in the designed 60-90 day range."""
    _, orders, _ = demo
    paid = orders[orders["status"] == "paid"]
    days = pd.to_datetime(paid["ordered_at"]).dt.normalize()
    per_day = pd.DataFrame({"m": paid["member_id"], "d": days}).drop_duplicates()
    g = per_day.groupby("m")["d"]
    repeats = (g.size() - 1).sum()
    exposure = (g.max() - g.min()).dt.days.sum()
    assert 35 < exposure / repeats < 90
    # heterogeneity: many one-timers and some heavy buyers
    counts = g.size()
    assert (counts == 1).mean() > 0.15 and counts.max() >= 15


def test_default_end_is_yesterday_in_shanghai() -> None:
    expected = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
    assert default_end_date() in {expected, expected + timedelta(days=1)}


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo_data(tmp_path, members=-1, end=END)
    with pytest.raises(ValueError):
        generate_demo_data(tmp_path, members=10, end=END, years=0)


def test_zero_members(tmp_path: Path) -> None:
    summary = generate_demo_data(tmp_path, members=0, end=END)
    assert (summary.members, summary.orders, summary.first_order) == (0, 0, None)
    assert (tmp_path / "orders.csv").read_text(encoding="utf-8") == ORDERS_HEADER + "\n"
    assert (tmp_path / "campaign_sends.csv").read_text(encoding="utf-8") == SENDS_HEADER + "\n"
    assert (tmp_path / "coupon_events.csv").read_text(encoding="utf-8") == EVENTS_HEADER + "\n"


# ------------------------------------------------------------------------------------------
# generate_demo_data: the simulated past campaign
# ------------------------------------------------------------------------------------------


class Campaign:
    """The demo fixture's campaign files, its truth, and the same data without a campaign."""

    def __init__(self, out: Path, twin: Path) -> None:
        self.sends = _read(out / "campaign_sends.csv")
        self.events = _read(out / "coupon_events.csv")
        self.truth = json.loads((out / TRUTH_FILE).read_text(encoding="utf-8"))
        self.twin_orders = _read(twin / "orders.csv")


@pytest.fixture(scope="module")
def campaign(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Campaign:
    twin = tmp_path_factory.mktemp("twin")
    generate_demo_data(twin, members=N_MEMBERS, seed=7, end=END, years=YEARS, campaign=False)
    return Campaign(demo[0].out_dir, twin)


def _in_window(ts: pd.Series) -> pd.Series:
    day = pd.to_datetime(ts, format="%Y-%m-%d %H:%M:%S").dt.normalize()
    return (day >= pd.Timestamp(SEND_DAY)) & (day < pd.Timestamp(SEND_DAY + timedelta(days=60)))


def _window_buyers(orders: pd.DataFrame, sends: pd.DataFrame) -> pd.Series:
    """Per send row: did the member have an order in the results window."""
    buyers = set(orders.loc[_in_window(orders["ordered_at"]), "member_id"])
    return sends["member_id"].isin(buyers)


def test_campaign_files_and_headers(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    summary, _, _ = demo
    out = summary.out_dir
    assert [p.name for p in summary.files] == [
        "orders.csv",
        "members.csv",
        "campaign_sends.csv",
        "coupon_events.csv",
    ]
    assert (out / "campaign_sends.csv").read_text(encoding="utf-8").splitlines()[0] == SENDS_HEADER
    assert (out / "coupon_events.csv").read_text(encoding="utf-8").splitlines()[0] == EVENTS_HEADER
    assert ",".join(CAMPAIGN_SENDS_COLUMNS) == SENDS_HEADER
    assert ",".join(COUPON_EVENTS_COLUMNS) == EVENTS_HEADER
    # the landing contract's entities, where it defines them, have the same columns
    for name, columns in (
        ("campaign_sends", CAMPAIGN_SENDS_COLUMNS),
        ("coupon_events", COUPON_EVENTS_COLUMNS),
    ):
        entity = landing.ENTITIES.get(name)
        if entity is not None:
            assert entity.columns == columns
    assert summary.campaign is not None and summary.campaign.campaign_id == CAMPAIGN_ID
    assert summary.campaign.send_day == SEND_DAY and summary.campaign.window_days == 60


def test_truth_file_is_not_landing_data_and_not_personal(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    from orchestration.lib.landing_batch import data_files

    summary, _, members = demo
    names = [p.name for p in data_files(summary.out_dir)]
    assert TRUTH_FILE not in names and ".crm-demo" not in names
    text = (summary.out_dir / TRUTH_FILE).read_text(encoding="utf-8")
    for column in ("member_id", "phone", "email", "name"):
        values = members[column]
        assert not any(v in text for v in values[values != ""]), column
    assert "M000" not in text and "WB" not in text  # no member ids, no coupon codes
    truth = campaign.truth
    assert truth["campaign_id"] == CAMPAIGN_ID and truth["list_name"] == "win_back"
    assert truth["send_day"] == SEND_DAY.isoformat() and truth["as_of"] == END.isoformat()
    assert truth["window_days"] == 60
    assert [g["base_rate"] for g in truth["groups"]] == list(BASE)
    assert [g["uplift"] for g in truth["groups"]] == list(UPLIFT)
    total = truth["total"]
    assert total["treated"] + total["control"] == len(campaign.sends)
    assert total["control"] == (campaign.sends["is_control"] == "true").sum()


def test_campaign_sends(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    _, _, members = demo
    sends = campaign.sends
    assert len(sends) > 100
    assert sends["member_id"].is_unique
    assert sends["member_id"].isin(members["member_id"]).all()
    assert (sends["campaign_id"] == CAMPAIGN_ID).all()
    assert (sends["list_name"] == "win_back").all()
    assert (sends["sent_at"] == f"{SEND_DAY} 10:00:00").all()
    assert set(sends["priority_group"]) == {"1", "2", "3", "4", "5"}
    assert set(sends["channel"]) <= {"sms", "email"} and (sends["channel"] == "sms").mean() > 0.7
    # contactable members only: consent, and a phone for sms / an e-mail address for email
    who = members.set_index("member_id").loc[sends["member_id"]]
    assert (who["marketing_consent"] == "true").all()
    assert (who.loc[sends["channel"].to_numpy() == "sms", "phone"] != "").all()
    assert (who.loc[sends["channel"].to_numpy() == "email", "email"] != "").all()
    control = sends["is_control"] == "true"
    assert set(sends["is_control"]) == {"true", "false"}
    assert (sends.loc[control, ["status", "coupon_code", "cost"]] == "").all().all()
    treated = sends[~control]
    assert set(treated["status"]) <= {"delivered", "opened", "clicked", "bounced", "failed"}
    assert (treated["cost"] == treated["channel"].map({"sms": "0.05", "email": "0.01"})).all()
    undelivered = treated["status"].isin(["bounced", "failed"]).mean()
    assert undelivered < 0.08


def test_campaign_members_were_lapsed(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    orders = campaign.twin_orders  # the shop's own orders, before the campaign redraw
    paid = orders[orders["status"] == "paid"]
    day = pd.to_datetime(paid["ordered_at"]).dt.normalize()
    before = paid[day < pd.Timestamp(SEND_DAY)]
    last = pd.to_datetime(before.groupby("member_id")["ordered_at"].max()).dt.normalize()
    sends = campaign.sends
    last_of_member = last.reindex(sends["member_id"])
    assert last_of_member.notna().all()  # bought before
    assert (last_of_member < pd.Timestamp(SEND_DAY - timedelta(days=120))).all()
    # priority group 1: more past orders than group 5
    n_before = before.groupby("member_id").size().reindex(sends["member_id"]).to_numpy()
    group = sends["priority_group"].astype(int).to_numpy()
    assert n_before[group == 1].mean() > n_before[group == 5].mean()


def test_control_share_per_group(campaign: Campaign) -> None:
    sends = campaign.sends
    sizes = sends.groupby("priority_group").size()
    assert sizes.max() - sizes.min() <= 1
    control = (sends["is_control"] == "true").groupby(sends["priority_group"]).sum()
    assert (abs(control - 0.25 * sizes) <= 0.5).all()
    for g, row in enumerate(campaign.truth["groups"], start=1):
        assert row["treated"] + row["control"] == sizes[str(g)]
        assert row["control"] == control[str(g)]


def test_coupon_codes(campaign: Campaign) -> None:
    sends = campaign.sends
    treated = sends["is_control"] == "false"
    codes = sends.loc[treated, "coupon_code"]
    assert codes.str.fullmatch(r"WB[0-9A-F]{10}").all() and codes.is_unique
    assert (sends.loc[~treated, "coupon_code"] == "").all()
    row = sends[treated].iloc[0]
    digest = hashlib.sha256(f"{CAMPAIGN_ID}{row['member_id']}".encode()).hexdigest()
    assert row["coupon_code"] == "WB" + digest[:10].upper()


def test_coupon_events(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    _, orders, _ = demo
    sends, events = campaign.sends, campaign.events
    treated = sends[sends["is_control"] == "false"].set_index("coupon_code")
    assert set(events["event"]) == {"issued", "redeemed", "expired"}
    assert (events["campaign_id"] == CAMPAIGN_ID).all()
    assert (events["face_value"] == "30.00").all() and (events["threshold"] == "199.00").all()
    assert (events["member_id"] == treated.loc[events["coupon_code"], "member_id"].values).all()
    channel_code = treated.loc[events["coupon_code"], "channel"].map(
        {"sms": "SMS-WB01", "email": "EML-WB01"}
    )
    assert (events["channel_code"] == channel_code.values).all()
    issued = events[events["event"] == "issued"]
    redeemed = events[events["event"] == "redeemed"]
    expired = events[events["event"] == "expired"]
    # issued for every treated member, bounced or not; then redeemed or expired
    assert sorted(issued["coupon_code"]) == sorted(treated.index)
    assert (issued["event_at"] == f"{SEND_DAY} 10:00:00").all() and (issued["order_id"] == "").all()
    assert sorted(pd.concat([redeemed, expired])["coupon_code"]) == sorted(treated.index)
    expiry = f"{SEND_DAY + timedelta(days=14)} 23:59:59"
    assert (expired["event_at"] == expiry).all() and (expired["order_id"] == "").all()
    assert len(redeemed) == campaign.truth["total"]["redeemed"] > 10
    # every redemption is an order in orders.csv, with the member's code, in the window
    by_id = orders.set_index("order_id")
    assert redeemed["order_id"].is_unique
    o = by_id.loc[redeemed["order_id"]]
    assert (o["coupon_code"].to_numpy() == redeemed["coupon_code"].to_numpy()).all()
    assert (o["member_id"].to_numpy() == redeemed["member_id"].to_numpy()).all()
    assert (o["ordered_at"].to_numpy() == redeemed["event_at"].to_numpy()).all()
    assert (o["status"] == "paid").all() and (o["amount"].astype(float) >= 169.0).all()
    assert _in_window(o["ordered_at"]).all()
    assert (redeemed["event_at"] > f"{SEND_DAY} 10:00:00").all()
    assert (redeemed["event_at"] <= expiry).all()
    # the campaign codes in orders.csv are exactly the redemptions
    assert set(orders.loc[orders["coupon_code"].str.startswith("WB"), "order_id"]) == set(
        redeemed["order_id"]
    )
    # nobody whose message bounced or failed redeemed
    status = treated.loc[redeemed["coupon_code"], "status"]
    assert status.isin(["delivered", "opened", "clicked"]).all()
    # events sorted by time
    assert list(events["event_at"]) == sorted(events["event_at"])


def test_campaign_redraws_only_the_window(
    demo: tuple[DemoDataSummary, pd.DataFrame, pd.DataFrame], campaign: Campaign
) -> None:
    """Campaign members' orders in the window are exactly the drawn ones; the rest unchanged."""
    summary, orders, _ = demo
    twin = campaign.twin_orders
    sends = campaign.sends
    in_campaign, twin_in_campaign = (
        orders["member_id"].isin(sends["member_id"]),
        twin["member_id"].isin(sends["member_id"]),
    )
    window, twin_window = _in_window(orders["ordered_at"]), _in_window(twin["ordered_at"])

    def rows(df: pd.DataFrame) -> list[tuple[str, ...]]:
        return sorted(map(tuple, df.drop(columns="order_id").to_numpy()))

    # everyone else's orders, and the campaign members' orders outside the window: untouched
    keep, twin_keep = ~(in_campaign & window), ~(twin_in_campaign & twin_window)
    assert rows(orders[keep]) == rows(twin[twin_keep])
    # in the window: one paid order per drawn buyer, as many as the truth says
    drawn = orders[in_campaign & window]
    assert drawn["member_id"].is_unique and (drawn["status"] == "paid").all()
    total = campaign.truth["total"]
    assert len(drawn) == total["treated_buyers"] + total["control_buyers"]
    bought = _window_buyers(orders, sends)
    control = sends["is_control"] == "true"
    per_group = campaign.truth["groups"]
    for g in range(1, 6):
        in_g = sends["priority_group"] == str(g)
        assert bought[in_g & control].sum() == per_group[g - 1]["control_buyers"]
        assert bought[in_g & ~control].sum() == per_group[g - 1]["treated_buyers"]
    # control members and undelivered members never carry the campaign's coupon
    coupon_members = set(orders.loc[orders["coupon_code"].str.startswith("WB"), "member_id"])
    undelivered = sends["status"].isin(["bounced", "failed"])
    assert not coupon_members & set(sends.loc[control | undelivered, "member_id"])
    # order ids stay unique, in the same format, numbered in the sorted order
    assert orders["order_id"].is_unique and orders["order_id"].str.fullmatch(r"O\d{9}").all()
    assert list(orders["order_id"]) == [f"O{i:09d}" for i in range(1, len(orders) + 1)]
    assert summary.orders == len(orders)


def test_no_campaign_members(tmp_path: Path) -> None:
    """Too short a history for anyone to be lapsed: the campaign files have a header only."""
    summary = generate_demo_data(tmp_path, members=300, seed=3, end=END, years=0.25)
    assert summary.campaign is not None and sum(summary.campaign.treated) == 0
    assert (tmp_path / "campaign_sends.csv").read_text(encoding="utf-8") == SENDS_HEADER + "\n"
    assert (tmp_path / "coupon_events.csv").read_text(encoding="utf-8") == EVENTS_HEADER + "\n"
    truth = json.loads((tmp_path / TRUTH_FILE).read_text(encoding="utf-8"))
    assert truth["total"]["treated"] == truth["total"]["control"] == 0


def _synthetic_orders(members: int, cal: Calendar) -> dict[str, np.ndarray]:
    """One paid order per member early in the window: everyone is lapsed at the send."""
    return {
        "day": np.full(members, 10, dtype=np.int32),
        "sec": np.full(members, 43_200, dtype=np.int32),
        "member": np.arange(members, dtype=np.int64),
        "cents": np.full(members, 25_000, dtype=np.int64),
        "status": np.zeros(members, dtype=np.int8),
        "channel": np.zeros(members, dtype=np.int8),
        "store": np.full(members, -1, dtype=np.int16),
        "coupon": np.full(members, -1, dtype=np.int8),
    }


def test_true_uplift_recovered_in_large_simulation() -> None:
    """Delivered treated minus control buyer rate per group is the truth, within 4 SE."""
    members = 200_000
    cal = Calendar.build(END, YEARS)
    orders = _synthetic_orders(members, cal)
    channels = np.where(np.arange(members) % 10 == 0, 1, 0).astype(np.int8)
    rng = np.random.default_rng(2024)
    sim = simulate_past_campaign(rng, cal, orders, channels, id_width=7, max_members=members)
    assert len(sim.member) == members
    send = cal.n_days - 1 - 90
    window = (orders["day"] >= send) & (orders["day"] < send + 60)
    bought = np.zeros(members, dtype=bool)
    bought[orders["member"][window]] = True
    assert window.sum() == bought.sum()  # one order per buyer
    b = bought[sim.member]
    undelivered = np.isin(sim.status, [3, 4])  # bounced, failed
    delivered = ~sim.control & ~undelivered
    assert 0.02 < undelivered.sum() / (~sim.control).sum() < 0.04
    for g in range(1, 6):
        in_g = sim.group == g
        t, c = b[in_g & delivered], b[in_g & sim.control]
        diff = t.mean() - c.mean()
        se = np.sqrt(t.var() / len(t) + c.var() / len(c) + 1e-12)
        assert abs(diff - UPLIFT[g - 1]) < 4 * se + 1e-9, (g, diff)
        assert abs(c.mean() - BASE[g - 1]) < 4 * np.sqrt(BASE[g - 1] * 0.96 / len(c))
    # bounced and failed members: base rate, no uplift (pooled over the groups)
    u = b[undelivered]
    expected = np.asarray(BASE)[sim.group[undelivered] - 1]
    se = np.sqrt((expected * (1 - expected)).sum()) / len(u)
    assert abs(u.mean() - expected.mean()) < 4 * se
    # the truth's realised counts are the outcomes
    assert sum(sim.truth.delivered_buyers) == (b & delivered).sum()
    assert sum(sim.truth.control_buyers) == (b & sim.control).sum()
    # redemptions: about 80 % of delivered treated buyers, within the coupon's validity
    redeemed = orders["coupon"] == -2
    assert abs(redeemed.sum() / (b & delivered).sum() - 0.8) < 0.02
    assert (orders["day"][redeemed] <= send + 14).all()


def test_true_uplift_recovered_from_files(tmp_path: Path) -> None:
    """The same read-out from the written files over several seeds (a few SE of the truth)."""
    treated_rates: dict[int, list[tuple[int, int]]] = {g: [] for g in range(1, 6)}
    control_rates: dict[int, list[tuple[int, int]]] = {g: [] for g in range(1, 6)}
    for seed in range(4):
        out = tmp_path / str(seed)
        generate_demo_data(out, members=20_000, seed=seed, end=END, years=YEARS)
        sends = _read(out / "campaign_sends.csv")
        bought = _window_buyers(_read(out / "orders.csv"), sends)
        delivered = sends["status"].isin(["delivered", "opened", "clicked"])
        control = sends["is_control"] == "true"
        for g in range(1, 6):
            in_g = sends["priority_group"] == str(g)
            t, c = bought[in_g & delivered], bought[in_g & control]
            treated_rates[g].append((int(t.sum()), len(t)))
            control_rates[g].append((int(c.sum()), len(c)))
    for g in range(1, 6):
        tb, tn = map(sum, zip(*treated_rates[g], strict=True))
        cb, cn = map(sum, zip(*control_rates[g], strict=True))
        pt, pc = tb / tn, cb / cn
        se = np.sqrt(pt * (1 - pt) / tn + pc * (1 - pc) / cn)
        assert abs((pt - pc) - UPLIFT[g - 1]) < 4 * se, (g, pt - pc)


# ------------------------------------------------------------------------------------------
# write_cdnow
# ------------------------------------------------------------------------------------------


def test_cdnow_sample(cdnow_sample: tuple[DemoDataSummary, Path]) -> None:
    summary, out = cdnow_sample
    orders = _read(out / "orders.csv")
    members = _read(out / "members.csv")
    assert (out / "orders.csv").read_text(encoding="utf-8").splitlines()[0] == ORDERS_HEADER
    assert (out / "members.csv").read_text(encoding="utf-8").splitlines()[0] == MEMBERS_HEADER
    assert len(orders) == 6_919 == summary.orders
    assert orders["member_id"].nunique() == 2_357
    assert len(members) == 2_357 == summary.members
    assert summary.first_order == date(1997, 1, 1)
    assert orders["ordered_at"].min() == "1997-01-01 00:00:00"
    assert summary.last_order == date(1998, 6, 30)
    assert orders["order_id"].is_unique
    assert set(orders["status"]) == {"paid"} and set(orders["channel"]) == {"cdnow"}
    assert (orders["store_id"] == "").all() and (orders["coupon_code"] == "").all()
    assert orders["amount"].str.fullmatch(r"\d+\.\d{2}").all()
    # ids are kept exactly as in the file (leading zeros)
    assert "00004" in set(members["member_id"])
    first = orders.loc[orders["order_id"] == "C0000001"].iloc[0]
    assert (first["member_id"], first["ordered_at"], first["amount"]) == (
        "00004",
        "1997-01-01 00:00:00",
        "29.33",
    )
    first_day = orders.groupby("member_id")["ordered_at"].min().str[:10]
    assert (members.set_index("member_id")["registered_at"] == first_day).all()
    assert (members["marketing_consent"] == "").all()
    keys = list(zip(orders["ordered_at"], orders["order_id"], strict=True))
    assert keys == sorted(keys)
    cents = (orders["amount"].str.replace(".", "", regex=False).astype(np.int64)).sum()
    assert cents == 24_409_194  # sum of dollar_value in CDNOW_sample.txt


def test_cdnow_master(tmp_path: Path) -> None:
    summary = write_cdnow(tmp_path, sample=False)
    assert summary.members == 23_570
    assert summary.orders == 69_659
    assert summary.first_order == date(1997, 1, 1)
    assert summary.last_order == date(1998, 6, 30)


def test_csv_writer_refuses_other_columns_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("old\n", encoding="utf-8")
    swapped = pa.table({"member_id": ["M1"], "order_id": ["O1"]})
    with pytest.raises(ValueError, match="columns"):
        with csv_writer(path, ("order_id", "member_id")) as write:
            write(swapped)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv"]
    with csv_writer(path, ("order_id", "member_id")) as write:
        write(swapped.select(["order_id", "member_id"]))
    assert path.read_text(encoding="utf-8") == "order_id,member_id\nO1,M1\n"
