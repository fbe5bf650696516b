"""Deterministic demo / benchmark dataset generator for the CRM pipeline.

Two sources are supported, both writing ``orders.csv`` and ``members.csv`` in the pipeline's
input contract:

* :func:`generate_demo_data` simulates a Chinese omni-channel retailer. Buyers follow a
  buy-till-you-die process (BG/NBD for the purchase count, Gamma-Gamma for spend) so that the
  downstream CLV models have a known true process to recover. Seasonality (Singles' Day,
  Chinese New Year, 618) is applied by *time-warping* the Poisson process: purchases happen
  at rate ``lambda`` in "operational time" whose clock runs faster on peak days. The number of
  repeat purchases and the dropout mechanism are therefore exactly BG/NBD in operational
  time; only the calendar placement of purchases is seasonal.
* :func:`write_cdnow` converts the CDNOW data bundled with ``lifetimes``.

True process of the simulation (time unit: days of operational time, which averages to one
calendar day over the generation window):

* purchase rate ``lambda ~ Gamma(shape=BTYD_R, rate=BTYD_ALPHA)`` per buyer,
* dropout probability after each repeat purchase ``p ~ Beta(BTYD_A, BTYD_B)``,
* order value ``z ~ Gamma(GG_P, rate=nu)`` with ``nu ~ Gamma(GG_Q, rate=GG_GAMMA)``.

Orders are generated in member chunks (``CHUNK_MEMBERS``), each with its own random stream
derived from ``(seed, chunk index)``. Members are streamed to disk chunk by chunk; orders are
kept in compact numeric form (about 30 bytes per order), sorted globally by time, given
sequential order ids and streamed to CSV in row blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from orchestration.lib.landing import MEMBERS, ORDERS

__all__ = [
    "DemoDataSummary",
    "ORDERS_COLUMNS",
    "MEMBERS_COLUMNS",
    "generate_demo_data",
    "write_cdnow",
]


# The files follow the landing contract exactly: the same columns, in contract order.
ORDERS_COLUMNS: tuple[str, ...] = ORDERS.columns
MEMBERS_COLUMNS: tuple[str, ...] = MEMBERS.columns

# --------------------------------------------------------------------------------------------
# Simulation parameters (the "true process")
# --------------------------------------------------------------------------------------------

CHUNK_MEMBERS = 200_000
"""Members per generation chunk; each chunk has its own deterministic random stream."""

WRITE_BLOCK_ROWS = 1_000_000
"""Rows per block when streaming CSV output."""

PROSPECT_SHARE = 0.15
"""Share of members that never buy (more end up without orders when registering late)."""

BTYD_R = 1.2
BTYD_ALPHA = 72.0
"""Purchase rate per (operational) day: ``lambda ~ Gamma(shape=r, rate=alpha)``."""

BTYD_A = 1.0
BTYD_B = 7.0
"""Dropout probability after each repeat purchase: ``p ~ Beta(a, b)``."""

GG_P = 4.0
GG_Q = 5.0
GG_GAMMA = 250.0
"""Gamma-Gamma spend: ``z ~ Gamma(p, rate=nu)``, ``nu ~ Gamma(q, rate=gamma)``.

The population mean order value is ``p * gamma / (q - 1)`` = 250 yuan (before coupons).
"""

MIN_GROSS_CENTS = 990
"""Floor of the gross (pre-coupon) order value, in cents."""

SAME_DAY_EXTRA_SHARE = 0.03
"""Share of purchase occasions that produce a second paid order on the same day."""

CANCELLED_SHARE = 0.04
REFUNDED_SHARE = 0.03
"""Target shares of all order rows; these orders come on top of the paid BTYD process."""

FIRST_ORDER_SAME_DAY = 0.6
FIRST_ORDER_SOON = 0.28
FIRST_ORDER_SOON_MEAN_DAYS = 10.0
FIRST_ORDER_LATE_MEAN_DAYS = 60.0
"""First purchase delay after registration: same day / soon (exp.) / late (exp.) mixture."""

CHANNELS: tuple[str, ...] = ("tmall", "jd", "wechat_mini", "store")
CHANNEL_WEIGHTS: tuple[float, ...] = (0.35, 0.20, 0.25, 0.20)
PREFERRED_CHANNEL_LOYALTY = 0.8
"""Probability that an order uses the customer's preferred channel."""

ACQ_CHANNELS: tuple[str, ...] = ("tmall", "jd", "wechat_ads", "douyin", "store", "referral")
ACQ_WEIGHTS: tuple[float, ...] = (0.28, 0.15, 0.18, 0.14, 0.17, 0.08)
ACQ_COST_MEAN: tuple[float, ...] = (38.0, 35.0, 28.0, 45.0, 12.0, 20.0)
ACQ_COST_SIGMA = 0.35
ACQ_COST_MISSING = 0.10
# preferred order channel implied by the acquisition channel (-1: no implication)
_ACQ_TO_CHANNEL: tuple[tuple[float, ...], ...] = (
    (1.0, 0.0, 0.0, 0.0),  # tmall
    (0.0, 1.0, 0.0, 0.0),  # jd
    (0.0, 0.0, 1.0, 0.0),  # wechat_ads
    (0.5, 0.0, 0.5, 0.0),  # douyin
    (0.0, 0.0, 0.0, 1.0),  # store
    CHANNEL_WEIGHTS,  # referral
)
ACQ_CHANNEL_STICKINESS = 0.5

COUPONS: tuple[tuple[str, int, int], ...] = (
    # code, discount (yuan), minimum gross (yuan)
    ("NEW20", 20, 59),
    ("D11-50", 50, 200),
    ("CNY30", 30, 150),
    ("618-30", 30, 200),
    ("VIP10", 10, 99),
)
_C_NEW, _C_D11, _C_CNY, _C_618, _C_VIP = range(5)
COUPON_TAKE_RATES: tuple[float, ...] = (0.30, 0.40, 0.30, 0.30, 0.03)

CNY_DATES: tuple[date, ...] = (
    date(2018, 2, 16),
    date(2019, 2, 5),
    date(2020, 1, 25),
    date(2021, 2, 12),
    date(2022, 2, 1),
    date(2023, 1, 22),
    date(2024, 2, 10),
    date(2025, 1, 29),
    date(2026, 2, 17),
    date(2027, 2, 6),
    date(2028, 1, 26),
    date(2029, 2, 13),
    date(2030, 2, 3),
    date(2031, 1, 23),
)
"""Chinese New Year (Spring Festival) dates; years outside the table get no CNY effect."""

CNY_PREP_DAYS = 21

# Hour-of-day weights (local time).
_HOURS_ONLINE = (2.0, 1.2, 0.6, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.0, 2.6, 2.8) + (
    3.0,
    2.8,
    2.6,
    2.6,
    2.7,
    2.8,
    3.0,
    3.6,
    4.4,
    5.0,
    4.6,
    3.2,
)
_HOURS_STORE = (
    (0.0,) * 10 + (2.0, 3.0, 3.0, 3.0, 3.0, 3.2, 3.5, 3.8, 4.0, 4.2, 3.6, 2.0) + (0.0, 0.0)
)
NOV11_MIDNIGHT_SHARE = 0.2
"""Share of online Singles' Day orders placed in the first hour of Nov 11."""

# --------------------------------------------------------------------------------------------
# Reference tables for member attributes
# --------------------------------------------------------------------------------------------

_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.6), ("刘", "liu", 5.4),
    ("陈", "chen", 4.5), ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0),
    ("吴", "wu", 2.0), ("周", "zhou", 1.9), ("徐", "xu", 1.3), ("孙", "sun", 1.3),
    ("马", "ma", 1.2), ("朱", "zhu", 1.2), ("胡", "hu", 1.1), ("郭", "guo", 1.1),
    ("何", "he", 1.0), ("林", "lin", 1.0), ("高", "gao", 1.0), ("罗", "luo", 0.9),
    ("郑", "zheng", 0.9), ("梁", "liang", 0.9), ("谢", "xie", 0.7), ("宋", "song", 0.7),
    ("唐", "tang", 0.7), ("许", "xu", 0.6), ("韩", "han", 0.6), ("冯", "feng", 0.6),
    ("邓", "deng", 0.6), ("曹", "cao", 0.5), ("彭", "peng", 0.5), ("曾", "zeng", 0.5),
    ("肖", "xiao", 0.5), ("田", "tian", 0.5), ("董", "dong", 0.4), ("袁", "yuan", 0.4),
    ("潘", "pan", 0.4), ("于", "yu", 0.4), ("蒋", "jiang", 0.4), ("蔡", "cai", 0.4),
    ("余", "yu", 0.4), ("杜", "du", 0.4), ("叶", "ye", 0.4), ("程", "cheng", 0.4),
    ("苏", "su", 0.3), ("魏", "wei", 0.3), ("吕", "lv", 0.3), ("丁", "ding", 0.3),
    ("任", "ren", 0.3), ("沈", "shen", 0.3),
)  # fmt: skip

_GIVEN_F: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("秀", "xiu"), ("英", "ying"), ("霞", "xia"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"),
    ("慧", "hui"), ("莉", "li"), ("颖", "ying"), ("倩", "qian"), ("欣", "xin"), ("怡", "yi"),
    ("佳", "jia"), ("梅", "mei"), ("晶", "jing"), ("燕", "yan"), ("玲", "ling"), ("丹", "dan"),
    ("萍", "ping"), ("红", "hong"), ("悦", "yue"), ("雨", "yu"), ("思", "si"), ("涵", "han"),
    ("诗", "shi"), ("梦", "meng"), ("琪", "qi"), ("瑶", "yao"), ("月", "yue"), ("宁", "ning"),
)  # fmt: skip

_GIVEN_M: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("斌", "bin"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("帅", "shuai"), ("旭", "xu"), ("龙", "long"), ("林", "lin"), ("博", "bo"),
    ("文", "wen"), ("子", "zi"), ("轩", "xuan"), ("晨", "chen"), ("志", "zhi"), ("建", "jian"),
)  # fmt: skip

_CITIES: tuple[tuple[str, float, int], ...] = (
    # city, weight, number of stores
    ("上海", 12.0, 4), ("北京", 11.0, 4), ("广州", 8.0, 3), ("深圳", 8.0, 3), ("杭州", 7.0, 3),
    ("成都", 7.0, 3), ("武汉", 5.0, 2), ("南京", 5.0, 2), ("重庆", 5.0, 2), ("西安", 4.0, 2),
    ("苏州", 4.0, 2), ("天津", 4.0, 2), ("长沙", 3.0, 1), ("郑州", 3.0, 1), ("青岛", 3.0, 1),
    ("宁波", 2.5, 1), ("厦门", 2.0, 1), ("合肥", 2.0, 1), ("济南", 2.0, 1), ("沈阳", 2.0, 1),
    ("大连", 1.5, 1), ("福州", 1.5, 1), ("昆明", 1.5, 1), ("东莞", 1.5, 0), ("无锡", 1.5, 1),
    ("佛山", 1.5, 0), ("哈尔滨", 1.0, 0), ("石家庄", 1.0, 0),
)  # fmt: skip

_PHONE_PREFIXES: tuple[str, ...] = tuple(
    [f"13{d}" for d in range(10)]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + [f"18{d}" for d in range(10)]
    + ["191", "198", "199"]
)
PHONE_FILLED = 0.9
# Multipliers coprime with 10: (i * mult + offset) % 10**k is a permutation of 0 .. 10**k - 1,
# which makes phone numbers, QQ numbers and e-mail digits unique per member.
_PHONE_MULT = 48_271_891
_QQ_MULT = 738_219_437
_EMAIL_MULT = 2_654_435_761

_EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("qq.com", 35.0), ("163.com", 20.0), ("126.com", 8.0), ("gmail.com", 8.0),
    ("outlook.com", 6.0), ("sina.com", 5.0), ("icloud.com", 5.0), ("139.com", 5.0),
    ("hotmail.com", 4.0), ("foxmail.com", 4.0),
)  # fmt: skip
EMAIL_FILLED = 0.5
BIRTHDAY_FILLED = 0.92
CONSENT_TRUE = 0.8
FEMALE_SHARE = 0.58

_STATUS = ("paid", "cancelled", "refunded")
_PAID, _CANCELLED, _REFUNDED = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDataSummary:
    """What a demo-data run wrote.

    Attributes
    ----------
    out_dir : Path
        Directory holding the files.
    members : int
        Rows written to ``members.csv``.
    orders : int
        Rows written to ``orders.csv`` (all statuses).
    first_order, last_order : date or None
        Calendar dates of the earliest and latest order (``None`` without orders).
    files : list of Path
        The files written (orders first, then members).
    """

    out_dir: Path
    members: int
    orders: int
    first_order: date | None
    last_order: date | None
    files: list[Path]


#: File in a landing folder written by `generate_demo_data` (so `make demo` knows it may
#: regenerate the folder for a new day; it never touches a folder without it).
DEMO_MARKER = ".crm-demo"


def generate_demo_data(
    out_dir: Path,
    *,
    members: int = 20_000,
    seed: int = 42,
    end: date | None = None,
    years: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> DemoDataSummary:
    """Simulate members and orders of a Chinese omni-channel retailer.

    Parameters
    ----------
    out_dir : Path
        Output directory; created if missing. ``orders.csv`` and ``members.csv`` in it are
        replaced atomically (written under a temporary name, then ``os.replace``).
    members : int, default 20_000
        Number of members to simulate (about 85 % of them become buyers).
    seed : int, default 42
        Random seed. The same ``(members, seed, end, years)`` gives byte-identical files.
    end : date, optional
        Last possible order date. Defaults to yesterday in CRM_TIMEZONE.
    years : float, default 2.0
        Length of the window (members register and order in ``(end - years, end]``).
    progress : callable, optional
        Called with short human-readable progress messages.

    Returns
    -------
    DemoDataSummary
        Row counts, order date range and written files.

    Notes
    -----
    Orders are sorted by ``ordered_at``; order ids are assigned in that order, so the rows are
    also sorted by ``order_id`` within equal timestamps. Members are numbered in registration
    order. Peak memory is about 0.9 GB for 10 million orders.
    """
    if members < 0:
        raise ValueError("members must be >= 0")
    if not years > 0:
        raise ValueError("years must be > 0")
    say = progress or (lambda _msg: None)
    end = end or default_end_date()
    cal = _Calendar.build(end, years)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    orders_path = out_dir / "orders.csv"
    members_path = out_dir / "members.csv"

    root = np.random.SeedSequence(seed)
    global_rng = np.random.default_rng(root.spawn(1)[0])
    reg_day = _registration_days(global_rng, members, cal)
    ids = _UniqueIds(
        phone_offset=int(global_rng.integers(0, 10**8)),
        qq_offset=int(global_rng.integers(0, 10**9)),
        email_offset=int(global_rng.integers(0, 10**9)),
        email_mod=10 ** max(4, len(str(members))),
    )
    id_width = max(7, len(str(members)))
    n_chunks = (members + CHUNK_MEMBERS - 1) // CHUNK_MEMBERS
    say(
        f"simulating {members:,} members over {cal.start} .. {cal.end} "
        f"({cal.n_days} days, {n_chunks} chunk(s))"
    )

    parts: list[dict[str, NDArray]] = []
    with _AtomicFile(members_path) as mfile:
        _write_header(mfile.fh, MEMBERS_COLUMNS)
        for ci in range(n_chunks):
            lo, hi = ci * CHUNK_MEMBERS, min(members, (ci + 1) * CHUNK_MEMBERS)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, ci)))
            chunk = _simulate_chunk(rng, cal, lo, reg_day[lo:hi], ids)
            _write_table(mfile.fh, _members_table(chunk.members, cal, id_width))
            parts.append(chunk.orders)
            say(
                f"chunk {ci + 1}/{n_chunks}: members {lo:,}-{hi:,}, "
                f"{len(chunk.orders['day']):,} orders"
            )
        orders = _concat(parts)
        del parts
        n_orders = len(orders["day"])
        say(f"sorting {n_orders:,} orders")
        orders = _sort_orders(orders)
        say(f"writing {orders_path}")
        with _AtomicFile(orders_path) as ofile:
            _write_header(ofile.fh, ORDERS_COLUMNS)
            for table in _orders_tables(orders, cal, id_width):
                _write_table(ofile.fh, table)
            ofile.commit()
        mfile.commit()

    first = last = None
    if n_orders:
        first = cal.start + timedelta(days=int(orders["day"][0]))
        last = cal.start + timedelta(days=int(orders["day"][-1]))
    say(f"done: {members:,} members, {n_orders:,} orders")
    # marks the folder as generated demo data: `make demo` may regenerate it (a new day)
    (out_dir / DEMO_MARKER).write_text(f"demo data up to {cal.end}\n", encoding="utf-8")
    return DemoDataSummary(
        out_dir=out_dir,
        members=members,
        orders=n_orders,
        first_order=first,
        last_order=last,
        files=[orders_path, members_path],
    )


def write_cdnow(out_dir: Path, *, sample: bool) -> DemoDataSummary:
    """Convert the CDNOW data bundled with ``lifetimes`` to the pipeline's input contract.

    Parameters
    ----------
    out_dir : Path
        Output directory; created if missing. ``orders.csv`` and ``members.csv`` are replaced
        atomically.
    sample : bool
        ``True`` for ``CDNOW_sample.txt`` (2,357 customers, 6,919 rows), ``False`` for
        ``CDNOW_master.txt`` (23,570 customers, 69,659 rows).

    Returns
    -------
    DemoDataSummary
        Row counts, order date range and written files.

    Notes
    -----
    Every input row becomes one paid order (same-day rows are kept separate): ``order_id`` is
    ``C`` plus the 1-based row number in file order, ``member_id`` the customer id exactly as
    in the file (e.g. ``00004``), ``ordered_at`` the date at midnight, ``amount`` the dollar
    value and ``channel`` ``cdnow``. ``members.csv`` has one row per customer with
    ``registered_at`` = first purchase date; all other member columns are empty.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = _cdnow_path("CDNOW_sample.txt" if sample else "CDNOW_master.txt")
    cust: list[str] = []
    days: list[str] = []
    values: list[str] = []
    with path.open(encoding="ascii") as fh:
        for line in fh:
            fields = line.split()
            if not fields or fields[0] == "customer_id":
                continue
            if sample:
                cid, _idx, day, _cds, value = fields
            else:
                cid, day, _cds, value = fields
            cust.append(cid)
            days.append(day)
            values.append(value)

    n = len(cust)
    iso = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in days], dtype="datetime64[D]")
    order_idx = np.argsort(iso, kind="stable")
    width = max(7, len(str(n)))
    order_ids = np.array([f"C{i + 1:0{width}d}" for i in range(n)], dtype=object)
    amounts = np.array([f"{float(v):.2f}" for v in values], dtype=object)
    cust_arr = np.array(cust, dtype=object)

    null_str = pa.nulls(n, pa.string())
    orders = pa.table(
        {
            "order_id": pa.array(order_ids[order_idx], pa.string()),
            "member_id": pa.array(cust_arr[order_idx], pa.string()),
            "ordered_at": pa.array(iso[order_idx].astype("datetime64[s]")),
            "amount": pa.array(amounts[order_idx], pa.string()),
            "status": pa.array(np.full(n, "paid", dtype=object), pa.string()),
            "channel": pa.array(np.full(n, "cdnow", dtype=object), pa.string()),
            "store_id": null_str,
            "coupon_code": null_str,
        }
    )
    first_seen: dict[str, np.datetime64] = {}
    for c, d in zip(cust_arr[order_idx], iso[order_idx], strict=True):
        first_seen.setdefault(c, d)
    member_ids = sorted(first_seen)
    m = len(member_ids)
    m_null = pa.nulls(m, pa.string())
    members_tbl = pa.table(
        {
            "member_id": pa.array(member_ids, pa.string()),
            "registered_at": pa.array(
                np.array([first_seen[c] for c in member_ids], dtype="datetime64[D]")
            ),
            **{col: m_null for col in MEMBERS_COLUMNS[2:]},
        }
    )

    orders_path = out_dir / "orders.csv"
    members_path = out_dir / "members.csv"
    with _AtomicFile(orders_path) as ofile, _AtomicFile(members_path) as mfile:
        _write_header(ofile.fh, ORDERS_COLUMNS)
        _write_table(ofile.fh, orders)
        _write_header(mfile.fh, MEMBERS_COLUMNS)
        _write_table(mfile.fh, members_tbl)
        ofile.commit()
        mfile.commit()
    first = last = None
    if n:
        first = iso[order_idx[0]].astype(object)
        last = iso[order_idx[-1]].astype(object)
    return DemoDataSummary(
        out_dir=out_dir,
        members=m,
        orders=n,
        first_order=first,
        last_order=last,
        files=[orders_path, members_path],
    )


def default_end_date() -> date:
    """Yesterday in the business time zone (CRM_TIMEZONE): the pipeline's default as-of."""
    from orchestration.settings import load_settings

    return datetime.now(load_settings().tz).date() - timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Calendar and seasonality
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Daily grid of the generation window with seasonality and operational time.

    Attributes
    ----------
    start, end : date
        First and last day of the window (inclusive).
    n_days : int
        Number of days in the window.
    season : ndarray of float
        Daily intensity multiplier, mean 1 over the window.
    op_clock : ndarray of float
        Operational time at the start of each day (length ``n_days + 1``).
    d11, cny, m618, nov11 : ndarray of bool
        Promotion windows (Nov 1-11, the 3 weeks before CNY, Jun 1-18, Nov 11 itself).
    """

    start: date
    end: date
    n_days: int
    season: NDArray[np.float64]
    op_clock: NDArray[np.float64]
    d11: NDArray[np.bool_]
    cny: NDArray[np.bool_]
    m618: NDArray[np.bool_]
    nov11: NDArray[np.bool_]

    @classmethod
    def build(cls, end: date, years: float) -> _Calendar:
        n_days = max(1, int(round(years * 365.25)))
        start = end - timedelta(days=n_days - 1)
        days = np.datetime64(start, "D") + np.arange(n_days)
        month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
        dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
        weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
        season = np.ones(n_days)
        season *= np.where(weekday >= 5, 1.12, 0.95)
        presale = (month == 10) & (dom >= 20)
        d11 = (month == 11) & (dom <= 11)
        nov11 = (month == 11) & (dom == 11)
        post11 = (month == 11) & (dom >= 12) & (dom <= 16)
        m618 = (month == 6) & (dom <= 18)
        d12 = (month == 12) & (dom == 12)
        season[presale] *= 0.75
        season[d11] *= 2.3
        season[nov11] *= 2.8  # ~6.4x an ordinary day
        season[post11] *= 0.8
        season[m618] *= 1.3
        season[(month == 6) & (dom == 18)] *= 2.2
        season[d12] *= 1.6
        cny = np.zeros(n_days, dtype=bool)
        holiday = np.zeros(n_days, dtype=bool)
        for cny_day in CNY_DATES:
            k = (np.datetime64(cny_day, "D") - np.datetime64(start, "D")).astype(np.int64)
            cny[max(0, k - CNY_PREP_DAYS) : max(0, min(n_days, k))] = True
            holiday[max(0, k) : max(0, min(n_days, k + 7))] = True
        season[cny] *= 1.9
        season[holiday] *= 0.45
        season /= season.mean()
        op_clock = np.concatenate([[0.0], np.cumsum(season)])
        return cls(start, end, n_days, season, op_clock, d11, cny, m618, nov11)

    def day_of(self, op_time: NDArray[np.float64]) -> NDArray[np.int32]:
        """Map operational time to a day index of the window."""
        d = np.searchsorted(self.op_clock, op_time, side="right") - 1
        return np.clip(d, 0, self.n_days - 1).astype(np.int32)


def _registration_days(rng: np.random.Generator, n: int, cal: _Calendar) -> NDArray[np.int32]:
    """Draw sorted registration day indices (more early on, promotion bumps)."""
    x = (np.arange(cal.n_days) + 0.5) / cal.n_days
    weights = (2.0 - x) * np.sqrt(cal.season)
    weights /= weights.sum()
    days = rng.choice(cal.n_days, size=n, p=weights).astype(np.int32)
    days.sort()
    return days


# --------------------------------------------------------------------------------------------
# Simulation of one chunk of members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UniqueIds:
    """Offsets of the per-member permutations used for unique contact details."""

    phone_offset: int
    qq_offset: int
    email_offset: int
    email_mod: int


@dataclass
class _Chunk:
    members: dict[str, NDArray]
    orders: dict[str, NDArray]


def _weights(values: Sequence[float]) -> NDArray[np.float64]:
    w = np.asarray(values, dtype=np.float64)
    return w / w.sum()


def _simulate_chunk(
    rng: np.random.Generator,
    cal: _Calendar,
    first_index: int,
    reg_day: NDArray[np.int32],
    ids: _UniqueIds,
) -> _Chunk:
    n = len(reg_day)
    idx = np.arange(first_index, first_index + n, dtype=np.int64)
    mem = _member_attributes(rng, cal, idx, reg_day, ids)

    # ---- buyers and first purchase ------------------------------------------------------
    kind = rng.random(n)
    delay = np.zeros(n, dtype=np.int64)
    soon = kind >= FIRST_ORDER_SAME_DAY
    late = kind >= FIRST_ORDER_SAME_DAY + FIRST_ORDER_SOON
    delay[soon] = np.ceil(rng.exponential(FIRST_ORDER_SOON_MEAN_DAYS, soon.sum()))
    delay[late] = np.ceil(rng.exponential(FIRST_ORDER_LATE_MEAN_DAYS, late.sum()))
    first_day = reg_day.astype(np.int64) + delay
    buyer = (rng.random(n) >= PROSPECT_SHARE) & (first_day < cal.n_days)
    b_idx = np.flatnonzero(buyer)
    nb = len(b_idx)
    d1 = first_day[b_idx]

    # ---- BG/NBD repeat purchases in operational time ------------------------------------
    lam = rng.gamma(BTYD_R, 1.0 / BTYD_ALPHA, nb)
    p_drop = rng.beta(BTYD_A, BTYD_B, nb)
    u1 = cal.op_clock[d1] + rng.random(nb) * cal.season[d1]
    window = np.maximum(cal.op_clock[-1] - u1, 0.0)
    n_poisson = rng.poisson(lam * window)
    n_alive = rng.geometric(p_drop)  # repeat purchases made before dropping out (>= 1)
    n_rep = np.minimum(n_poisson, n_alive)
    # First n_rep order statistics of n_poisson uniforms on the window via spacings:
    # U_(j) = S_j / S_(N+1), with S_(N+1) - S_(n_rep) ~ Gamma(N + 1 - n_rep).
    total_rep = int(n_rep.sum())
    owner = np.repeat(np.arange(nb), n_rep)
    spacing = rng.standard_exponential(total_rep)
    csum = np.cumsum(spacing)
    seg_end = np.cumsum(n_rep)
    seg_start = seg_end - n_rep
    base = np.concatenate([[0.0], csum])[seg_start]
    csum -= np.repeat(base, n_rep)
    tail = rng.standard_gamma((n_poisson + 1 - n_rep).astype(np.float64))
    seg_sum = np.concatenate([[0.0], csum])[seg_end] * (n_rep > 0)
    denom = seg_sum + tail
    u_rep = u1[owner] + window[owner] * csum / denom[owner]
    rep_day = cal.day_of(u_rep)

    # ---- purchase occasions, customer-major, chronological within customer -------------
    n_occ = 1 + n_rep
    occ_owner = np.repeat(np.arange(nb), n_occ)
    occ_first = np.zeros(len(occ_owner), dtype=bool)
    occ_first[np.cumsum(n_occ) - n_occ] = True
    occ_day = np.empty(len(occ_owner), dtype=np.int32)
    occ_day[occ_first] = d1
    occ_day[~occ_first] = rep_day
    last_day = occ_day[np.cumsum(n_occ) - 1]

    # ---- customer-level order attributes ------------------------------------------------
    nu = rng.gamma(GG_Q, 1.0 / GG_GAMMA, nb)
    pref = mem["pref_channel"][b_idx]
    home_store = mem["home_store"][b_idx]

    # same-day second paid orders
    extra = rng.random(len(occ_owner)) < SAME_DAY_EXTRA_SHARE
    paid_owner = np.concatenate([occ_owner, occ_owner[extra]])
    paid_day = np.concatenate([occ_day, occ_day[extra]])
    paid_first = np.concatenate([occ_first, np.zeros(int(extra.sum()), dtype=bool)])
    paid_channel = _order_channels(rng, pref[occ_owner])
    paid_channel = np.concatenate([paid_channel, paid_channel[extra]])
    paid_sec = _seconds_of_day(rng, cal, occ_day, paid_channel[: len(occ_owner)])
    sec_extra = paid_sec[extra]
    sec_extra = sec_extra + (rng.random(len(sec_extra)) * (86_400 - sec_extra)).astype(np.int32)
    paid_sec = np.concatenate([paid_sec, np.minimum(sec_extra, 86_399)])
    n_paid = len(paid_owner)

    # cancelled (re-ordered right after, same day) and refunded (anytime while active)
    paid_frac = 1.0 - CANCELLED_SHARE - REFUNDED_SHARE
    canc = np.flatnonzero(rng.random(n_paid) < CANCELLED_SHARE / paid_frac)
    refd = np.flatnonzero(rng.random(n_paid) < REFUNDED_SHARE / paid_frac)
    canc_sec = np.maximum(paid_sec[canc] - rng.integers(60, 1_800, len(canc)), 0)
    r_owner = paid_owner[refd]
    span = last_day[r_owner] - d1[r_owner] + 1
    refd_day = (d1[r_owner] + (rng.random(len(refd)) * span).astype(np.int64)).astype(np.int32)
    refd_channel = paid_channel[refd]
    refd_sec = _seconds_of_day(rng, cal, refd_day, refd_channel)

    owner_all = np.concatenate([paid_owner, paid_owner[canc], r_owner])
    day_all = np.concatenate([paid_day, paid_day[canc], refd_day])
    sec_all = np.concatenate([paid_sec, canc_sec.astype(np.int32), refd_sec])
    channel_all = np.concatenate([paid_channel, paid_channel[canc], refd_channel])
    first_all = np.concatenate([paid_first, np.zeros(len(canc) + len(refd), dtype=bool)])
    status = np.concatenate(
        [
            np.full(n_paid, _PAID, np.int8),
            np.full(len(canc), _CANCELLED, np.int8),
            np.full(len(refd), _REFUNDED, np.int8),
        ]
    )
    n_all = len(owner_all)

    # ---- amounts and coupons ------------------------------------------------------------
    gross = rng.standard_gamma(GG_P, n_all) / nu[owner_all]
    gross_cents = np.maximum(np.round(gross * 100.0).astype(np.int64), MIN_GROSS_CENTS)
    coupon = np.full(n_all, -1, dtype=np.int8)
    take = rng.random(n_all)
    rules = (
        (_C_D11, cal.d11[day_all]),
        (_C_CNY, cal.cny[day_all]),
        (_C_618, cal.m618[day_all]),
        (_C_NEW, first_all),
        (_C_VIP, np.ones(n_all, dtype=bool)),
    )
    for code, eligible in rules:
        min_cents = COUPONS[code][2] * 100
        hit = (
            (coupon < 0) & eligible & (gross_cents >= min_cents) & (take < COUPON_TAKE_RATES[code])
        )
        coupon[hit] = code
    discount = np.array([c[1] * 100 for c in COUPONS] + [0], dtype=np.int64)[coupon]
    cents = np.maximum(gross_cents - discount, 0)

    store = np.where(channel_all == CHANNELS.index("store"), home_store[owner_all], -1)
    orders = {
        "day": day_all.astype(np.int32),
        "sec": sec_all.astype(np.int32),
        "member": idx[b_idx][owner_all].astype(np.int64),
        "cents": cents,
        "status": status,
        "channel": channel_all.astype(np.int8),
        "store": store.astype(np.int16),
        "coupon": coupon,
    }
    return _Chunk(members=mem, orders=orders)


def _order_channels(rng: np.random.Generator, pref: NDArray[np.int8]) -> NDArray[np.int8]:
    """Preferred channel most of the time, otherwise a draw from the overall mix."""
    other = rng.choice(len(CHANNELS), size=len(pref), p=_weights(CHANNEL_WEIGHTS))
    loyal = rng.random(len(pref)) < PREFERRED_CHANNEL_LOYALTY
    return np.where(loyal, pref, other).astype(np.int8)


def _seconds_of_day(
    rng: np.random.Generator,
    cal: _Calendar,
    day: NDArray[np.int32],
    channel: NDArray[np.int8],
) -> NDArray[np.int32]:
    """Draw local time of day (seconds) by channel; online midnight rush on Nov 11."""
    n = len(day)
    hour = rng.choice(24, size=n, p=_weights(_HOURS_ONLINE))
    is_store = channel == CHANNELS.index("store")
    hour[is_store] = rng.choice(24, size=int(is_store.sum()), p=_weights(_HOURS_STORE))
    rush = cal.nov11[day] & ~is_store & (rng.random(n) < NOV11_MIDNIGHT_SHARE)
    hour[rush] = 0
    return (hour * 3600 + rng.integers(0, 3600, n)).astype(np.int32)


def _member_attributes(
    rng: np.random.Generator,
    cal: _Calendar,
    idx: NDArray[np.int64],
    reg_day: NDArray[np.int32],
    ids: _UniqueIds,
) -> dict[str, NDArray]:
    """Draw demographic and acquisition attributes (as codes) for a chunk of members."""
    n = len(idx)
    female = rng.random(n) < FEMALE_SHARE
    surname = rng.choice(len(_SURNAMES), size=n, p=_weights([s[2] for s in _SURNAMES]))
    pool = np.where(female, len(_GIVEN_F), len(_GIVEN_M))
    g1 = (rng.random(n) * pool).astype(np.int64)
    g2 = (rng.random(n) * pool).astype(np.int64)
    two_chars = rng.random(n) < 0.65
    age_days = ((18.0 + 47.0 * rng.beta(2.0, 3.2, n)) * 365.25).astype(np.int64)
    has_birthday = rng.random(n) < BIRTHDAY_FILLED
    city = rng.choice(len(_CITIES), size=n, p=_weights([c[1] for c in _CITIES]))
    phone_prefix = rng.integers(0, len(_PHONE_PREFIXES), n)
    has_phone = rng.random(n) < PHONE_FILLED
    has_email = rng.random(n) < EMAIL_FILLED
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=_weights([d[1] for d in _EMAIL_DOMAINS]))
    numeric_email = (domain == 0) & (rng.random(n) < 0.6)
    acq = rng.choice(len(ACQ_CHANNELS), size=n, p=_weights(ACQ_WEIGHTS))
    cost = np.asarray(ACQ_COST_MEAN)[acq] * np.exp(
        ACQ_COST_SIGMA * rng.standard_normal(n) - ACQ_COST_SIGMA**2 / 2
    )
    has_cost = rng.random(n) >= ACQ_COST_MISSING
    consent = rng.random(n) < CONSENT_TRUE

    # preferred order channel: implied by acquisition channel half of the time
    implied = np.asarray(_ACQ_TO_CHANNEL, dtype=np.float64)[acq]
    implied_cdf = np.cumsum(implied, axis=1)
    implied_cdf /= implied_cdf[:, -1:]
    implied_ch = (rng.random(n)[:, None] >= implied_cdf).sum(axis=1)
    general_ch = rng.choice(len(CHANNELS), size=n, p=_weights(CHANNEL_WEIGHTS))
    sticky = rng.random(n) < ACQ_CHANNEL_STICKINESS
    pref = np.where(sticky, implied_ch, general_ch).astype(np.int8)

    stores_per_city = np.array([c[2] for c in _CITIES], dtype=np.int64)
    store_base = np.cumsum(stores_per_city) - stores_per_city
    n_stores = int(stores_per_city.sum())
    own = stores_per_city[city] > 0
    home_store = np.where(
        own,
        store_base[city] + (rng.random(n) * np.maximum(stores_per_city[city], 1)).astype(int),
        rng.integers(0, n_stores, n),
    ).astype(np.int16)

    end_day = np.datetime64(cal.end, "D")
    return {
        "idx": idx,
        "reg_day": reg_day,
        "female": female,
        "surname": surname,
        "g1": g1,
        "g2": np.where(two_chars, g2, -1),
        "birthday": np.where(
            has_birthday, (end_day - age_days).astype(np.int64), np.iinfo(int).min
        ),
        "city": city,
        "phone_prefix": phone_prefix,
        "phone_suffix": (idx * _PHONE_MULT + ids.phone_offset) % 10**8,
        "has_phone": has_phone,
        "has_email": has_email,
        "domain": domain,
        "numeric_email": numeric_email,
        "qq_number": 100_000 + (idx * _QQ_MULT + ids.qq_offset) % 10**9,
        "email_digits": (idx * _EMAIL_MULT + ids.email_offset) % ids.email_mod,
        "acq": acq,
        "cost_cents": np.where(has_cost, np.round(cost * 100).astype(np.int64), -1),
        "consent": consent,
        "pref_channel": pref,
        "home_store": home_store,
    }


# --------------------------------------------------------------------------------------------
# Arrow table construction and CSV output
# --------------------------------------------------------------------------------------------


def _lookup(
    values: Iterable[str], codes: NDArray, mask: NDArray[np.bool_] | None = None
) -> pa.Array:
    """Map integer codes to strings (null where ``mask`` is False or code < 0)."""
    dictionary = pa.array(list(values), pa.string())
    codes = np.asarray(codes, dtype=np.int64)
    valid = codes >= 0
    if mask is not None:
        valid &= mask
    return dictionary.take(pa.array(np.where(valid, codes, 0), mask=~valid))


def _padded(prefix: str, numbers: NDArray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _money(cents: NDArray[np.int64], mask: NDArray[np.bool_] | None = None) -> pa.Array:
    """Cents as a decimal128(18, 2) array (written as e.g. ``129.00``)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    validity = None
    if mask is not None:
        validity = pa.array(mask, pa.bool_()).buffers()[1]
    null_count = -1 if mask is not None else 0
    return pa.Array.from_buffers(
        pa.decimal128(18, 2), len(cents), [validity, pa.py_buffer(words)], null_count=null_count
    )


def _members_table(mem: dict[str, NDArray], cal: _Calendar, id_width: int) -> pa.Table:
    n = len(mem["idx"])
    start = np.datetime64(cal.start, "D")
    female = mem["female"]
    given_f = [g[0] for g in _GIVEN_F]
    given_m = [g[0] for g in _GIVEN_M]
    pin_f = [g[1] for g in _GIVEN_F]
    pin_m = [g[1] for g in _GIVEN_M]
    g1, g2 = mem["g1"], mem["g2"]
    surname = _lookup([s[0] for s in _SURNAMES], mem["surname"])
    given1 = pc.if_else(female, _lookup(given_f, g1), _lookup(given_m, g1))
    given2 = pc.if_else(
        female,
        _lookup(given_f + [""], np.where(g2 < 0, len(given_f), g2)),
        _lookup(given_m + [""], np.where(g2 < 0, len(given_m), g2)),
    )
    name = pc.binary_join_element_wise(surname, given1, given2, "")

    py1 = pc.if_else(female, _lookup(pin_f, g1), _lookup(pin_m, g1))
    py2 = pc.if_else(
        female,
        _lookup(pin_f + [""], np.where(g2 < 0, len(pin_f), g2)),
        _lookup(pin_m + [""], np.where(g2 < 0, len(pin_m), g2)),
    )
    sur_py = _lookup([s[1] for s in _SURNAMES], mem["surname"])
    digit_str = pa.array(mem["email_digits"]).cast(pa.string())
    local = pc.if_else(
        pa.array(mem["numeric_email"]),
        pa.array(mem["qq_number"]).cast(pa.string()),
        pc.binary_join_element_wise(sur_py, py1, py2, digit_str, ""),
    )
    domain = _lookup([d[0] for d in _EMAIL_DOMAINS], mem["domain"])
    email = pc.binary_join_element_wise(local, domain, "@")
    email = pc.if_else(pa.array(mem["has_email"]), email, pa.nulls(n, pa.string()))

    phone = pc.binary_join_element_wise(
        _lookup(_PHONE_PREFIXES, mem["phone_prefix"]),
        pc.utf8_lpad(pa.array(mem["phone_suffix"]).cast(pa.string()), 8, "0"),
        "",
    )
    phone = pc.if_else(pa.array(mem["has_phone"]), phone, pa.nulls(n, pa.string()))

    bday = mem["birthday"]
    has_bday = bday != np.iinfo(int).min
    birthday = pa.array(np.where(has_bday, bday, 0).astype("datetime64[D]"), mask=~has_bday)

    return pa.table(
        {
            "member_id": _padded("M", mem["idx"] + 1, id_width),
            "registered_at": pa.array(start + mem["reg_day"].astype(np.int64)),
            "name": name,
            "gender": pc.if_else(pa.array(female), "F", "M"),
            "birthday": birthday,
            "city": _lookup([c[0] for c in _CITIES], mem["city"]),
            "phone": phone,
            "email": email,
            "acquisition_channel": _lookup(ACQ_CHANNELS, mem["acq"]),
            "acquisition_cost": _money(mem["cost_cents"], mem["cost_cents"] >= 0),
            "marketing_consent": pc.if_else(pa.array(mem["consent"]), "true", "false"),
        }
    )


def _concat(parts: list[dict[str, NDArray]]) -> dict[str, NDArray]:
    keys = ("day", "sec", "member", "cents", "status", "channel", "store", "coupon")
    if not parts:
        empty = {
            "day": np.int32,
            "sec": np.int32,
            "member": np.int64,
            "cents": np.int64,
            "status": np.int8,
            "channel": np.int8,
            "store": np.int16,
            "coupon": np.int8,
        }
        return {k: np.empty(0, dtype=empty[k]) for k in keys}
    out: dict[str, NDArray] = {}
    for k in keys:
        out[k] = np.concatenate([p[k] for p in parts])
        for p in parts:
            p[k] = np.empty(0)  # free chunk memory early
    return out


def _sort_orders(orders: dict[str, NDArray]) -> dict[str, NDArray]:
    """Stable sort by timestamp (ties keep generation order, which is deterministic)."""
    key = orders["day"].astype(np.int64) * 86_400 + orders["sec"]
    perm = np.argsort(key, kind="stable")
    del key
    for k in list(orders):
        orders[k] = orders[k][perm]
    return orders


def _orders_tables(orders: dict[str, NDArray], cal: _Calendar, id_width: int) -> Iterable[pa.Table]:
    n = len(orders["day"])
    oid_width = max(9, len(str(n)))
    start_s = np.datetime64(cal.start, "s").astype(np.int64)
    for lo in range(0, max(n, 1), WRITE_BLOCK_ROWS):
        hi = min(n, lo + WRITE_BLOCK_ROWS)
        if hi <= lo:
            break
        sl = slice(lo, hi)
        ts = start_s + orders["day"][sl].astype(np.int64) * 86_400 + orders["sec"][sl]
        store = orders["store"][sl]
        yield pa.table(
            {
                "order_id": _padded("O", np.arange(lo + 1, hi + 1), oid_width),
                "member_id": _padded("M", orders["member"][sl] + 1, id_width),
                "ordered_at": pa.array(ts.astype("datetime64[s]")),
                "amount": _money(orders["cents"][sl]),
                "status": _lookup(_STATUS, orders["status"][sl]),
                "channel": _lookup(CHANNELS, orders["channel"][sl]),
                "store_id": pc.if_else(
                    pa.array(store >= 0),
                    _padded("S", store.astype(np.int64) + 1, 3),
                    pa.nulls(hi - lo, pa.string()),
                ),
                "coupon_code": _lookup([c[0] for c in COUPONS], orders["coupon"][sl]),
            }
        )


_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", delimiter=",")


def _write_header(fh: IO[bytes], columns: Sequence[str]) -> None:
    fh.write((",".join(columns) + "\n").encode("utf-8"))


def _write_table(fh: IO[bytes], table: pa.Table) -> None:
    pacsv.write_csv(table, fh, _WRITE_OPTIONS)


class _AtomicFile:
    """Binary file written under a temporary name and moved into place on ``commit``.

    Leaving the context without ``commit`` (e.g. on an exception) deletes the temporary file
    and leaves any previous target untouched.

    Attributes
    ----------
    target : Path
        Final file name.
    tmp : Path
        Temporary file name in the same directory (so ``os.replace`` is atomic).
    fh : binary file
        Open handle of the temporary file.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        self.fh: IO[bytes] = open(self.tmp, "wb")
        self._committed = False

    def __enter__(self) -> _AtomicFile:
        return self

    def commit(self) -> None:
        """Flush, close and atomically move the temporary file to the target."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.target)
        self._committed = True

    def __exit__(self, *exc: object) -> None:
        if not self.fh.closed:
            self.fh.close()
        if not self._committed:
            self.tmp.unlink(missing_ok=True)


def _cdnow_path(name: str) -> Path:
    try:
        return Path(str(resources.files("lifetimes") / "datasets" / name))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        import lifetimes

        return Path(lifetimes.__file__).parent / "datasets" / name
