"""Campaigns: one asset per playbook list, and the exports marketing downloads.

The lists themselves are built in dbt (`models/campaigns/`); here each list
gets a view and its figures, and `campaign_exports` writes the files.
"""

import dagster as dg

from orchestration.defs.resources import PipelineSettings
from orchestration.lib import exports
from orchestration.lib.playbook import CampaignList, load_playbook
from orchestration.lib.warehouse import connect, markdown_table
from orchestration.settings import load_settings


def _list_asset(cl: CampaignList) -> dg.AssetsDefinition:
    cap = (f"max {cl.max_contacts:,} contacts" if cl.max_contacts else "") + (
        f"{' and ' if cl.max_contacts else ''}budget ¥{cl.budget:,.2f}" if cl.budget else ""
    )

    @dg.asset(
        name=f"campaign_list_{cl.name}",
        group_name="campaigns",
        kinds={"duckdb"},
        deps=["campaign_targets"],
        description=(
            f"{cl.goal}: {cl.description or cl.name}. Ranked by {cl.rank_by}, "
            f"{cl.priority_groups} priority group(s), {cap}, channels {', '.join(cl.channels)}, "
            f"control {cl.control_share:.0%}. View `campaigns.{cl.name}` (send rows)."
        ),
    )
    def _asset(crm: PipelineSettings) -> dg.MaterializeResult:
        s = crm.settings()
        with connect(s.warehouse) as con:
            con.execute("create schema if not exists campaigns")
            con.execute(
                f"create or replace view campaigns.{cl.name} as select * "
                f"from marts.campaign_targets where list_name = '{cl.name}' and not is_control"
            )
            stats = con.execute(
                "select count(*) filter (where not is_control), "
                "count(*) filter (where is_control), "
                "coalesce(sum(cost_per_contact) filter (where not is_control), 0) "
                "from marts.campaign_targets where list_name = ?",
                [cl.name],
            ).fetchall()[0]
            groups = con.execute(
                "select priority_group, count(*) filter (where not is_control) as send, "
                "count(*) filter (where is_control) as control, round(min(score), 4) as min_score "
                "from marts.campaign_targets where list_name = ? group by 1 order by 1",
                [cl.name],
            ).df()
            channels = con.execute(
                "select channel, count(*) from marts.campaign_targets "
                "where list_name = ? and not is_control group by 1 order by 2 desc",
                [cl.name],
            ).fetchall()
            preview = con.execute(
                "select list_rank, priority_group, member_id, channel, reason "
                "from marts.campaign_targets where list_name = ? and not is_control "
                "order by list_rank limit 10",
                [cl.name],
            ).df()
        send, control, cost = stats
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(send),
                "send": int(send),
                "control": int(control),
                "budget_yuan": round(float(cost), 2),
                "by_channel": dg.MetadataValue.json({str(k): int(v) for k, v in channels}),
                "priority_groups": dg.MetadataValue.md(markdown_table(groups, max_rows=20)),
                "offer": dg.MetadataValue.json(
                    {
                        "type": cl.offer.type,
                        "threshold": cl.offer.threshold,
                        "amount": cl.offer.amount,
                        "validity_days": cl.offer.validity_days,
                    }
                ),  # fmt: skip
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            }
        )

    return _asset


def build_campaign_assets() -> list[dg.AssetsDefinition]:
    playbook = load_playbook(load_settings().playbook)
    list_assets = [_list_asset(cl) for cl in playbook.lists]

    @dg.asset(
        group_name="campaigns",
        kinds={"csv", "parquet"},
        deps=list_assets,
        description=(
            "The files marketing downloads, under CRM_EXPORT_DIR/<as-of>/: per list a CSV "
            "(UTF-8 with BOM), an XLSX with a column sheet and a Parquet of the send rows, a "
            "control-group CSV, optional hashed ad-platform audiences, and manifest.json. "
            "Published atomically; `latest` points at the newest complete export. The send rows "
            "are recorded in campaigns.contact_history (cool-downs and contact caps)."
        ),
    )
    def campaign_exports(
        context: dg.AssetExecutionContext, crm: PipelineSettings
    ) -> dg.MaterializeResult:
        s = crm.settings()
        current = load_playbook(s.playbook)
        with connect(s.warehouse, read_only=True) as con:
            targets = con.sql("select * from marts.campaign_targets").df()
        lists = current.to_dbt_var()["lists"]
        result = exports.write_exports(
            targets, export_dir=s.export_dir, as_of=s.as_of, run_id=context.run_id,
            lists=lists, hashed_audience=s.export_hashed_audience,
        )  # fmt: skip
        if not result.published:
            context.log.warning(result.reason)
            return dg.MaterializeResult(metadata={"published": False, "reason": result.reason})
        with connect(s.warehouse) as con:
            recorded = exports.record_contacts(con, s.as_of)
        context.log.info(f"{recorded:,} messages recorded in campaigns.contact_history")
        m = result.manifest
        return dg.MaterializeResult(
            metadata={
                "published": True,
                "folder": dg.MetadataValue.path(str(result.folder)),
                "send": m["totals"]["send"],
                "control": m["totals"]["control"],
                "budget_yuan": m["totals"]["budget_yuan"],
                "files": dg.MetadataValue.json(
                    {name: f["bytes"] for name, f in m["files"].items()}
                ),
                "lists": dg.MetadataValue.json(
                    {x["list"]: {"send": x["send"], "control": x["control"]} for x in m["lists"]}
                ),
            }
        )

    return [*list_assets, campaign_exports]
