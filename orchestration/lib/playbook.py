"""Load and validate the campaign playbook (campaigns.yml).

The playbook is data, not code: this module checks it and hands it to dbt as a
var, where `models/campaigns/` turns it into SQL. Every error names the file,
the list and the field, and says what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.errors import CrmError

CHANNELS = ("sms", "email", "push")
GOALS = ("win-back", "retention", "activation", "upsell-referral", "care")
RANK_BY = {
    "winback_value": "P(purchase in 60 days) x expected order value",
    "clv_at_risk": "(1 - P(purchase in 90 days)) x 12-month CLV",
    "predicted_clv_12m": "12-month CLV",
    "p_purchase_90d": "P(purchase in 90 days)",
    "p_purchase_60d": "P(purchase in 60 days)",
    "monetary_total": "total spend",
    "recency": "most recent buyers first",
}
CATEGORICAL = {
    "lifecycle_stage": (
        "prospect", "new", "rising", "mature", "declining", "silent", "churned", "reactivated",
    ),
    "rfm_segment": (
        "Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
        "About to Sleep", "Can't Lose", "At Risk", "Lost", "Hibernating",
    ),
    "r_group": ("active", "silent", "sleeping", "lost"),
    "f_group": ("new", "second", "regular", "fan"),
    "rf_cell": None,  # r_group_f_group, checked below
    "churn_risk": ("high", "medium", "low"),
    "value_tier": ("top", "high", "medium", "low"),
    "city": None,
    "gender": ("F", "M"),
    "acquisition_channel": None,
}  # fmt: skip
NUMERIC = (
    "recency_days", "frequency", "monetary_total", "days_since_first_purchase",
    "days_since_last_purchase", "p_alive", "p_purchase_60d", "p_purchase_90d",
    "expected_purchases_90d", "expected_order_value", "predicted_clv_12m", "r_score", "f_score",
    "m_score",
)  # fmt: skip
OFFER_TYPES = ("coupon", "referral", "gift", "points", "none")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Offer:
    type: str
    threshold: float
    amount: float
    validity_days: int


@dataclass(frozen=True)
class CampaignList:
    name: str
    goal: str
    priority: int
    description: str
    audience: dict[str, Any]
    rank_by: str
    priority_groups: int
    max_contacts: int | None
    budget: float | None
    offer: Offer
    channels: tuple[str, ...]
    control_share: float


@dataclass(frozen=True)
class Playbook:
    path: Path
    consent: str
    period: str
    cooldown_days: int
    contact_cap: dict[str, int]
    cost_per_contact: dict[str, float]
    push_channels: tuple[str, ...]
    lists: tuple[CampaignList, ...] = field(default_factory=tuple)

    def to_dbt_var(self) -> dict[str, Any]:
        """The playbook as the JSON-able dict the dbt campaign models read."""
        return {
            "consent": self.consent,
            "period": self.period,
            "cooldown_days": self.cooldown_days,
            "contact_cap": self.contact_cap,
            "cost_per_contact": self.cost_per_contact,
            "push_channels": list(self.push_channels),
            "lists": [
                {**asdict(cl), "offer": asdict(cl.offer), "channels": list(cl.channels)}
                for cl in self.lists
            ],
        }


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> CrmError:
        return CrmError(f"{self.path.name}: {where}: {message}")


def _number(ctx: _Ctx, where: str, value: Any, *, minimum: float = 0, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.fail(where, f"{value!r} is not a number")
    if value < minimum:
        raise ctx.fail(where, f"{value} must be at least {minimum}")
    if integer and int(value) != value:
        raise ctx.fail(where, f"{value} must be a whole number")
    return int(value) if integer else float(value)


def _audience(ctx: _Ctx, where: str, raw: Any, *, nested: bool = False) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.fail(
            where, "audience must be a mapping of filters, e.g. {lifecycle_stage: [silent]}"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        here = f"{where}.{key}"
        if key in CATEGORICAL:
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise ctx.fail(here, "give a list of text values")
            allowed = CATEGORICAL[key]
            if key == "rf_cell":
                allowed = tuple(
                    f"{r}_{f}" for r in CATEGORICAL["r_group"] for f in CATEGORICAL["f_group"]
                )
            if allowed is not None and (bad := [v for v in values if v not in allowed]):
                raise ctx.fail(here, f"unknown value(s) {bad}; allowed: {', '.join(allowed)}")
            out[key] = values
        elif key in {"min", "max"}:
            if not isinstance(value, dict) or not value:
                raise ctx.fail(here, "give a mapping of column: number")
            for col, bound in value.items():
                if col not in NUMERIC:
                    raise ctx.fail(
                        f"{here}.{col}", f"unknown column; allowed: {', '.join(NUMERIC)}"
                    )
                _number(ctx, f"{here}.{col}", bound, minimum=-1e18)
            out[key] = {str(c): float(b) for c, b in value.items()}
        elif key == "birthday_in_campaign_month":
            if not isinstance(value, bool):
                raise ctx.fail(here, "must be true or false")
            out[key] = value
        elif key == "any_of" and not nested:
            if not isinstance(value, list) or not value:
                raise ctx.fail(here, "give a list of audiences, any of which qualifies")
            out[key] = [_audience(ctx, f"{here}[{i}]", v, nested=True) for i, v in enumerate(value)]
        else:
            allowed = [*CATEGORICAL, "min", "max", "birthday_in_campaign_month"]
            if not nested:
                allowed.append("any_of")
            raise ctx.fail(here, f"unknown filter; allowed: {', '.join(allowed)}")
    return out


def _list(ctx: _Ctx, i: int, raw: Any, defaults: dict[str, Any]) -> CampaignList:
    if not isinstance(raw, dict):
        raise ctx.fail(f"lists[{i}]", "each list must be a mapping with name, goal, audience, …")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ctx.fail(f"lists[{i}].name", f"{name!r}: use lower-case letters, digits, underscore")
    where = f"list {name}"
    known = {
        "name", "goal", "priority", "description", "audience", "rank_by", "priority_groups",
        "cap", "offer", "channels", "control_share",
    }  # fmt: skip
    if extra := sorted(set(raw) - known):
        raise ctx.fail(where, f"unknown field(s) {extra}; allowed: {', '.join(sorted(known))}")
    for required in ("goal", "priority", "audience", "rank_by", "cap", "offer", "channels"):
        if required not in raw:
            raise ctx.fail(where, f"'{required}' is missing")
    goal = raw["goal"]
    if goal not in GOALS:
        raise ctx.fail(f"{where}.goal", f"{goal!r} unknown; allowed: {', '.join(GOALS)}")
    rank_by = raw["rank_by"]
    if rank_by not in RANK_BY:
        raise ctx.fail(f"{where}.rank_by", f"{rank_by!r} unknown; allowed: {', '.join(RANK_BY)}")
    cap = raw["cap"]
    if not isinstance(cap, dict) or set(cap) - {"max_contacts", "budget"} or not cap:
        raise ctx.fail(f"{where}.cap", "give {max_contacts: N} and/or {budget: yuan}")
    max_contacts = (
        _number(ctx, f"{where}.cap.max_contacts", cap["max_contacts"], minimum=1, integer=True)
        if "max_contacts" in cap
        else None
    )
    budget = _number(ctx, f"{where}.cap.budget", cap["budget"]) if "budget" in cap else None
    offer_raw = raw["offer"]
    if not isinstance(offer_raw, dict):
        raise ctx.fail(f"{where}.offer", "give {type, threshold, amount, validity_days}")
    otype = offer_raw.get("type")
    if otype not in OFFER_TYPES:
        raise ctx.fail(
            f"{where}.offer.type", f"{otype!r} unknown; allowed: {', '.join(OFFER_TYPES)}"
        )
    offer = Offer(
        type=otype,
        threshold=_number(ctx, f"{where}.offer.threshold", offer_raw.get("threshold", 0)),
        amount=_number(ctx, f"{where}.offer.amount", offer_raw.get("amount", 0)),
        validity_days=_number(
            ctx, f"{where}.offer.validity_days", offer_raw.get("validity_days", 14),
            minimum=1, integer=True,
        ),
    )  # fmt: skip
    channels = raw["channels"]
    if (
        not isinstance(channels, list)
        or not channels
        or any(c not in CHANNELS for c in channels)
        or len(set(channels)) != len(channels)
    ):
        raise ctx.fail(
            f"{where}.channels", f"{channels!r}: an ordered list from {', '.join(CHANNELS)}"
        )
    control = raw.get("control_share", defaults["control_share"])
    control = _number(ctx, f"{where}.control_share", control)
    if control >= 0.5:
        raise ctx.fail(f"{where}.control_share", f"{control} must be below 0.5")
    return CampaignList(
        name=name,
        goal=goal,
        priority=_number(ctx, f"{where}.priority", raw["priority"], minimum=1, integer=True),
        description=str(raw.get("description", "")),
        audience=_audience(ctx, f"{where}.audience", raw["audience"]),
        rank_by=rank_by,
        priority_groups=_number(
            ctx, f"{where}.priority_groups", raw.get("priority_groups", 10), minimum=1, integer=True
        ),
        max_contacts=max_contacts,
        budget=budget,
        offer=offer,
        channels=tuple(channels),
        control_share=control,
    )


def load_playbook(path: Path) -> Playbook:
    """Read and validate campaigns.yml; raise CrmError naming the problem."""
    if not path.is_file():
        raise CrmError(
            f"campaign playbook {path} not found; set CRM_PLAYBOOK or restore campaigns.yml"
        )
    ctx = _Ctx(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CrmError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "lists" not in raw:
        raise ctx.fail("top level", "expected 'defaults' and 'lists'")
    d = raw.get("defaults") or {}
    defaults = {
        "control_share": _number(ctx, "defaults.control_share", d.get("control_share", 0.10)),
        "consent": d.get("consent", "explicit"),
        "period": d.get("period", "month"),
    }
    if defaults["consent"] not in {"explicit", "opt_out"}:
        raise ctx.fail("defaults.consent", "must be 'explicit' or 'opt_out'")
    if defaults["period"] not in {"month", "week"}:
        raise ctx.fail("defaults.period", "must be 'month' or 'week'")
    cooldown = _number(ctx, "defaults.cooldown_days", d.get("cooldown_days", 0), integer=True)
    cap_raw = d.get("contact_cap") or {"max_contacts": 0, "days": 30}
    if not isinstance(cap_raw, dict) or set(cap_raw) - {"max_contacts", "days"}:
        raise ctx.fail("defaults.contact_cap", "give {max_contacts: N, days: D} (0 = no cap)")
    contact_cap = {
        "max_contacts": _number(
            ctx, "defaults.contact_cap.max_contacts", cap_raw.get("max_contacts", 0), integer=True
        ),
        "days": _number(ctx, "defaults.contact_cap.days", cap_raw.get("days", 30), minimum=1,
                        integer=True),
    }  # fmt: skip
    costs_raw = d.get("cost_per_contact") or {}
    costs = {
        c: _number(ctx, f"defaults.cost_per_contact.{c}", costs_raw.get(c, 0)) for c in CHANNELS
    }
    lists_raw = raw["lists"]
    if not isinstance(lists_raw, list) or not lists_raw:
        raise ctx.fail("lists", "give at least one list")
    lists = [_list(ctx, i, item, defaults) for i, item in enumerate(lists_raw)]
    names = [cl.name for cl in lists]
    if len(set(names)) != len(names):
        raise ctx.fail("lists", f"list names must be unique: {names}")
    priorities = [cl.priority for cl in lists]
    if len(set(priorities)) != len(priorities):
        raise ctx.fail("lists", f"priorities must be unique (they decide ties): {priorities}")
    for cl in lists:
        if cl.budget is not None and all(costs[c] == 0 for c in cl.channels):
            raise ctx.fail(
                f"list {cl.name}.cap.budget", "its channels cost nothing; use max_contacts"
            )
    return Playbook(
        path=path,
        consent=defaults["consent"],
        period=defaults["period"],
        cooldown_days=cooldown,
        contact_cap=contact_cap,
        cost_per_contact=costs,
        push_channels=tuple(str(c) for c in (d.get("push_channels") or [])),
        lists=tuple(sorted(lists, key=lambda cl: cl.priority)),
    )
