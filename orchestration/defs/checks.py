"""Asset checks that are not dbt tests."""

import dagster as dg

from orchestration.defs.resources import PipelineSettings
from orchestration.lib.warehouse import connect


@dg.asset_check(
    asset=dg.AssetKey("stg_shop__orders"),
    description=(
        "Warns when the latest order is more than CRM_FRESHNESS_DAYS (default 30) before the "
        "as-of date: the landing files are probably stale, and every recency and stage would "
        "be measured against a date the data never reached."
    ),
)
def orders_are_fresh(crm: PipelineSettings) -> dg.AssetCheckResult:
    s = crm.settings()
    with connect(s.warehouse, read_only=True) as con:
        latest = con.execute(
            "select max(order_date) from staging.stg_shop__orders where order_date <= ?",
            [s.as_of],
        ).fetchall()[0][0]
    lag = None if latest is None else (s.as_of - latest).days
    passed = lag is not None and lag <= s.freshness_days
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"latest order {latest}, {lag} days before the as-of date {s.as_of}"
            if lag is not None
            else f"no order on or before the as-of date {s.as_of}"
        ),
        metadata={
            "latest_order_date": str(latest),
            "as_of": s.as_of.isoformat(),
            "days_behind": lag if lag is not None else -1,
            "allowed_days": s.freshness_days,
        },
    )
