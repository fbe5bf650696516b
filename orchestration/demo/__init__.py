"""Demo and benchmark datasets in the pipeline's landing contract (``crm demo-data``).

Two sources write ``orders.csv`` and ``members.csv``:

* :func:`generate_demo_data`: a simulated Chinese omni-channel retailer whose buyers follow
  BG/NBD (drawn by :mod:`ml.simulate`) with Gamma-Gamma spend, so the CLV models have a
  known true process to recover. Unless ``campaign=False``, it also simulates a past
  win-back campaign with a known true uplift per priority group, sent 90 days before the
  last day (its 60-day results window closed at the as-of): ``campaign_sends.csv`` (treated
  and control members), ``coupon_events.csv`` (issued, redeemed, expired), the orders it
  caused in ``orders.csv``, and the truth (rates and counts, no member data) in
  ``.crm-demo-campaign.json``;
* :func:`write_cdnow`: the CDNOW data bundled with ``lifetimes``.

Modules: ``shop`` (the retailer and its orders), ``campaign`` (the past campaign and its
truth), ``members`` (member attributes), ``seasons`` (calendar, seasonality, operational
time), ``cdnow`` (the CDNOW conversion), ``csv_writer`` (columns in the contract's text form,
streamed through an atomic writer).
"""

from orchestration.demo.campaign import (
    TRUTH_FILE,
    CampaignTruth,
    PastCampaign,
    simulate_past_campaign,
)
from orchestration.demo.cdnow import write_cdnow
from orchestration.demo.csv_writer import (
    CAMPAIGN_SENDS_COLUMNS,
    COUPON_EVENTS_COLUMNS,
    MEMBERS_COLUMNS,
    ORDERS_COLUMNS,
    DemoDataSummary,
)
from orchestration.demo.shop import DEMO_MARKER, default_end_date, generate_demo_data

__all__ = [
    "CAMPAIGN_SENDS_COLUMNS",
    "COUPON_EVENTS_COLUMNS",
    "DEMO_MARKER",
    "TRUTH_FILE",
    "CampaignTruth",
    "DemoDataSummary",
    "MEMBERS_COLUMNS",
    "ORDERS_COLUMNS",
    "PastCampaign",
    "default_end_date",
    "generate_demo_data",
    "simulate_past_campaign",
    "write_cdnow",
]
