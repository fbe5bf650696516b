"""The plain-text summary printed after a run."""

from __future__ import annotations

from orchestration.lib.warehouse import connect, counts, table_exists
from orchestration.settings import Settings


def build_summary(s: Settings) -> str:
    if not s.warehouse.exists():
        return f"no warehouse at {s.warehouse} yet"
    lines = [f"crm-pipeline summary (as of {s.as_of})"]
    with connect(s.warehouse, read_only=True) as con:

        def scalar(sql: str) -> int:
            return int(con.execute(sql).fetchall()[0][0] or 0)

        if table_exists(con, "marts.customer_lifecycle"):
            members = scalar("select count(*) from marts.customer_lifecycle")
            buyers = scalar("select count(*) from marts.customer_rfm")
            lines.append(f"  members  {members:>10,}   customers with a purchase {buyers:,}")
        if table_exists(con, "marts.ingest_reconciliation"):
            for src, landed, staged, quarantined, dups, merged in con.execute(
                "select source, rows_landed, rows_staged, rows_quarantined, "
                "exact_duplicates_removed, rows_merged from marts.ingest_reconciliation order by 1"
            ).fetchall():
                lines.append(
                    f"  {src:<8} {landed:>10,} rows landed: {staged:,} staged, "
                    f"{quarantined:,} quarantined, {dups:,} exact duplicates, {merged:,} merged"
                )
        if table_exists(con, "intermediate.int_purchase_cycle_derived"):
            row = con.execute(
                "select typical_interval_days, active_within_days, silent_after_days, "
                "churn_after_days, derived_from_data from intermediate.int_purchase_cycle_derived"
            ).fetchall()[0]
            if row:
                typical, active, silent, churn, derived = row
                src = "derived from the data" if derived else "fallback defaults (too few repeats)"
                lines.append(
                    f"  purchase cycle: typical {typical or 0:.0f} days; active <= {active}, "
                    f"silent > {silent}, churned > {churn} days ({src})"
                )
        for title, table, col in (
            ("lifecycle stages", "marts.customer_lifecycle", "lifecycle_stage"),
            ("RFM segments", "marts.customer_rfm", "rfm_segment"),
        ):
            if table_exists(con, table):
                lines.append(f"  {title}:")
                lines += [f"    {k:<20} {n:>10,}" for k, n in counts(con, table, col).items()]
        if table_exists(con, "marts.customer_scores"):
            n = scalar("select count(*) from marts.customer_scores")
            lines.append(f"  customer scores: {n:,} rows")
    lines.append(f"  warehouse: {s.warehouse}")
    lines.append(f"  exports:   {s.export_dir}")
    lines.append(f"  models:    {s.models_dir}")
    return "\n".join(lines)
