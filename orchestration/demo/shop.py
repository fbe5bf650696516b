"""The simulated retailer: a Chinese omni-channel shop whose buyers follow BG/NBD.

True process (time unit: days of operational time, which averages to one calendar day over
the window; see :mod:`orchestration.demo.seasons`):

* purchase rate ``lambda ~ Gamma(shape=BTYD_R, rate=BTYD_ALPHA)`` per buyer,
* dropout probability after each repeat purchase ``p ~ Beta(BTYD_A, BTYD_B)``,
* order value ``z ~ Gamma(GG_P, rate=nu)`` with ``nu ~ Gamma(GG_Q, rate=GG_GAMMA)``.

The purchase process is drawn by :mod:`ml.simulate` (``bgnbd_buyers``, ``bgnbd_purchases``),
the same code the model tests use. On top of it the shop adds what real order files have:
prospects who never buy, a first-purchase delay after registration, same-day second orders,
cancelled and refunded orders, channels, stores, coupons and times of day.

Orders are generated in member chunks (``CHUNK_MEMBERS``), each with its own random stream
derived from ``(seed, chunk index)``. Members are streamed to disk chunk by chunk; orders are
kept in compact numeric form (about 30 bytes per order), sorted globally by time, given
sequential order ids and streamed to CSV in row blocks.

Before sorting, :mod:`orchestration.demo.campaign` (with its own random stream) adds a past
win-back campaign with a known uplift: it redraws its members' orders in the campaign's
results window and writes the send log and the coupon events beside the orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ml import simulate
from orchestration.demo.csv_writer import (
    MEMBERS_COLUMNS,
    ORDERS_COLUMNS,
    DemoDataSummary,
    csv_writer,
    landing_files,
    lookup,
    money,
    padded,
)
from orchestration.demo.members import (
    CHANNEL_WEIGHTS,
    CHANNELS,
    STORE,
    UniqueIds,
    member_attributes,
    members_table,
)
from orchestration.demo.seasons import Calendar, registration_days, seconds_of_day, weights

if TYPE_CHECKING:
    from orchestration.demo.campaign import PastCampaign

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

PREFERRED_CHANNEL_LOYALTY = 0.8
"""Probability that an order uses the customer's preferred channel."""

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

CAMPAIGN_COUPON = -2
"""``coupon`` of an order paid with the member's own campaign coupon (-1: no coupon, 0..4:
an index into ``COUPONS``); the code is the campaign's (:mod:`orchestration.demo.campaign`)."""

STATUSES = ("paid", "cancelled", "refunded")
_PAID, _CANCELLED, _REFUNDED = 0, 1, 2

#: Compact numeric order columns and their dtypes.
_ORDER_DTYPES: dict[str, type] = {
    "day": np.int32,
    "sec": np.int32,
    "member": np.int64,
    "cents": np.int64,
    "status": np.int8,
    "channel": np.int8,
    "store": np.int16,
    "coupon": np.int8,
}

#: File in a landing folder written by `generate_demo_data` (so `make demo` knows it may
#: regenerate the folder for a new day; it never touches a folder without it).
DEMO_MARKER = ".crm-demo"


def default_end_date() -> date:
    """Yesterday in the business time zone (CRM_TIMEZONE): the pipeline's default as-of."""
    from orchestration.settings import load_settings

    return datetime.now(load_settings().tz).date() - timedelta(days=1)


def generate_demo_data(
    out_dir: Path,
    *,
    members: int = 20_000,
    seed: int = 42,
    end: date | None = None,
    years: float = 2.0,
    campaign: bool = True,
    progress: Callable[[str], None] | None = None,
) -> DemoDataSummary:
    """Simulate members and orders of a Chinese omni-channel retailer, and a past campaign.

    Parameters
    ----------
    out_dir : Path
        Output directory; created if missing. ``orders.csv`` and ``members.csv`` (and
        ``campaign_sends.csv``, ``coupon_events.csv``) in it are replaced atomically
        (written under a temporary name, then ``os.replace``).
    members : int, default 20_000
        Number of members to simulate (about 85 % of them become buyers).
    seed : int, default 42
        Random seed. The same ``(members, seed, end, years)`` gives byte-identical files.
    end : date, optional
        Last possible order date. Defaults to yesterday in CRM_TIMEZONE.
    years : float, default 2.0
        Length of the window (members register and order in ``(end - years, end]``).
    campaign : bool, default True
        Also simulate a past win-back campaign with a known true uplift per priority group
        (:mod:`orchestration.demo.campaign`): its members' orders in the campaign's results
        window are redrawn, ``campaign_sends.csv`` and ``coupon_events.csv`` are written
        (header only when nobody qualifies) and the truth goes to
        ``.crm-demo-campaign.json``. Without it, the files of an earlier demo campaign in
        ``out_dir`` are removed, and the orders are exactly the shop's.
    progress : callable, optional
        Called with short human-readable progress messages.

    Returns
    -------
    DemoDataSummary
        Row counts, order date range, written files and the campaign's truth.

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
    from orchestration.demo import campaign as past  # builds on this module's order columns

    say = progress or (lambda _msg: None)
    cal = Calendar.build(end or default_end_date(), years)
    out_dir = Path(out_dir)
    orders_path, members_path = landing_files(out_dir)
    # send channel per member (consent and contact details), for the campaign's audience
    channels = np.full(members if campaign else 0, -1, dtype=np.int8)

    global_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    reg_day = registration_days(global_rng, members, cal)
    ids = UniqueIds.draw(global_rng, members)
    id_width = max(7, len(str(members)))
    n_chunks = (members + CHUNK_MEMBERS - 1) // CHUNK_MEMBERS
    say(
        f"simulating {members:,} members over {cal.start} .. {cal.end} "
        f"({cal.n_days} days, {n_chunks} chunk(s))"
    )

    parts: list[dict[str, NDArray]] = []
    with csv_writer(members_path, MEMBERS_COLUMNS) as write_members:
        for ci in range(n_chunks):
            lo, hi = ci * CHUNK_MEMBERS, min(members, (ci + 1) * CHUNK_MEMBERS)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, ci)))
            mem = member_attributes(
                rng, cal, np.arange(lo, hi, dtype=np.int64), reg_day[lo:hi], ids
            )
            write_members(members_table(mem, cal, id_width))
            if campaign:
                channels[lo:hi] = past.contact_channels(mem)
            parts.append(_simulate_orders(rng, cal, mem))
            n_chunk_orders = len(parts[-1]["day"])
            say(f"chunk {ci + 1}/{n_chunks}: members {lo:,}-{hi:,}, {n_chunk_orders:,} orders")
        orders = _concat(parts)
        del parts
        sim = None
        if campaign:
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
            sim = past.simulate_past_campaign(rng, cal, orders, channels, id_width=id_width)
            del channels
            t = sim.truth
            say(
                f"past campaign {t.campaign_id}: {sum(t.treated):,} sent, "
                f"{sum(t.control):,} held out"
            )
        n_orders = len(orders["day"])
        say(f"sorting {n_orders:,} orders")
        orders = _sort_orders(orders)
        say(f"writing {orders_path}")
        with csv_writer(orders_path, ORDERS_COLUMNS) as write_orders:
            for table in _orders_tables(orders, cal, id_width, sim):
                write_orders(table)
    files = [orders_path, members_path]
    if sim is not None:
        files += past.write_campaign_files(out_dir, sim, orders, cal, id_width)
    else:
        past.remove_campaign_files(out_dir)

    first = last = None
    if n_orders:
        first, last = cal.date_of(orders["day"][0]), cal.date_of(orders["day"][-1])
    say(f"done: {members:,} members, {n_orders:,} orders")
    # marks the folder as generated demo data: `make demo` may regenerate it (a new day)
    (out_dir / DEMO_MARKER).write_text(f"demo data up to {cal.end}\n", encoding="utf-8")
    truth = sim.truth if sim is not None else None
    return DemoDataSummary(out_dir, members, n_orders, first, last, files, truth)


# --------------------------------------------------------------------------------------------
# Orders of one chunk of members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Occasions:
    """Purchase occasions of the chunk's buyers, customer-major, chronological per buyer."""

    owner: NDArray[np.int64]  # buyer index (into the chunk's buyers)
    day: NDArray[np.int32]
    first: NDArray[np.bool_]  # the buyer's first purchase
    first_day: NDArray[np.int64]  # per buyer
    last_day: NDArray[np.int32]  # per buyer


def _purchase_occasions(
    rng: np.random.Generator, cal: Calendar, reg_day: NDArray[np.int32]
) -> tuple[NDArray[np.int64], _Occasions]:
    """Who buys, when first, and the BG/NBD repeat purchases (in operational time)."""
    n = len(reg_day)
    kind = rng.random(n)
    delay = np.zeros(n, dtype=np.int64)
    soon = kind >= FIRST_ORDER_SAME_DAY
    late = kind >= FIRST_ORDER_SAME_DAY + FIRST_ORDER_SOON
    delay[soon] = np.ceil(rng.exponential(FIRST_ORDER_SOON_MEAN_DAYS, soon.sum()))
    delay[late] = np.ceil(rng.exponential(FIRST_ORDER_LATE_MEAN_DAYS, late.sum()))
    first_day = reg_day.astype(np.int64) + delay
    buyers = np.flatnonzero((rng.random(n) >= PROSPECT_SHARE) & (first_day < cal.n_days))
    nb = len(buyers)
    d1 = first_day[buyers]

    # the first purchase at a random moment of its day; repeats until the window ends
    lam, p_drop = simulate.bgnbd_buyers(rng, nb, BTYD_R, BTYD_ALPHA, BTYD_A, BTYD_B)
    u1 = cal.op_clock[d1] + rng.random(nb) * cal.season[d1]
    window = np.maximum(cal.op_clock[-1] - u1, 0.0)
    repeats = simulate.bgnbd_purchases(rng, lam, p_drop, window)
    rep_day = cal.day_of(u1[repeats.owner] + repeats.offset)

    n_occ = 1 + repeats.count
    owner = np.repeat(np.arange(nb), n_occ)
    first = np.zeros(len(owner), dtype=bool)
    first[np.cumsum(n_occ) - n_occ] = True
    day = np.empty(len(owner), dtype=np.int32)
    day[first] = d1
    day[~first] = rep_day
    occasions = _Occasions(owner, day, first, d1, day[np.cumsum(n_occ) - 1])
    return buyers, occasions


def _simulate_orders(
    rng: np.random.Generator, cal: Calendar, mem: dict[str, NDArray]
) -> dict[str, NDArray]:
    """Order rows (compact numeric columns) of a chunk's members, drawn after their attributes."""
    buyers, occ = _purchase_occasions(rng, cal, mem["reg_day"])
    nu = rng.gamma(GG_Q, 1.0 / GG_GAMMA, len(buyers))
    pref = mem["pref_channel"][buyers]
    home_store = mem["home_store"][buyers]

    # same-day second paid orders
    n_occ = len(occ.owner)
    extra = rng.random(n_occ) < SAME_DAY_EXTRA_SHARE
    paid_owner = np.concatenate([occ.owner, occ.owner[extra]])
    paid_day = np.concatenate([occ.day, occ.day[extra]])
    paid_first = np.concatenate([occ.first, np.zeros(int(extra.sum()), dtype=bool)])
    paid_channel = _order_channels(rng, pref[occ.owner])
    paid_channel = np.concatenate([paid_channel, paid_channel[extra]])
    paid_sec = seconds_of_day(rng, cal, occ.day, paid_channel[:n_occ] == STORE)
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
    d1 = occ.first_day[r_owner]
    span = occ.last_day[r_owner] - d1 + 1
    refd_day = (d1 + (rng.random(len(refd)) * span).astype(np.int64)).astype(np.int32)
    refd_channel = paid_channel[refd]
    refd_sec = seconds_of_day(rng, cal, refd_day, refd_channel == STORE)

    owner = np.concatenate([paid_owner, paid_owner[canc], r_owner])
    day = np.concatenate([paid_day, paid_day[canc], refd_day])
    channel = np.concatenate([paid_channel, paid_channel[canc], refd_channel])
    first = np.concatenate([paid_first, np.zeros(len(canc) + len(refd), dtype=bool)])
    status = np.repeat(
        np.array([_PAID, _CANCELLED, _REFUNDED], np.int8), [n_paid, len(canc), len(refd)]
    )
    gross = rng.standard_gamma(GG_P, len(owner)) / nu[owner]
    coupon, cents = _coupons(rng, cal, day, first, gross)
    return {
        "day": day.astype(np.int32),
        "sec": np.concatenate([paid_sec, canc_sec.astype(np.int32), refd_sec]).astype(np.int32),
        "member": mem["idx"][buyers][owner].astype(np.int64),
        "cents": cents,
        "status": status,
        "channel": channel.astype(np.int8),
        "store": np.where(channel == STORE, home_store[owner], -1).astype(np.int16),
        "coupon": coupon,
    }


def _coupons(
    rng: np.random.Generator,
    cal: Calendar,
    day: NDArray[np.int32],
    first: NDArray[np.bool_],
    gross: NDArray[np.float64],
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """Coupon code (-1: none) and net amount in cents of each order."""
    n = len(day)
    gross_cents = np.maximum(np.round(gross * 100.0).astype(np.int64), MIN_GROSS_CENTS)
    coupon = np.full(n, -1, dtype=np.int8)
    take = rng.random(n)
    rules = (
        (_C_D11, cal.d11[day]),
        (_C_CNY, cal.cny[day]),
        (_C_618, cal.m618[day]),
        (_C_NEW, first),
        (_C_VIP, np.ones(n, dtype=bool)),
    )
    for code, eligible in rules:
        min_cents = COUPONS[code][2] * 100
        hit = (
            (coupon < 0) & eligible & (gross_cents >= min_cents) & (take < COUPON_TAKE_RATES[code])
        )
        coupon[hit] = code
    discount = np.array([c[1] * 100 for c in COUPONS] + [0], dtype=np.int64)[coupon]
    return coupon, np.maximum(gross_cents - discount, 0)


def _order_channels(rng: np.random.Generator, pref: NDArray[np.int8]) -> NDArray[np.int8]:
    """Preferred channel most of the time, otherwise a draw from the overall mix."""
    other = rng.choice(len(CHANNELS), size=len(pref), p=weights(CHANNEL_WEIGHTS))
    loyal = rng.random(len(pref)) < PREFERRED_CHANNEL_LOYALTY
    return np.where(loyal, pref, other).astype(np.int8)


# --------------------------------------------------------------------------------------------
# All orders: concatenate, sort, format
# --------------------------------------------------------------------------------------------


def _concat(parts: list[dict[str, NDArray]]) -> dict[str, NDArray]:
    out: dict[str, NDArray] = {}
    for k, dtype in _ORDER_DTYPES.items():
        out[k] = np.concatenate([p[k] for p in parts]) if parts else np.empty(0, dtype=dtype)
        for p in parts:
            p[k] = np.empty(0)  # free chunk memory early
    return out


def _sort_orders(orders: dict[str, NDArray]) -> dict[str, NDArray]:
    """Stable sort by timestamp (ties keep generation order, which is deterministic)."""
    key = orders["day"].astype(np.int64) * 86_400 + orders["sec"]
    perm = np.argsort(key, kind="stable")
    del key
    for k in list(orders):  # one column at a time: the unsorted column is freed at once
        orders[k] = orders[k][perm]
    return orders


def order_id_width(n_orders: int) -> int:
    """Digits of the order ids (``O`` + zero-padded row number) in a file of ``n_orders``."""
    return max(9, len(str(n_orders)))


def _orders_tables(
    orders: dict[str, NDArray],
    cal: Calendar,
    id_width: int,
    campaign: PastCampaign | None = None,
) -> Iterable[pa.Table]:
    """Blocks of ``orders.csv`` rows (campaign-coupon orders carry the member's own code)."""
    n = len(orders["day"])
    oid_width = order_id_width(n)
    start_s = np.datetime64(cal.start, "s").astype(np.int64)
    for lo in range(0, n, WRITE_BLOCK_ROWS):
        hi = min(n, lo + WRITE_BLOCK_ROWS)
        sl = slice(lo, hi)
        ts = start_s + orders["day"][sl].astype(np.int64) * 86_400 + orders["sec"][sl]
        store = orders["store"][sl]
        coupon = orders["coupon"][sl]
        coupon_code = lookup([c[0] for c in COUPONS], coupon)
        own = coupon == CAMPAIGN_COUPON
        if campaign is not None and own.any():
            codes = campaign.codes_of(orders["member"][sl][own])
            coupon_code = pc.replace_with_mask(coupon_code, pa.array(own), codes)
        yield pa.table(
            {
                "order_id": padded("O", np.arange(lo + 1, hi + 1), oid_width),
                "member_id": padded("M", orders["member"][sl] + 1, id_width),
                "ordered_at": pa.array(ts.astype("datetime64[s]")),
                "amount": money(orders["cents"][sl]),
                "status": lookup(STATUSES, orders["status"][sl]),
                "channel": lookup(CHANNELS, orders["channel"][sl]),
                "store_id": pc.if_else(
                    pa.array(store >= 0),
                    padded("S", store.astype(np.int64) + 1, 3),
                    pa.nulls(hi - lo, pa.string()),
                ),
                "coupon_code": coupon_code,
            }
        )
