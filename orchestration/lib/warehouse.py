"""Small helpers around the DuckDB warehouse file."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from ml.model_card import markdown_lines
from orchestration.errors import CrmError
from orchestration.lib.personal_data import mask_frame
from orchestration.settings import Settings


class WarehouseBusyError(CrmError):
    """Another process holds the warehouse file (DuckDB allows one writer)."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


def _holder(exc: Exception) -> str:
    """'python3.11, pid 1234' from DuckDB's lock error, when it says."""
    found = re.search(r"held in (\S+) \(PID (\d+)\)", str(exc))
    return f"{Path(found[1]).name}, pid {found[2]}" if found else "pid unknown"


def open_warehouse(
    s: Settings, *, read_only: bool = False
) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The run's warehouse, opened with its memory cap (CRM_DUCKDB_MEMORY_LIMIT)."""
    return connect(s.warehouse, read_only=read_only, memory_limit=s.duckdb_memory_limit)


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, wait_seconds: float = 0, memory_limit: str = "3GB"
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse; a held lock becomes a clear WarehouseBusyError.

    `wait_seconds` retries for a short while (a nightly run that meets a UI
    query finishing). A second *run* should not wait: it stops at once.
    """
    if read_only and not path.exists():
        raise CrmError(f"warehouse {path} does not exist yet; run `crm run` (or make demo) first")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(
                str(path),
                read_only=read_only,
                config={"memory_limit": memory_limit},
            )
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"the warehouse {path} is open in another program ({_holder(exc)}); close "
                    "it (a BI tool or notebook holding the file) or wait, then run again"
                ) from exc
            time.sleep(0.5)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".", 1)
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|[]<>`*"} | {"\n": " ", "\r": " "})


def finite_float(value: object) -> float | None:
    """A stored number as a float; None when it is missing, not a number, NaN or infinite."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def md_text(value: object) -> str:
    """Text from the data, safe inside Markdown metadata: no table breaks, links, images
    or HTML from a landed value (a campaign id, a quarantine reason)."""
    return str(value).translate(_MD_SPECIAL)


def markdown_table(df: pd.DataFrame, max_rows: int = 10, table: str | None = None) -> str:
    """A Markdown table (no extra dependency) for Dagster metadata previews.

    Personal columns are masked (orchestration.lib.personal_data): whatever is
    put in metadata stays in Dagster's storage and is shown to every UI user.
    """
    df = mask_frame(df.head(max_rows), table)
    if df.empty:
        return "_(no rows)_"
    cols = [str(c) for c in df.columns]

    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
            return ""
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return md_text(v)

    rows = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    return "\n".join(markdown_lines(cols, rows))


def counts(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    rows = con.execute(
        f"select {column}, count(*) from {table} group by 1 order by 2 desc, 1"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def published_fingerprint(path: Path) -> str | None:
    """The landing batch (content fingerprint) of the last published run, kept with the
    warehouse in raw.landing_batches (a failed run's copy is discarded, so its batch is
    never recorded). None before the first run."""
    if not path.exists():
        return None
    with connect(path, read_only=True) as con:
        if not table_exists(con, "raw.landing_batches"):
            return None
        row = con.execute(
            "select fingerprint from raw.landing_batches order by loaded_at desc limit 1"
        ).fetchall()
    return row[0][0] if row else None
