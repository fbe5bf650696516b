"""The CDNOW data bundled with ``lifetimes``, converted to the pipeline's landing contract."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from orchestration.demo.csv_writer import (
    MEMBERS_COLUMNS,
    ORDERS_COLUMNS,
    DemoDataSummary,
    csv_writer,
    landing_files,
)


def _cdnow_path(name: str) -> Path:
    try:
        return Path(str(resources.files("lifetimes") / "datasets" / name))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        import lifetimes

        return Path(lifetimes.__file__).parent / "datasets" / name


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
        Customers and rows written, first and last purchase date, the two files.

    Notes
    -----
    Every input row becomes one paid order (same-day rows are kept separate): ``order_id`` is
    ``C`` plus the 1-based row number in file order, ``member_id`` the customer id exactly as
    in the file (e.g. ``00004``), ``ordered_at`` the date at midnight, ``amount`` the dollar
    value and ``channel`` ``cdnow``. ``members.csv`` has one row per customer with
    ``registered_at`` = first purchase date; all other member columns are empty.
    """
    out_dir = Path(out_dir)
    orders_path, members_path = landing_files(out_dir)
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
    members = pa.table(
        {
            "member_id": pa.array(member_ids, pa.string()),
            "registered_at": pa.array(
                np.array([first_seen[c] for c in member_ids], dtype="datetime64[D]")
            ),
            **{col: m_null for col in MEMBERS_COLUMNS[2:]},
        }
    )

    with csv_writer(orders_path, ORDERS_COLUMNS) as write_orders:
        write_orders(orders)
        with csv_writer(members_path, MEMBERS_COLUMNS) as write_members:
            write_members(members)
    first = last = None
    if n:
        first = iso[order_idx[0]].astype(object)
        last = iso[order_idx[-1]].astype(object)
    return DemoDataSummary(out_dir, m, n, first, last, [orders_path, members_path])
