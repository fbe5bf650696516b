"""great-expectations on the landed raw tables, as Dagster asset checks.

One check per `orchestration.lib.expectations.CHECKS` entry, on `raw_orders`,
`raw_members` and `raw_suppression`, all computed in one step after the ingest
(one GX run, one Data Docs build; see docs/data-quality.md). Most checks WARN: staging
quarantines bad rows, nothing is lost. Two are ERROR and blocking, each saying why in
its description: orders mostly unreadable, and a shrunk do-not-contact list. When one
fails, nothing downstream of that raw table runs and the run publishes nothing.

Add `VALIDATION_CHECKS` to `Definitions(asset_checks=...)`.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from orchestration.defs.project import dbt_vars
from orchestration.defs.resources import PipelineSettings
from orchestration.lib import expectations as gxv
from orchestration.lib.warehouse import markdown_table
from orchestration.settings import Settings

_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def params(s: Settings) -> gxv.Params:
    return gxv.Params(
        as_of=s.as_of,
        min_date=s.min_order_date,
        max_amount=s.max_order_amount,
        max_rows_drop=s.max_rows_drop,
        accept_input_change=s.accept_input_change,
        dbt_vars=dbt_vars(s),  # what dbt gets, so the macros read alike
        docs=s.data_docs_dir,
        memory_limit=s.duckdb_memory_limit,
    )


def _spec(check: gxv.Check) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=check.name,
        asset=dg.AssetKey(check.asset),
        description=check.description,
        blocking=check.blocking,
        metadata={"severity": check.severity, "table": f"raw.{check.table}"},
    )


def check_result(outcome: gxv.Outcome) -> dg.AssetCheckResult:
    """The Dagster result of one check: counts, examples and the Data Docs page."""
    metadata: dict[str, object] = {"rows": outcome.rows}
    if outcome.unexpected:
        metadata["unexpected_count"] = sum(outcome.unexpected.values())
        metadata["unexpected"] = dg.MetadataValue.json(outcome.unexpected)
    if outcome.examples:
        metadata["examples"] = dg.MetadataValue.md(markdown_table(pd.DataFrame(outcome.examples)))
    if outcome.observed:
        metadata["observed"] = dg.MetadataValue.json(outcome.observed)
    if outcome.profile:
        metadata["profile"] = dg.MetadataValue.json(outcome.profile)
    if outcome.docs_url:
        metadata["data_docs"] = dg.MetadataValue.url(outcome.docs_url)
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(outcome.check.asset),
        check_name=outcome.check.name,
        passed=outcome.passed,
        severity=_SEVERITY[outcome.check.severity],
        description=outcome.sentence,
        metadata=metadata,
    )


@dg.multi_asset_check(
    name="raw_expectations",
    specs=[_spec(c) for c in gxv.CHECKS],
    can_subset=True,
    description="great-expectations suites on the landed raw tables, run by DuckDB on a "
    "scratch copy without personal data; Data Docs in gx_docs/ beside the warehouse.",
    compute_kind="great_expectations",
)
def raw_expectations(
    context: dg.AssetCheckExecutionContext, crm: PipelineSettings
) -> Iterator[dg.AssetCheckResult]:
    s = crm.settings()
    selected = {key.name for key in context.selected_asset_check_keys}
    checks = [c for c in gxv.CHECKS if c.name in selected]
    try:
        outcomes = gxv.validate(s.warehouse, params(s), tables={c.table for c in checks})
    except Exception as exc:  # a check that cannot run must still fail (and block)
        context.log.error(f"raw data validation could not run: {exc}")
        outcomes = [gxv.not_run(c, str(exc)) for c in checks]
    for outcome in outcomes:
        if outcome.check.name not in selected:
            continue
        if not outcome.passed:
            error = outcome.check.severity == "error"
            (context.log.error if error else context.log.warning)(
                f"{outcome.check.name}: {outcome.sentence}"
            )
        yield check_result(outcome)


VALIDATION_CHECKS = [raw_expectations]
