"""The portal's "mark as sent" records → DuckDB `raw.sent_marks`.

A marketer records in the portal that a list went out (send day, channel, the send
platform's campaign id). The portal keeps these in its own SQLite file (CRM_PORTAL_DB),
never in the warehouse; each run copies them here, read-only, so the campaign models
(int_campaign_contacts) count the real send day for cool-downs, contact caps and
results until the platform's send log is landed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pandas as pd

COLUMNS = (
    "id", "as_of", "list_name", "campaign_id", "sent_on", "channel", "platform_campaign_id",
    "marked_by", "marked_at", "revoked",
)  # fmt: skip


def read_marks(db: Path | None) -> pd.DataFrame:
    """Every mark in the portal database (text columns); empty without a database or table."""
    empty = pd.DataFrame({c: pd.Series(dtype="string") for c in COLUMNS})
    if db is None or not db.is_file():
        return empty
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        found = con.execute(
            "select 1 from sqlite_master where type = 'table' and name = 'sent_marks'"
        ).fetchone()
        if not found:
            return empty
        rows = con.execute(f"select {', '.join(COLUMNS)} from sent_marks order by id").fetchall()
    finally:
        con.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({c: "string" for c in COLUMNS})


def load_marks(con: duckdb.DuckDBPyConnection, db: Path | None) -> int:
    """Replace raw.sent_marks with the portal's marks; returns the number of rows."""
    marks = read_marks(db)
    con.execute("create schema if not exists raw")
    con.register("portal_marks", marks)
    try:
        cols = ", ".join(f"cast({c} as varchar) as {c}" for c in COLUMNS)
        con.execute(f"create or replace table raw.sent_marks as select {cols} from portal_marks")
    finally:
        con.unregister("portal_marks")
    return len(marks)
