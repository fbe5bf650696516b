"""Landing files as CSV: Arrow columns in the contract's text form, streamed to disk.

The demo sources build ``pyarrow`` tables whose columns already hold the final text
(ids, decimals with two places, timestamps as ``YYYY-MM-DD HH:MM:SS``, ``true``/``false``,
empty for null) and stream them block by block into ``orders.csv`` / ``members.csv`` (and
the simulated campaign's ``campaign_sends.csv`` / ``coupon_events.csv``) through
:func:`orchestration.lib.files.atomic_writer`, so a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from orchestration.lib.files import atomic_writer
from orchestration.lib.landing import MEMBERS, ORDERS

if TYPE_CHECKING:
    from orchestration.demo.campaign import CampaignTruth

# The files follow the landing contract exactly: the same columns, in contract order.
ORDERS_COLUMNS: tuple[str, ...] = ORDERS.columns
MEMBERS_COLUMNS: tuple[str, ...] = MEMBERS.columns
# The campaign feedback files (send log, coupon events): required columns, then optional.
CAMPAIGN_SENDS_COLUMNS: tuple[str, ...] = (
    "campaign_id",
    "member_id",
    "channel",
    "sent_at",
    "status",
    "is_control",
    "coupon_code",
    "list_name",
    "priority_group",
    "cost",
)
COUPON_EVENTS_COLUMNS: tuple[str, ...] = (
    "coupon_code",
    "member_id",
    "event",
    "event_at",
    "campaign_id",
    "channel_code",
    "order_id",
    "face_value",
    "threshold",
)

_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", delimiter=",")


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
        The files written: orders, members, then (with a simulated campaign)
        ``campaign_sends.csv`` and ``coupon_events.csv``.
    campaign : CampaignTruth or None
        The simulated past campaign's truth (``None`` without a campaign).
    """

    out_dir: Path
    members: int
    orders: int
    first_order: date | None
    last_order: date | None
    files: list[Path]
    campaign: CampaignTruth | None = None


def landing_files(out_dir: Path) -> tuple[Path, Path]:
    """Create ``out_dir`` if missing; the paths of ``orders.csv`` and ``members.csv`` in it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / "orders.csv", out_dir / "members.csv"


@contextmanager
def csv_writer(path: Path, columns: Sequence[str]) -> Iterator[Callable[[pa.Table], None]]:
    """Write the header, then yield a function that appends a table's rows to ``path``.

    The file replaces ``path`` when the block ends without an error (see ``atomic_writer``);
    each table must have exactly ``columns``, in order.
    """
    with atomic_writer(path, "wb") as fh:
        fh.write((",".join(columns) + "\n").encode("utf-8"))

        def write(table: pa.Table) -> None:
            if table.column_names != list(columns):
                raise ValueError(f"{path.name}: columns {table.column_names} != {list(columns)}")
            pacsv.write_csv(table, fh, _WRITE_OPTIONS)

        yield write


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def lookup(
    values: Iterable[str], codes: NDArray, mask: NDArray[np.bool_] | None = None
) -> pa.Array:
    """Map integer codes to strings (null where ``mask`` is False or code < 0)."""
    dictionary = pa.array(list(values), pa.string())
    codes = np.asarray(codes, dtype=np.int64)
    valid = codes >= 0
    if mask is not None:
        valid &= mask
    return dictionary.take(pa.array(np.where(valid, codes, 0), mask=~valid))


def padded(prefix: str, numbers: NDArray, width: int) -> pa.Array:
    """``prefix`` + the numbers left-padded with zeros to ``width`` digits (e.g. ``M0000042``)."""
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def money(cents: NDArray[np.int64], mask: NDArray[np.bool_] | None = None) -> pa.Array:
    """Cents as a decimal128(18, 2) array (written as e.g. ``129.00``; null where not mask)."""
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
