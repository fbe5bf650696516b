"""Great Expectations validation of the staged orders and members, as Dagster asset checks.

One check per rule in `orchestration.lib.expectations.RULES`, attached to
`stg_shop__orders` / `stg_shop__members`. Each entity's rules run in one step
(one GE context, read-only, DuckDB doing the counting). Checks that guard the
model inputs are ERROR and blocking: when one fails, the check step fails and
assets downstream of the checked table that run in later steps (model fits,
exports) do not run — the dbt models built in the same `dbt build` step as the
staging tables are not held back. The other checks are WARN quality signals
(rows quarantined or derived, not lost).

Add `VALIDATION_CHECKS` to `Definitions(asset_checks=...)`.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from orchestration.defs.resources import PipelineSettings
from orchestration.lib import expectations as gxv
from orchestration.lib.warehouse import markdown_table

CHECKED_ASSETS = {
    "orders": dg.AssetKey("stg_shop__orders"),
    "members": dg.AssetKey("stg_shop__members"),
}

_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def _spec(rule: gxv.Rule) -> dg.AssetCheckSpec:
    # No additional_deps on the tables read besides the checked asset (base views, members):
    # they come from the same dbt step, and a dependency would let a failed blocking check on
    # stg_shop__members skip the orders checks.
    level = "ERROR, blocking" if rule.blocking else "WARN"
    return dg.AssetCheckSpec(
        name=rule.name,
        asset=CHECKED_ASSETS[rule.entity],
        description=f"{rule.description} [{level}; great-expectations on {rule.table}]",
        blocking=rule.blocking,
        metadata={"severity": rule.severity, "table": rule.table},
    )


def check_result(outcome: gxv.Outcome) -> dg.AssetCheckResult:
    """The Dagster result of one rule: counts, percent and examples as metadata."""
    metadata: dict[str, object] = {
        "unexpected_count": outcome.unexpected_count,
        "element_count": outcome.element_count,
        "percent": dg.MetadataValue.float(round(outcome.unexpected_percent, 4)),
        "examples": dg.MetadataValue.md(markdown_table(pd.DataFrame(outcome.examples))),
        "table": outcome.table,
        "expectations": dg.MetadataValue.json(list(outcome.expectations)),
    }
    if outcome.missing_count is not None:
        metadata["missing_count"] = outcome.missing_count
    return dg.AssetCheckResult(
        asset_key=CHECKED_ASSETS[outcome.entity],
        check_name=outcome.name,
        passed=outcome.success,
        severity=_SEVERITY[outcome.severity],
        description=outcome.sentence,
        metadata=metadata,
    )


def _build(entity: gxv.Entity) -> dg.AssetChecksDefinition:
    rules = gxv.rules_for(entity)

    @dg.multi_asset_check(
        name=f"{entity}_expectations",
        specs=[_spec(r) for r in rules],
        description=(
            f"great-expectations suites for the {entity}, run against the warehouse "
            "(read-only, computed by DuckDB) as of the run's as-of date."
        ),
        compute_kind="great_expectations",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, crm: PipelineSettings
    ) -> Iterator[dg.AssetCheckResult]:
        s = crm.settings()
        try:
            outcomes = gxv.validate(s.warehouse, gxv.Params(as_of=s.as_of), entities=(entity,))
        except Exception as exc:  # a check that cannot run must still fail (and block)
            context.log.error(f"{entity} validation could not run: {exc}")
            outcomes = [gxv.not_run(rule, str(exc)) for rule in rules]
        for outcome in outcomes:
            if not outcome.success:
                log = context.log.error if outcome.severity == "error" else context.log.warning
                log(f"{outcome.name}: {outcome.sentence}")
            yield check_result(outcome)

    return _check


orders_expectations = _build("orders")
members_expectations = _build("members")

VALIDATION_CHECKS = [orders_expectations, members_expectations]
