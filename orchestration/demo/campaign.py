"""A simulated past win-back campaign with a known true uplift per priority group.

The demo shop sent an SMS (or, without a phone number, an e-mail) coupon campaign
``SEND_DAYS_BEFORE_END`` days before the data's last day (the pipeline's as-of), so its
``WINDOW_DAYS`` results window ``[send day, send day + WINDOW_DAYS)`` is closed at the as-of.

Who: members who were *lapsed* on the send day (at least one paid order before it, none in
the ``LAPSED_DAYS`` before it) and could be contacted (marketing consent and a phone number
or e-mail address); up to ``MAX_MEMBERS`` of them, drawn with the seed. They are ranked by
past paid orders, then recency, into ``PRIORITY_GROUPS`` equal priority groups (group 1 the
heaviest and most recent buyers); ``CONTROL_SHARE`` of each group is held out at random.

The truth is exact by construction. For every campaign member the shop simulator's orders
inside the window are removed and the member's buying in the window is drawn afresh: a member
of group ``g`` buys with probability ``BASE_RATES[g]``, a treated member whose message was
delivered with ``BASE_RATES[g] + UPLIFTS[g]`` (bounced and failed messages reached nobody:
no uplift). A buyer gets one paid order. A delivered treated buyer redeems the campaign
coupon in ``COUPON_USE`` of the cases, then buys within the coupon's validity (on or after
the send, for at least the threshold); every other buyer buys on a uniformly drawn day of
the window, without a coupon. Orders outside the window are untouched.

Output (landing contract): ``campaign_sends.csv`` (one row per campaign member, treated and
control), ``coupon_events.csv`` (issued, redeemed, expired) and, for tests and read-outs, the
truth in ``.crm-demo-campaign.json`` (ids of the campaign, rates and counts only; no member
data). The caused orders are part of ``orders.csv`` (written by :mod:`orchestration.demo.shop`,
whose order columns this module edits in place).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from orchestration.demo.csv_writer import (
    CAMPAIGN_SENDS_COLUMNS,
    COUPON_EVENTS_COLUMNS,
    csv_writer,
    lookup,
    money,
    padded,
)
from orchestration.demo.members import STORE
from orchestration.demo.seasons import Calendar, seconds_of_day
from orchestration.demo.shop import (
    _ORDER_DTYPES,
    _PAID,
    CAMPAIGN_COUPON,
    GG_P,
    MIN_GROSS_CENTS,
    WRITE_BLOCK_ROWS,
    order_id_width,
)
from orchestration.lib.files import write_atomic

LIST_NAME = "win_back"
"""The campaign's list (``campaign_id`` is ``<list>-<send date as YYYYMMDD>``)."""

CODE_PREFIX = "WB"
"""Prefix of the members' coupon codes (``WB`` + 10 upper-case hex digits of a SHA-256)."""

SEND_DAYS_BEFORE_END = 90
WINDOW_DAYS = 60
"""Sent 90 days before the last day; results read over the 60 days from the send day."""

LAPSED_DAYS = 120
"""Lapsed on the send day: no paid order in the 120 days before it (and one before that)."""

MAX_MEMBERS = 2_500
PRIORITY_GROUPS = 5
CONTROL_SHARE = 0.25

BASE_RATES: tuple[float, ...] = (0.10, 0.08, 0.06, 0.05, 0.04)
UPLIFTS: tuple[float, ...] = (0.12, 0.08, 0.05, 0.02, 0.0)
"""Probability of buying in the window per priority group, and the added probability for a
treated member whose message was delivered (the true uplift)."""

SEND_TIME = time(10, 0)
"""Time of day of the send (and of the coupons' issue)."""

UNDELIVERED_SHARE = 0.03
"""Share of treated members whose message bounced or failed (half each)."""

COUPON_USE = 0.8
"""Share of delivered treated buyers who redeem the campaign coupon."""

FACE_VALUE_CENTS = 3_000
THRESHOLD_CENTS = 19_900
VALIDITY_DAYS = 14
"""The coupon: 30 yuan off a basket of at least 199, until the send day + 14 at 23:59:59."""

TOP_UP_CENTS = 3_000
"""A coupon basket below the threshold is topped up to threshold + U(0, 30 yuan)."""

SEND_CHANNELS: tuple[str, ...] = ("sms", "email")
CHANNEL_CODES: tuple[str, ...] = ("SMS-WB01", "EML-WB01")
COST_CENTS: tuple[int, ...] = (5, 1)
"""Channels of the send (sms with a phone number, else email), their coupon channel codes and
costs per message (yuan cents, as campaigns.yml's cost_per_contact)."""

SEND_STATUSES: tuple[str, ...] = ("delivered", "opened", "clicked", "bounced", "failed")
_DELIVERED_WEIGHTS: tuple[tuple[float, float, float], ...] = (
    (0.85, 0.0, 0.15),  # sms: delivery receipts and link clicks, no opens
    (0.45, 0.40, 0.15),  # email
)
_BOUNCED, _FAILED = 3, 4

COUPON_EVENTS: tuple[str, ...] = ("issued", "redeemed", "expired")
_ISSUED, _REDEEMED, _EXPIRED = range(3)

TRUTH_FILE = ".crm-demo-campaign.json"
"""The truth, beside the landing files (a dot file: never read as landing data)."""

SENDS_FILE = "campaign_sends.csv"
EVENTS_FILE = "coupon_events.csv"

_SCAN_BLOCK = WRITE_BLOCK_ROWS
"""Order rows per block when scanning all orders (bounds temporary memory)."""


@dataclass(frozen=True)
class CampaignTruth:
    """The true process of the simulated campaign, and what it realised.

    Attributes
    ----------
    campaign_id, list_name : str
        ``win_back-YYYYMMDD`` (the send date) and ``win_back``.
    send_day : date
        Day of the send (``as_of - SEND_DAYS_BEFORE_END``).
    sent_at : datetime
        Time of the send and of the coupons' issue (local, naive).
    window_days : int
        Results window: ``[send_day, send_day + window_days)``.
    as_of : date
        Last day of the data.
    control_share : float
        Share of each priority group held out.
    base_rate, uplift : tuple of float
        Per priority group (index 0 = group 1): probability of buying in the window, and
        the added probability for a delivered treated member.
    treated, delivered, control : tuple of int
        Members per group: sent (whatever the status), delivered (not bounced or failed),
        held out.
    treated_buyers, delivered_buyers, control_buyers, redeemed : tuple of int
        Realised buyers in the window per group, and coupons redeemed.
    """

    campaign_id: str
    list_name: str
    send_day: date
    sent_at: datetime
    window_days: int
    as_of: date
    control_share: float
    base_rate: tuple[float, ...]
    uplift: tuple[float, ...]
    treated: tuple[int, ...]
    delivered: tuple[int, ...]
    control: tuple[int, ...]
    treated_buyers: tuple[int, ...]
    delivered_buyers: tuple[int, ...]
    control_buyers: tuple[int, ...]
    redeemed: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """The truth as JSON-ready values (what ``.crm-demo-campaign.json`` holds)."""
        groups = [
            {
                "priority_group": g + 1,
                "base_rate": self.base_rate[g],
                "uplift": self.uplift[g],
                "treated": self.treated[g],
                "delivered": self.delivered[g],
                "control": self.control[g],
                "treated_buyers": self.treated_buyers[g],
                "delivered_buyers": self.delivered_buyers[g],
                "control_buyers": self.control_buyers[g],
                "redeemed": self.redeemed[g],
            }
            for g in range(len(self.base_rate))
        ]
        return {
            "campaign_id": self.campaign_id,
            "list_name": self.list_name,
            "send_day": self.send_day.isoformat(),
            "sent_at": self.sent_at.isoformat(sep=" "),
            "window_days": self.window_days,
            "window_end_exclusive": (self.send_day + timedelta(days=self.window_days)).isoformat(),
            "as_of": self.as_of.isoformat(),
            "control_share": self.control_share,
            "uplift_applies_to": (
                "treated members whose message was delivered (delivered, opened, clicked); "
                "bounced and failed members buy at the base rate"
            ),
            "coupon": {
                "face_value": FACE_VALUE_CENTS / 100,
                "threshold": THRESHOLD_CENTS / 100,
                "validity_days": VALIDITY_DAYS,
                "use_share": COUPON_USE,
            },
            "groups": groups,
            "total": {
                k: sum(getattr(self, k))
                for k in (
                    "treated",
                    "delivered",
                    "control",
                    "treated_buyers",
                    "delivered_buyers",
                    "control_buyers",
                    "redeemed",
                )
            },
        }


@dataclass(frozen=True)
class PastCampaign:
    """The campaign's members and what happened to them (arrays aligned, by member index).

    Attributes
    ----------
    truth : CampaignTruth
        The true rates and the realised counts.
    member : ndarray of int64
        Member indices (0-based, sorted) of everyone in the campaign, treated and control.
    group : ndarray of int8
        Priority group, 1 .. ``PRIORITY_GROUPS``.
    control : ndarray of bool
        Held out (not sent).
    channel : ndarray of int8
        Index into ``SEND_CHANNELS``.
    status : ndarray of int8
        Index into ``SEND_STATUSES`` (-1 for control members).
    coupon_code : ndarray of str
        The member's coupon code (empty for control members).
    """

    truth: CampaignTruth
    member: NDArray[np.int64]
    group: NDArray[np.int8]
    control: NDArray[np.bool_]
    channel: NDArray[np.int8]
    status: NDArray[np.int8]
    coupon_code: NDArray[np.str_]

    def codes_of(self, member: NDArray[np.int64]) -> pa.Array:
        """Coupon codes of campaign members, given as member indices."""
        return pa.array(self.coupon_code[np.searchsorted(self.member, member)])


def contact_channels(mem: dict[str, NDArray]) -> NDArray[np.int8]:
    """Send channel of each member of a chunk (index into ``SEND_CHANNELS``; -1: none).

    ``mem`` holds the member attributes of :func:`orchestration.demo.members.member_attributes`:
    only members with marketing consent, by sms with a phone number, else by e-mail.
    """
    channel = np.where(mem["has_phone"], 0, np.where(mem["has_email"], 1, -1))
    return np.where(mem["consent"], channel, -1).astype(np.int8)


def coupon_code(campaign_id: str, member_id: str, length: int = 10) -> str:
    """The member's coupon code: ``WB`` + upper-case hex of sha256(campaign_id + member_id)."""
    digest = hashlib.sha256(f"{campaign_id}{member_id}".encode()).hexdigest()
    return CODE_PREFIX + digest[:length].upper()


def simulate_past_campaign(
    rng: np.random.Generator,
    cal: Calendar,
    orders: dict[str, NDArray],
    channels: NDArray[np.int8],
    *,
    id_width: int,
    max_members: int = MAX_MEMBERS,
) -> PastCampaign:
    """Choose the campaign's members, send, and redraw their buying in the results window.

    Parameters
    ----------
    rng : numpy.random.Generator
        The campaign's own random stream.
    cal : Calendar
        The generation window (its last day is the as-of).
    orders : dict of ndarray
        All orders in the shop's compact numeric columns (any order). Edited in place: the
        campaign members' orders in the window are removed and the drawn ones appended at the
        end (unsorted; campaign-coupon orders have coupon ``CAMPAIGN_COUPON``).
    channels : ndarray of int8
        Send channel of every member (:func:`contact_channels`), indexed by member index.
    id_width : int
        Digits of the member ids (``M`` + zero-padded number), for the coupon codes.
    max_members : int, default MAX_MEMBERS
        Most members in the campaign (treated and control).

    Returns
    -------
    PastCampaign
        Members, groups, control flags, send status and coupon codes, and the truth.
    """
    send = cal.n_days - 1 - SEND_DAYS_BEFORE_END  # day index of the send (may be < 0)
    send_day = cal.end - timedelta(days=SEND_DAYS_BEFORE_END)
    campaign_id = f"{LIST_NAME}-{send_day:%Y%m%d}"
    n_members = len(channels)

    # lapsed and contactable members on the send day
    candidates = np.flatnonzero(_lapsed(orders, send, n_members) & (channels >= 0))
    k = min(max_members, len(candidates))
    chosen = np.sort(rng.choice(candidates, size=k, replace=False)).astype(np.int64)

    # the campaign members' own orders (few): ranking inputs and the window to redraw
    rows = _rows_of(orders, chosen, n_members)
    mine = {key: col[rows] for key, col in orders.items()}
    local = np.searchsorted(chosen, mine["member"])
    past = (mine["status"] == _PAID) & (mine["day"] < send)
    n_past = np.bincount(local[past], minlength=k)
    spend = np.bincount(local[past], weights=mine["cents"][past], minlength=k) / np.maximum(
        n_past, 1
    )
    # the latest past paid order of each member (everyone has one): its day, channel, store
    hist = {key: col[past] for key, col in mine.items()}
    by_time = np.lexsort((hist["sec"], hist["day"], local[past]))
    owner = local[past][by_time]
    latest = by_time[np.r_[owner[1:] != owner[:-1], True][: len(owner)]]
    last_day = hist["day"][latest].astype(np.int64)
    last_channel = hist["channel"][latest]
    last_store = hist["store"][latest]

    # priority groups: more past orders, then more recent, first (ties at random)
    rank = np.lexsort((rng.random(k), -last_day, -n_past))
    group = np.empty(k, dtype=np.int8)
    group[rank] = 1 + np.arange(k) * PRIORITY_GROUPS // max(k, 1)
    control = np.zeros(k, dtype=bool)
    for g in range(1, PRIORITY_GROUPS + 1):
        in_group = np.flatnonzero(group == g)
        n_control = int(round(CONTROL_SHARE * len(in_group)))
        control[rng.permutation(in_group)[:n_control]] = True
    treated = ~control

    # the send: channel, status and coupon code
    channel = channels[chosen].astype(np.int8)
    u_status, u_bounce = rng.random(k), rng.random(k)
    cdf = np.cumsum(np.asarray(_DELIVERED_WEIGHTS), axis=1)[channel]
    status = (u_status[:, None] >= cdf[:, :-1]).sum(axis=1).astype(np.int8)
    undelivered = rng.random(k) < UNDELIVERED_SHARE
    status[undelivered] = np.where(u_bounce[undelivered] < 0.5, _BOUNCED, _FAILED)
    status[control] = -1
    delivered = treated & ~undelivered
    codes = _coupon_codes(campaign_id, chosen[treated], id_width)
    coupon = np.full(k, "", dtype=codes.dtype if len(codes) else "<U12")
    coupon[treated] = codes

    # buying in the window, drawn afresh
    g0 = group.astype(np.int64) - 1
    p_buy = np.asarray(BASE_RATES)[g0] + np.where(delivered, np.asarray(UPLIFTS)[g0], 0.0)
    buys = rng.random(k) < p_buy
    redeems = buys & delivered & (rng.random(k) < COUPON_USE)
    span = np.where(redeems, VALIDITY_DAYS + 1, WINDOW_DAYS)
    offset = (rng.random(k) * span).astype(np.int64)
    gross = spend * rng.standard_gamma(GG_P, k) / GG_P
    gross_cents = np.maximum(np.round(gross).astype(np.int64), MIN_GROSS_CENTS)
    top_up = THRESHOLD_CENTS + rng.integers(0, TOP_UP_CENTS, k)
    gross_cents = np.where(redeems, np.maximum(gross_cents, top_up), gross_cents)
    cents = gross_cents - np.where(redeems, FACE_VALUE_CENTS, 0)

    b = np.flatnonzero(buys)
    new_day = (send + offset[b]).astype(np.int32)
    in_store = last_channel[b] == STORE
    new_sec = seconds_of_day(rng, cal, new_day, in_store)
    send_sec = SEND_TIME.hour * 3600 + SEND_TIME.minute * 60
    early = redeems[b] & (offset[b] == 0) & (new_sec <= send_sec)
    while early.any():  # a coupon is used after it was issued
        new_sec[early] = seconds_of_day(rng, cal, new_day[early], in_store[early])
        early &= new_sec <= send_sec
    drawn = {
        "day": new_day,
        "sec": new_sec,
        "member": chosen[b],
        "cents": cents[b],
        "status": np.full(len(b), _PAID),
        "channel": last_channel[b],
        "store": np.where(in_store, last_store[b], -1),
        "coupon": np.where(redeems[b], CAMPAIGN_COUPON, -1),
    }
    in_window = (mine["day"] >= send) & (mine["day"] < send + WINDOW_DAYS)
    _replace_rows(orders, rows[in_window], drawn)

    def per_group(mask: NDArray[np.bool_]) -> tuple[int, ...]:
        counts = np.bincount(g0[mask], minlength=PRIORITY_GROUPS)
        return tuple(int(c) for c in counts)

    truth = CampaignTruth(
        campaign_id=campaign_id,
        list_name=LIST_NAME,
        send_day=send_day,
        sent_at=datetime.combine(send_day, SEND_TIME),
        window_days=WINDOW_DAYS,
        as_of=cal.end,
        control_share=CONTROL_SHARE,
        base_rate=BASE_RATES,
        uplift=UPLIFTS,
        treated=per_group(treated),
        delivered=per_group(delivered),
        control=per_group(control),
        treated_buyers=per_group(treated & buys),
        delivered_buyers=per_group(delivered & buys),
        control_buyers=per_group(control & buys),
        redeemed=per_group(redeems),
    )
    return PastCampaign(truth, chosen, group, control, channel, status, coupon)


def _coupon_codes(campaign_id: str, member: NDArray[np.int64], id_width: int) -> NDArray[np.str_]:
    """Unique coupon codes of the members (longer digests in the unlikely case of a clash)."""
    ids = padded("M", member + 1, id_width).to_pylist()
    for length in range(10, 65, 2):
        codes = np.array([coupon_code(campaign_id, m, length) for m in ids], dtype=str)
        if len(np.unique(codes)) == len(codes):
            return codes
    raise RuntimeError("coupon codes are not unique")  # pragma: no cover


def _lapsed(orders: dict[str, NDArray], send: int, n_members: int) -> NDArray[np.bool_]:
    """Per member: a paid order before day ``send``, none in the ``LAPSED_DAYS`` before it.

    One pass over all orders in blocks (temporary memory of a block only).
    """
    bought = np.zeros(n_members, dtype=bool)
    recent = np.zeros(n_members, dtype=bool)
    n = len(orders["day"])
    for lo in range(0, n, _SCAN_BLOCK):
        sl = slice(lo, min(n, lo + _SCAN_BLOCK))
        day, member = orders["day"][sl], orders["member"][sl]
        before = (orders["status"][sl] == _PAID) & (day < send)
        bought[member[before]] = True
        recent[member[before & (day >= send - LAPSED_DAYS)]] = True
    return bought & ~recent


def _rows_of(
    orders: dict[str, NDArray], members: NDArray[np.int64], n_members: int
) -> NDArray[np.int64]:
    """Positions of the orders of ``members``, ascending (one pass in blocks)."""
    wanted = np.zeros(n_members, dtype=bool)
    wanted[members] = True
    n = len(orders["day"])
    return np.concatenate(
        [np.empty(0, dtype=np.int64)]
        + [
            lo + np.flatnonzero(wanted[orders["member"][lo : lo + _SCAN_BLOCK]])
            for lo in range(0, n, _SCAN_BLOCK)
        ]
    )


def _replace_rows(
    orders: dict[str, NDArray], drop: NDArray[np.int64], new: dict[str, NDArray]
) -> None:
    """Remove the rows ``drop`` (few) and append ``new``, one column at a time.

    The kept rows are copied run by run between the dropped ones, so the only temporary is
    the new column (no index or mask over all rows): this stays below the sort's peak.
    """
    n = len(orders["day"])
    drop = np.unique(drop)
    n_keep = n - len(drop)
    starts, stops = np.r_[0, drop + 1].tolist(), np.r_[drop, n].tolist()
    runs = [(a, b) for a, b in zip(starts, stops, strict=True) if b > a]
    for key, dtype in _ORDER_DTYPES.items():
        col = orders[key]
        out = np.empty(n_keep + len(new[key]), dtype=dtype)
        at = 0
        for a, b in runs:
            out[at : at + b - a] = col[a:b]
            at += b - a
        out[n_keep:] = new[key]
        orders[key] = out
        del col


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def write_campaign_files(
    out_dir: Path,
    campaign: PastCampaign,
    orders: dict[str, NDArray],
    cal: Calendar,
    id_width: int,
) -> list[Path]:
    """Write ``campaign_sends.csv``, ``coupon_events.csv`` and the truth file.

    ``orders`` are all orders as written to ``orders.csv``: sorted, order ids numbered in
    row order from 1 (the redemptions are found there by their ``CAMPAIGN_COUPON``).
    Returns the paths of the two CSV files.
    """
    sends_path, events_path = out_dir / SENDS_FILE, out_dir / EVENTS_FILE
    with csv_writer(sends_path, CAMPAIGN_SENDS_COLUMNS) as write:
        if len(campaign.member):
            write(_sends_table(campaign, id_width))
    with csv_writer(events_path, COUPON_EVENTS_COLUMNS) as write:
        if (~campaign.control).any():
            write(_events_table(campaign, orders, cal, id_width))
    text = json.dumps(campaign.truth.as_dict(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(out_dir / TRUTH_FILE, text)
    return [sends_path, events_path]


def remove_campaign_files(out_dir: Path) -> None:
    """Remove the files of an earlier demo campaign in ``out_dir`` (only if its truth is there).

    A folder regenerated without a campaign must not keep a send log and coupon events that
    name members and orders of another dataset; files without the demo's truth file beside
    them are not the demo's and are left alone.
    """
    truth = out_dir / TRUTH_FILE
    if truth.is_file():
        for name in (SENDS_FILE, EVENTS_FILE):
            (out_dir / name).unlink(missing_ok=True)
        truth.unlink()


def _timestamps(seconds: NDArray[np.int64]) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"))


def _sends_table(campaign: PastCampaign, id_width: int) -> pa.Table:
    k = len(campaign.member)
    truth = campaign.truth
    treated = ~campaign.control
    sent_s = int(np.datetime64(truth.sent_at, "s").astype(np.int64))
    cost = np.asarray(COST_CENTS, dtype=np.int64)[campaign.channel]
    return pa.table(
        {
            "campaign_id": pa.array([truth.campaign_id] * k, pa.string()),
            "member_id": padded("M", campaign.member + 1, id_width),
            "channel": lookup(SEND_CHANNELS, campaign.channel),
            "sent_at": _timestamps(np.full(k, sent_s)),
            "status": lookup(SEND_STATUSES, campaign.status),
            "is_control": pc.if_else(pa.array(campaign.control), "true", "false"),
            "coupon_code": pa.array(campaign.coupon_code, mask=campaign.control),
            "list_name": pa.array([truth.list_name] * k, pa.string()),
            "priority_group": pa.array(campaign.group.astype(np.int64)),
            "cost": money(cost, treated),
        }
    )


def _events_table(
    campaign: PastCampaign, orders: dict[str, NDArray], cal: Calendar, id_width: int
) -> pa.Table:
    """Issued (every treated member), redeemed (the coupon orders), expired (the rest)."""
    truth = campaign.truth
    treated = np.flatnonzero(~campaign.control)  # positions in the campaign arrays
    sent_s = int(np.datetime64(truth.sent_at, "s").astype(np.int64))
    expiry = truth.send_day + timedelta(days=VALIDITY_DAYS)
    expired_s = int(np.datetime64(expiry, "s").astype(np.int64)) + 86_399

    n_orders = len(orders["day"])
    pos = np.flatnonzero(orders["coupon"] == CAMPAIGN_COUPON)  # row = order number - 1
    red_at = np.searchsorted(campaign.member, orders["member"][pos])
    start_s = int(np.datetime64(cal.start, "s").astype(np.int64))
    red_s = start_s + orders["day"][pos].astype(np.int64) * 86_400 + orders["sec"][pos]
    not_redeemed = np.setdiff1d(treated, red_at)

    at = np.concatenate([treated, red_at, not_redeemed])
    event = np.repeat(
        np.array([_ISSUED, _REDEEMED, _EXPIRED], np.int8),
        [len(treated), len(red_at), len(not_redeemed)],
    )
    seconds = np.concatenate(
        [np.full(len(treated), sent_s), red_s, np.full(len(not_redeemed), expired_s)]
    )
    order_no = np.concatenate(
        [np.zeros(len(treated), np.int64), pos + 1, np.zeros(len(not_redeemed), np.int64)]
    )
    perm = np.lexsort((campaign.member[at], event, seconds))
    at, event, seconds, order_no = at[perm], event[perm], seconds[perm], order_no[perm]
    n = len(at)
    return pa.table(
        {
            "coupon_code": pa.array(campaign.coupon_code[at]),
            "member_id": padded("M", campaign.member[at] + 1, id_width),
            "event": lookup(COUPON_EVENTS, event),
            "event_at": _timestamps(seconds),
            "campaign_id": pa.array([truth.campaign_id] * n, pa.string()),
            "channel_code": lookup(CHANNEL_CODES, campaign.channel[at]),
            "order_id": pc.if_else(
                pa.array(order_no > 0),
                padded("O", order_no, order_id_width(n_orders)),
                pa.nulls(n, pa.string()),
            ),
            "face_value": money(np.full(n, FACE_VALUE_CENTS, dtype=np.int64)),
            "threshold": money(np.full(n, THRESHOLD_CENTS, dtype=np.int64)),
        }
    )
