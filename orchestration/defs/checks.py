"""Asset checks that are not dbt tests."""

import dagster as dg

from orchestration.defs.resources import PipelineSettings
from orchestration.lib.holdback import freshness
from orchestration.lib.warehouse import open_warehouse


@dg.asset_check(
    asset=dg.AssetKey("stg_shop__orders"),
    description=(
        "Warns when the latest order is more than CRM_FRESHNESS_DAYS (default 2) before the "
        "as-of date: the landing files are probably stale, and every recency and stage would "
        "be measured against a date the data never reached (the lists are then held back by "
        "input_is_fresh on campaign_exports)."
    ),
)
def orders_are_fresh(crm: PipelineSettings) -> dg.AssetCheckResult:
    s = crm.settings()
    with open_warehouse(s, read_only=True) as con:
        verdict = freshness(con, s)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata=verdict.metadata,
    )
