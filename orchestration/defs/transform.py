"""Transform: the dbt project (staging → intermediate → marts) as Dagster assets.

dbt tests become asset checks. After dbt finishes (and releases the DuckDB
file) the marts' materializations get row counts, previews and the figures a
person wants to see (segment and stage counts, cut-offs, quarantine reasons).
"""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ml.plots import plot_where_to_stop
from orchestration.defs.project import dbt_project, dbt_vars
from orchestration.defs.resources import PipelineSettings
from orchestration.errors import CrmError
from orchestration.lib.summary import campaign_summaries
from orchestration.lib.warehouse import counts, markdown_table, open_warehouse
from orchestration.settings import Settings


class CrmDbtTranslator(DagsterDbtTranslator):
    """Asset key = model name (`customer_rfm`); group `campaigns` or `transform`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in {"model", "seed", "snapshot"}:
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return next((g for g in ("campaigns", "results") if g in fqn), "transform")


def _table_metadata(con, s: Settings, name: str) -> dict[str, Any]:
    found = con.execute(
        "select table_schema from information_schema.tables where table_name = ? "
        "and table_schema in ('marts', 'intermediate', 'staging', 'rules') order by 1",
        [name],
    ).fetchall()
    if not found:
        return {}
    table = f"{found[0][0]}.{name}"
    md: dict[str, Any] = {
        "dagster/row_count": con.execute(f"select count(*) from {table}").fetchall()[0][0],
        "as_of": s.as_of.isoformat(),
        "preview": dg.MetadataValue.md(
            markdown_table(con.sql(f"select * from {table} order by 1 limit 10").df(), table=name)
        ),
    }
    if name == "customer_rfm":
        md["segment_counts"] = dg.MetadataValue.json(counts(con, table, "rfm_segment"))
        md["rf_cell_counts"] = dg.MetadataValue.json(counts(con, table, "rf_cell"))
    elif name == "customer_lifecycle":
        md["stage_counts"] = dg.MetadataValue.json(counts(con, table, "lifecycle_stage"))
        cycle = con.sql("select * from intermediate.int_purchase_cycle_derived").df()
        md["purchase_cycle"] = dg.MetadataValue.md(markdown_table(cycle))
    elif name in {"orders_quarantine", "members_quarantine", "campaign_feedback_quarantine"}:
        reasons = con.sql(
            f"select regexp_replace(reason, ':.*$', '') as reason, count(*) as n from {table} "
            "group by 1 order by 2 desc"
        ).df()
        md["reasons"] = dg.MetadataValue.md(markdown_table(reasons))
    elif name == "campaign_targets":
        md["lists"] = dg.MetadataValue.md(
            markdown_table(
                con.sql(
                    f"select list_name, count(*) filter (where not is_control) as send, "
                    f"count(*) filter (where is_control) as control, "
                    f"round(sum(cost_per_contact) filter (where not is_control), 2) as cost "
                    f"from {table} group by 1 order by min(list_priority)"
                ).df()
            )
        )
    elif name == "campaign_exclusions":
        md["reasons"] = dg.MetadataValue.md(
            markdown_table(
                con.sql(
                    f"select list_name, reason, count(*) as n from {table} "
                    "group by 1, 2 order by 1, 3 desc"
                ).df(),
                max_rows=40,
            )
        )
    elif name == "campaign_results":
        totals = con.sql(
            f"select campaign_id, window_closed as closed, treated, control, "
            f"round(100 * uplift, 2) as uplift_pts, round(100 * uplift_ci_low, 2) as ci_low, "
            f"round(100 * uplift_ci_high, 2) as ci_high, "
            f"round(100 * min_detectable_uplift, 2) as mde_pts, "
            f"round(incremental_buyers, 1) as incr_buyers, round(roi, 2) as roi "
            f"from {table} where priority_group is null and channel is null "
            f"order by sent_on desc, campaign_id"
        ).df()
        md["campaigns"] = dg.MetadataValue.md(markdown_table(totals, max_rows=30))
        md["summary"] = dg.MetadataValue.md(campaign_summaries(con, table))
        # where to stop: the newest campaign with results, over its priority groups
        groups = con.sql(
            f"select campaign_id, priority_group, incremental_buyers, incremental_revenue, "
            f"message_cost + coalesce(subsidy, 0) as cost "
            f"from {table} where priority_group is not null and channel is null "
            f"and campaign_id = (select max_by(campaign_id, sent_on) from {table}) "
            f"order by 2"
        ).df()
        if not groups.empty:
            png = plot_where_to_stop(groups, str(groups["campaign_id"].iloc[0]))
            md["where_to_stop"] = dg.MetadataValue.md(
                f"![where to stop](data:image/png;base64,{base64.b64encode(png).decode()})"
            )
    elif name == "ingest_reconciliation":
        md["reconciliation"] = dg.MetadataValue.md(
            markdown_table(con.sql(f"select * from {table}").df())
        )
    return md


CAMPAIGNS = "path:models/campaigns"


#: dbt's parse, kept between runs (each run has its own target folder), one file per set
#: of vars (warehouse path, as-of date, playbook, ...): a run with the same vars as an
#: earlier one starts from its parse, and dbt itself re-parses whatever changed since.
_PARSE_CACHE = "partial_parse.msgpack"


def _parse_cache(runs: Path, dbt_vars_json: str) -> Path:
    key = hashlib.sha256(dbt_vars_json.encode()).hexdigest()[:16]
    return runs / f".parse-{key}.msgpack"


def _run_target(context: dg.AssetExecutionContext, dbt_vars_json: str) -> Path:
    """One dbt target folder per run, shared by the run's dbt steps, so the second reuses
    the first one's parse (dbt's partial parsing), and seeded with the parse of an
    earlier run with the same vars; folders and parses over a day old go."""
    runs = dbt_project.project_dir / dbt_project.target_path / "runs"
    if runs.is_dir():
        for old in runs.iterdir():
            if time.time() - old.stat().st_mtime > 86_400:
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                elif old.name.startswith(".parse-"):
                    old.unlink(missing_ok=True)
    target = runs / context.run_id
    cached = _parse_cache(runs, dbt_vars_json)
    if not (target / _PARSE_CACHE).exists() and cached.exists():
        target.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(cached, target / _PARSE_CACHE)
    return target


def _keep_parse(target: Path, dbt_vars_json: str) -> None:
    """Keep this run's parse for the next run with the same vars (replaced atomically)."""
    parsed = target / _PARSE_CACHE
    if parsed.exists():
        cached = _parse_cache(target.parent, dbt_vars_json)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            shutil.copyfile(parsed, tmp)
            os.replace(tmp, cached)


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, s: Settings) -> Iterator[Any]:
    """`dbt build` of this asset's selection, then enrich the marts' materializations."""
    context.log.info(f"dbt build as of {s.as_of} on {s.warehouse}")
    dbt_vars_json = json.dumps(dbt_vars(s), sort_keys=True)
    invocation = dbt.cli(
        # buildable: a test runs only with all its parents built (or upstream of this step);
        # unit tests check the SQL, not the data: `make test` runs them once
        # (tests/integration/test_campaign_results.py), not every run
        [
            "build",
            "--vars",
            dbt_vars_json,
            "--indirect-selection",
            "buildable",
            "--exclude-resource-type",
            "unit_test",
        ],  # fmt: skip
        context=context,
        raise_on_error=False,
        target_path=(target := _run_target(context, dbt_vars_json)),
    )
    # dbt holds the DuckDB file while it runs: collect its events, then enrich.
    events = list(invocation.stream())
    _keep_parse(target, dbt_vars_json)
    with open_warehouse(s, read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output | dg.MaterializeResult) and hasattr(event, "metadata"):
                key = _asset_name(event)
                if key and (extra := _table_metadata(con, s, key)):
                    event = event.with_metadata({**(event.metadata or {}), **extra})
            yield event
    if not invocation.is_successful():
        raise CrmError(f"dbt build failed: {_dbt_failures(invocation)}")


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CrmDbtTranslator(),
    exclude=CAMPAIGNS,
)
def crm_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: PipelineSettings
) -> Iterator[Any]:
    """Staging, intermediate and marts: RFM, lifecycle, model features, quarantine."""
    yield from _build(context, dbt, crm.settings())


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CrmDbtTranslator(),
    select=CAMPAIGNS,
    name="crm_dbt_campaigns",
)
def crm_dbt_campaigns(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: PipelineSettings
) -> Iterator[Any]:
    """Campaign audiences, targets and exclusions from the marts, scores and playbook."""
    yield from _build(context, dbt, crm.settings())


def _dbt_failures(invocation: Any) -> str:
    """One line per failed dbt node (test or model) from run_results.json."""
    try:
        results = invocation.get_artifact("run_results.json")["results"]
    except Exception:  # noqa: BLE001 - the artifact may be missing if dbt crashed
        return "see the dbt output in the run's logs"
    failed = [
        f"{r['unique_id'].split('.')[-1]} ({r['status']}: {(r.get('message') or '').strip()[:200]})"
        for r in results
        if r.get("status") in {"error", "fail", "runtime error"}
    ]
    return "; ".join(failed) or "see the dbt output in the run's logs"


def _asset_name(event: Any) -> str | None:
    name = getattr(event, "output_name", None)
    if name is None and getattr(event, "asset_key", None) is not None:
        return event.asset_key.path[-1]
    return name
