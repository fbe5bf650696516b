"""Load and validate the campaign playbook (campaigns.yml) with pydantic.

The playbook is data, not code: these models check it and hand it to dbt as a
var, where `models/campaigns/` turns it into SQL. Every error names the file,
the list and the field, and says what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml.scoring import CHURN_RISK_BANDS, VALUE_TIERS
from orchestration.errors import CrmError
from orchestration.lib.vocabulary import accepted_values

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


def categorical() -> dict[str, tuple[str, ...] | None]:
    """The audience filters on text columns, with their allowed values (None = any)."""
    r_groups = accepted_values("customer_rfm", "r_group")
    f_groups = accepted_values("customer_rfm", "f_group")
    return {
        "lifecycle_stage": accepted_values("customer_lifecycle", "lifecycle_stage"),
        "rfm_segment": accepted_values("customer_rfm", "rfm_segment"),
        "r_group": r_groups,
        "f_group": f_groups,
        "rf_cell": tuple(f"{r}_{f}" for r in r_groups for f in f_groups),
        "churn_risk": CHURN_RISK_BANDS,
        "value_tier": VALUE_TIERS,
        "city": None,
        "gender": ("F", "M"),
        "acquisition_channel": None,
    }


NUMERIC = (
    "recency_days", "frequency", "monetary_total", "days_since_first_purchase",
    "days_since_last_purchase", "p_alive", "p_purchase_60d", "p_purchase_90d",
    "expected_purchases_90d", "expected_order_value", "predicted_clv_12m", "r_score", "f_score",
    "m_score",
)  # fmt: skip
OFFER_TYPES = ("coupon", "referral", "gift", "points", "none")

Channel = Literal["sms", "email", "push"]
Goal = Literal["win-back", "retention", "activation", "upsell-referral", "care"]
RankBy = Literal[
    "winback_value", "clv_at_risk", "predicted_clv_12m", "p_purchase_90d", "p_purchase_60d",
    "monetary_total", "recency",
]  # fmt: skip
OfferType = Literal["coupon", "referral", "gift", "points", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Offer(_Model):
    type: OfferType
    threshold: float = Field(0.0, strict=True, ge=0)
    amount: float = Field(0.0, strict=True, ge=0)
    validity_days: int = Field(14, strict=True, ge=1)


class Cap(_Model):
    max_contacts: int | None = Field(None, strict=True, ge=1)
    budget: float | None = Field(None, strict=True, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> Cap:
        if self.max_contacts is None and self.budget is None:
            raise ValueError("give {max_contacts: N} and/or {budget: yuan}")
        return self


def normalise_audience(raw: Any, *, nested: bool = False) -> dict[str, Any]:
    """An audience (filters ANDed; `any_of` ORs sub-audiences) in the form dbt reads."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("audience must be a mapping of filters, e.g. {lifecycle_stage: [silent]}")
    out: dict[str, Any] = {}
    text_filters = categorical()
    for key, value in raw.items():
        if key in text_filters:
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{key}: give a list of text values")
            allowed = text_filters[key]
            if allowed is not None and (bad := [v for v in values if v not in allowed]):
                raise ValueError(f"{key}: unknown value(s) {bad}; allowed: {', '.join(allowed)}")
            out[key] = values
        elif key in {"min", "max"}:
            if not isinstance(value, dict) or not value:
                raise ValueError(f"{key}: give a mapping of column: number")
            for col, bound in value.items():
                if col not in NUMERIC:
                    raise ValueError(f"{key}.{col}: unknown column; allowed: {', '.join(NUMERIC)}")
                if isinstance(bound, bool) or not isinstance(bound, int | float):
                    raise ValueError(f"{key}.{col}: {bound!r} is not a number")
            out[key] = {str(c): float(b) for c, b in value.items()}
        elif key == "birthday_in_campaign_month":
            if not isinstance(value, bool):
                raise ValueError(f"{key}: must be true or false")
            out[key] = value
        elif key == "any_of" and not nested:
            if not isinstance(value, list) or not value:
                raise ValueError("any_of: give a list of audiences, any of which qualifies")
            out[key] = [normalise_audience(v, nested=True) for v in value]
        else:
            allowed = [*text_filters, "min", "max", "birthday_in_campaign_month"]
            if not nested:
                allowed.append("any_of")
            raise ValueError(f"{key}: unknown filter; allowed: {', '.join(allowed)}")
    return out


class CampaignList(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    goal: Goal
    priority: int = Field(strict=True, ge=1)
    description: str = ""
    audience: dict[str, Any]
    rank_by: RankBy
    priority_groups: int = Field(10, strict=True, ge=1)
    cap: Cap
    offer: Offer
    channels: tuple[Channel, ...] = Field(min_length=1)
    control_share: float | None = Field(None, strict=True, ge=0, lt=0.5)
    #: the list's churn odds and forecasts are over this many days (P(no purchase), buyers)
    horizon_days: int = Field(60, strict=True, ge=1, le=730)
    #: buyers the campaign aims for: the list's forecast says after how many groups
    target_buyers: int | None = Field(None, strict=True, ge=1)
    #: days after the send day over which the campaign is read out against its control
    results_window_days: int = Field(30, strict=True, ge=1, le=365)

    @field_validator("audience", mode="before")
    @classmethod
    def _audience(cls, value: Any) -> dict[str, Any]:
        return normalise_audience(value)

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each channel at most once, in order of preference")
        return value

    @property
    def max_contacts(self) -> int | None:
        return self.cap.max_contacts

    @property
    def budget(self) -> float | None:
        return self.cap.budget


class ContactCap(_Model):
    max_contacts: int = Field(0, strict=True, ge=0)
    days: int = Field(30, strict=True, ge=1)


class CouponRules(_Model):
    """The anti-harassment rules for CRM coupons (the source material's 防骚扰机制): a
    member holds at most `max_unredeemed` open coupons, gets the same list's coupon at
    most once in `same_offer_days`, and not again within `after_redemption_days` of
    redeeming it. 0 turns a rule off."""

    max_unredeemed: int = Field(0, strict=True, ge=0)
    same_offer_days: int = Field(0, strict=True, ge=0)
    after_redemption_days: int = Field(0, strict=True, ge=0)
    #: validity of a coupon the coupon system issued that no list of ours describes
    default_validity_days: int = Field(30, strict=True, ge=1)


class Defaults(_Model):
    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any) -> Any:
        # `contact_cap:` with nothing after it is YAML null: the default, as before
        return (
            {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
        )

    control_share: float = Field(0.10, strict=True, ge=0, lt=0.5)
    consent: Literal["explicit", "opt_out"] = "explicit"
    period: Literal["month", "week"] = "month"
    cooldown_days: int = Field(0, strict=True, ge=0)
    contact_cap: ContactCap = ContactCap()
    coupon_rules: CouponRules = CouponRules()
    cost_per_contact: dict[Channel, float] = {}
    push_channels: tuple[str, ...] = ()

    @field_validator("cost_per_contact")
    @classmethod
    def _costs(cls, value: dict[str, float]) -> dict[str, float]:
        if bad := [c for c, v in value.items() if v < 0]:
            raise ValueError(f"costs must not be negative: {bad}")
        return {c: float(value.get(c, 0.0)) for c in CHANNELS}


class Playbook(_Model):
    path: Path
    defaults: Defaults = Defaults()
    lists: tuple[CampaignList, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        names = [cl.name for cl in self.lists]
        if len(set(names)) != len(names):
            raise ValueError(f"list names must be unique: {names}")
        priorities = [cl.priority for cl in self.lists]
        if len(set(priorities)) != len(priorities):
            raise ValueError(f"priorities must be unique (they decide ties): {priorities}")
        costs = self.cost_per_contact
        for cl in self.lists:
            if cl.budget is not None and all(costs[c] == 0 for c in cl.channels):
                raise ValueError(
                    f"list {cl.name}.cap.budget: its channels cost nothing; use max_contacts"
                )
        ordered = tuple(sorted(self.lists, key=lambda cl: cl.priority))
        shared = [
            cl.model_copy(update={"control_share": self.defaults.control_share})
            if cl.control_share is None
            else cl
            for cl in ordered
        ]
        object.__setattr__(self, "lists", tuple(shared))
        return self

    consent = property(lambda self: self.defaults.consent)
    period = property(lambda self: self.defaults.period)
    cooldown_days = property(lambda self: self.defaults.cooldown_days)
    contact_cap = property(lambda self: self.defaults.contact_cap.model_dump())
    coupon_rules = property(lambda self: self.defaults.coupon_rules.model_dump())
    push_channels = property(lambda self: tuple(self.defaults.push_channels))

    @property
    def cost_per_contact(self) -> dict[str, float]:
        return {c: float(self.defaults.cost_per_contact.get(c, 0.0)) for c in CHANNELS}

    def to_dbt_var(self) -> dict[str, Any]:
        """The playbook as the JSON-able dict the dbt campaign models read."""
        return {
            "consent": self.consent,
            "period": self.period,
            "cooldown_days": self.cooldown_days,
            "contact_cap": self.contact_cap,
            "coupon_rules": self.coupon_rules,
            "cost_per_contact": self.cost_per_contact,
            "push_channels": list(self.push_channels),
            "lists": [
                {
                    "name": cl.name,
                    "goal": cl.goal,
                    "priority": cl.priority,
                    "description": cl.description,
                    "audience": cl.audience,
                    "rank_by": cl.rank_by,
                    "priority_groups": cl.priority_groups,
                    "max_contacts": cl.max_contacts,
                    "budget": cl.budget,
                    "offer": cl.offer.model_dump(),
                    "channels": list(cl.channels),
                    "control_share": cl.control_share,
                    "horizon_days": cl.horizon_days,
                    "target_buyers": cl.target_buyers,
                    "results_window_days": cl.results_window_days,
                }
                for cl in self.lists
            ],
        }


def _where(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """'list win_back.offer.type' for ('lists', 0, 'offer', 'type')."""
    if not loc:
        return "top level"
    if loc[0] == "lists" and len(loc) > 1 and isinstance(loc[1], int):
        items = raw.get("lists") if isinstance(raw.get("lists"), list) else []
        item = items[loc[1]] if loc[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        head = f"list {name}" if isinstance(name, str) and name else f"lists[{loc[1]}]"
        rest = [str(p) for p in loc[2:] if not str(p).startswith(("function-", "literal["))]
        return ".".join([head, *rest])
    return ".".join(str(p) for p in loc)


def load_playbook(path: Path) -> Playbook:
    """Read and validate campaigns.yml; raise CrmError naming the file, list and field."""
    if not path.is_file():
        raise CrmError(
            f"campaign playbook {path} not found; set CRM_PLAYBOOK or restore campaigns.yml"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CrmError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "lists" not in raw:
        raise CrmError(f"{path.name}: top level: expected 'defaults' and 'lists'")
    try:
        return Playbook(path=path, defaults=raw.get("defaults") or {}, lists=raw["lists"])
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_where(tuple(err['loc']), raw)}: {message}")
        raise CrmError(f"{path.name}: " + "; ".join(problems[:3])) from exc
