"""Demo and benchmark datasets in the pipeline's landing contract (``crm demo-data``).

Two sources write ``orders.csv`` and ``members.csv``:

* :func:`generate_demo_data`: a simulated Chinese omni-channel retailer whose buyers follow
  BG/NBD (drawn by :mod:`ml.simulate`) with Gamma-Gamma spend, so the CLV models have a
  known true process to recover;
* :func:`write_cdnow`: the CDNOW data bundled with ``lifetimes``.

Modules: ``shop`` (the retailer and its orders), ``members`` (member attributes),
``seasons`` (calendar, seasonality, operational time), ``cdnow`` (the CDNOW conversion),
``csv_writer`` (columns in the contract's text form, streamed through an atomic writer).
"""

from orchestration.demo.cdnow import write_cdnow
from orchestration.demo.csv_writer import MEMBERS_COLUMNS, ORDERS_COLUMNS, DemoDataSummary
from orchestration.demo.shop import DEMO_MARKER, default_end_date, generate_demo_data

__all__ = [
    "DEMO_MARKER",
    "DemoDataSummary",
    "MEMBERS_COLUMNS",
    "ORDERS_COLUMNS",
    "default_end_date",
    "generate_demo_data",
    "write_cdnow",
]
