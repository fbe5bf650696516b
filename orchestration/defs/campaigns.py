"""Campaigns: one asset per playbook list, and the exports marketing downloads.

The lists are built in dbt (`models/campaigns/`); here each list is an asset showing
its figures, and `campaign_exports` writes the files.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml import forecast
from ml.purchase_models import PurchaseModel
from orchestration.defs.resources import PipelineSettings
from orchestration.errors import CrmError
from orchestration.lib import exports, holdback
from orchestration.lib import model_store as store
from orchestration.lib.playbook import CampaignList, load_playbook
from orchestration.lib.warehouse import markdown_table, open_warehouse
from orchestration.settings import Settings, load_settings

SEND_FILE_CHECK = "send_files_respect_do_not_contact"
_GROUPS = ["list_name", "priority_group"]


def list_forecasts(
    doc: dict | None, s: Settings, lists: list[CampaignList], only: str | None = None
) -> dict[str, dict]:
    """Per list: expected buyers and revenue within its horizon_days, in total and per
    priority group, with 90% intervals (ml.forecast), from the published model's
    params.json (`doc`, see model_store.published_model_doc). Empty when the model was
    skipped."""
    if doc is None:
        return {}
    model = PurchaseModel.from_dict(doc["purchase_models"][doc["selected"]])
    cov = forecast.covariance_from_json(doc.get("parameter_covariance"))
    draws = forecast.parameter_draws(model, cov) if cov is not None else []
    with open_warehouse(s, read_only=True) as con:
        members = store.read_list_members(con, only)
    out = {}
    for cl in lists:
        rows = members[members["list_name"] == cl.name]
        if rows.empty:
            continue
        shape = float(doc["spend_model"]["params"]["p"])
        groups = forecast.group_forecast(model, draws, rows, _GROUPS, cl.horizon_days, shape)
        total = forecast.group_forecast(model, draws, rows, _GROUPS[:1], cl.horizon_days, shape)
        reach = (
            forecast.groups_to_target(groups, cl.target_buyers, "priority_group")
            if cl.target_buyers
            else None
        )
        out[cl.name] = {
            "horizon_days": cl.horizon_days,
            "interval": "90%",
            "parameter_uncertainty": bool(draws),
            # the model's own bias is not in the interval: the backtest's, beside it
            "backtest_bias_pct": doc.get("aggregate_bias_pct"),
            "total": _rounded(
                total.drop(columns=["list_name", "cumulative_buyers"]).iloc[0].to_dict()
            ),
            "groups": [_rounded(r) for r in groups.drop(columns="list_name").to_dict("records")],
            "target_buyers": cl.target_buyers,
            "groups_to_target": reach,
        }
    return out


def _rounded(row: dict) -> dict:
    counts = {"customers", "priority_group"}
    return {k: int(v) if k in counts else round(float(v), 2) for k, v in row.items()}


def _forecast_metadata(cl: CampaignList, f: dict | None) -> dict[str, object]:
    if not f:
        return {}
    total = f["total"]
    table = pd.DataFrame(f["groups"]).assign(
        buyers=lambda d: [
            forecast.interval_text(r.expected_buyers, r.buyers_low, r.buyers_high)
            for r in d.itertuples()
        ],
        revenue_yuan=lambda d: [
            forecast.interval_text(r.expected_revenue, r.revenue_low, r.revenue_high)
            for r in d.itertuples()
        ],
    )[["priority_group", "customers", "buyers", "revenue_yuan", "cumulative_buyers"]]
    out: dict[str, object] = {
        "forecast_horizon_days": f["horizon_days"],
        "expected_buyers": dg.MetadataValue.float(total["expected_buyers"]),
        "expected_buyers_90": forecast.interval_text(
            total["expected_buyers"], total["buyers_low"], total["buyers_high"]
        ),
        "expected_revenue_yuan_90": forecast.interval_text(
            total["expected_revenue"], total["revenue_low"], total["revenue_high"]
        ),
        "forecast_by_group": dg.MetadataValue.md(markdown_table(table, max_rows=50)),
        "backtest_bias_pct": dg.MetadataValue.float(float(f["backtest_bias_pct"] or 0.0)),
    }
    if cl.target_buyers:
        k = f["groups_to_target"]
        out["target"] = (
            f"{cl.target_buyers:,} buyers expected after {k} of {len(f['groups'])} groups"
            if k
            else f"{cl.target_buyers:,} buyers not expected even with all {len(f['groups'])} groups"
        )
    return out


def _list_asset(cl: CampaignList) -> dg.AssetsDefinition:
    cap = (f"max {cl.max_contacts:,} contacts" if cl.max_contacts else "") + (
        f"{' and ' if cl.max_contacts else ''}budget ¥{cl.budget:,.2f}" if cl.budget else ""
    )

    @dg.asset(
        name=f"campaign_list_{cl.name}",
        group_name="campaigns",
        kinds={"duckdb"},
        deps=["campaign_targets", "campaign_list_summary"],
        description=(
            f"{cl.goal}: {cl.description or cl.name}. Ranked by {cl.rank_by}, "
            f"{cl.priority_groups} priority group(s), {cap}, channels {', '.join(cl.channels)}, "
            f"control {cl.control_share:.0%}. The rows of `marts.campaign_targets` with "
            f"list_name = '{cl.name}'; figures from `marts.campaign_list_summary`."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, crm: PipelineSettings) -> dg.MaterializeResult:
        s = crm.settings()
        doc = store.published_model_doc(context.instance, s.models_dir)
        predicted = list_forecasts(doc, s, [cl], only=cl.name).get(cl.name)
        with open_warehouse(s, read_only=True) as con:
            summary = con.execute(
                "select priority_group, channel, send, control, cost, min_score "
                "from marts.campaign_list_summary where list_name = ?",
                [cl.name],
            ).df()
            preview = con.execute(
                "select list_rank, priority_group, member_id, channel, reason "
                "from marts.campaign_targets where list_name = ? and not is_control "
                "order by list_rank limit 10",
                [cl.name],
            ).df()
        groups = (
            summary.groupby("priority_group", as_index=False)
            .agg(send=("send", "sum"), control=("control", "sum"), min_score=("min_score", "min"))
            .assign(min_score=lambda d: d["min_score"].round(4))
        )
        channels = summary.groupby("channel")["send"].sum().sort_values(ascending=False)
        send = int(summary["send"].sum())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": send,
                "send": send,
                "control": int(summary["control"].sum()),
                "budget_yuan": round(float(summary["cost"].sum()), 2),
                "by_channel": dg.MetadataValue.json(
                    {str(k): int(v) for k, v in channels.items() if v}
                ),
                "priority_groups": dg.MetadataValue.md(markdown_table(groups, max_rows=20)),
                "offer": dg.MetadataValue.json(cl.offer.model_dump()),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
                **_forecast_metadata(cl, predicted),
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
        check_specs=[
            *[
                dg.AssetCheckSpec(
                    name,
                    asset="campaign_exports",
                    blocking=True,
                    description=f"ERROR, blocking: {rule}; otherwise the lists are held back "
                    "(the previous ones stay). `crm run --accept-input-change` publishes anyway.",
                )
                for name, rule in holdback.RULES.items()
            ],
            dg.AssetCheckSpec(
                SEND_FILE_CHECK,
                asset="campaign_exports",
                blocking=True,
                description=(
                    "ERROR, blocking: every row of every send file as written, read back and "
                    "checked against the staged members and the normalised do-not-contact "
                    "list (member id, phone, email) and consent, independently of the list "
                    "SQL. When it fails nothing is published."
                ),
            ),
        ],
        description=(
            "The files marketing downloads, under CRM_EXPORT_DIR/<as-of>/: per list a CSV "
            "(UTF-8 with BOM, formula-safe), an XLSX with a column sheet and a Parquet of the "
            "send rows, a control-group CSV, optional hashed ad-platform audiences, and "
            "manifest.json. Written to a staging folder, checked, then published atomically; "
            "`latest` points at the newest complete export; exports older than "
            "CRM_EXPORT_RETENTION_DAYS are deleted. The send rows are recorded in "
            "campaigns.contact_history (cool-downs and contact caps)."
        ),
    )
    def campaign_exports(
        context: dg.AssetExecutionContext, crm: PipelineSettings
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        s = crm.settings()
        current = load_playbook(s.playbook)
        with open_warehouse(s, read_only=True) as con:
            verdicts = holdback.evaluate(con, s, context.run_id)
            targets = con.sql("select * from marts.campaign_targets").df()
        for v in verdicts:
            yield dg.AssetCheckResult(
                check_name=v.name,
                passed=v.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=v.description,
                metadata=v.metadata,
            )
        held = [v for v in verdicts if not v.passed]
        if held:
            raise CrmError(
                f"lists held back: {held[0].description}; nothing was published and the "
                "previous lists stay. If the input is right, run again with "
                "`crm run --accept-input-change`"
            )
        lists = current.to_dbt_var()["lists"]
        doc = store.published_model_doc(context.instance, s.models_dir)
        predicted = list_forecasts(doc, s, list(current.lists))
        with exports.export_lock(s.export_dir):
            staged = exports.stage_exports(
                targets, export_dir=s.export_dir, as_of=s.as_of, run_id=context.run_id,
                lists=lists, hashed_audience_files=s.export_hashed_audience,
                forecasts=predicted, model=_model_summary(doc),
            )  # fmt: skip
            try:
                with open_warehouse(s, read_only=True) as con:
                    bad, examples = exports.verify_send_files(con, staged, current.consent)
            except BaseException:
                exports.discard(staged)
                raise
            rows = int(staged.manifest.get("totals", {}).get("send", 0))
            yield dg.AssetCheckResult(
                check_name=SEND_FILE_CHECK,
                passed=bad == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    f"{bad:,} send row(s) must not be contacted: " + "; ".join(examples)
                    if bad
                    else f"{rows:,} send rows checked: none on the do-not-contact list, "
                    "all with consent and their own contact details"
                ),
                metadata={"rows_checked": rows, "violations": bad},
            )
            if bad:
                exports.discard(staged)
                raise CrmError(
                    f"send files not published: {bad:,} row(s) must not be contacted "
                    f"({'; '.join(examples)}); the list SQL is wrong, the last good export stays"
                )
            newest = exports.newest_published(s.export_dir) or s.as_of
            backfill = s.as_of < newest
            result = exports.publish(staged, move_latest=not backfill)
            removed = (
                exports.apply_retention(
                    s.export_dir, s.export_retention_days, max(newest, s.as_of), keep=(s.as_of,)
                )
                if result.published
                else []
            )
        if removed:
            context.log.info(
                f"retention: deleted {len(removed)} export folder(s) older than "
                f"{s.export_retention_days} days ({removed[0]} … {removed[-1]})"
            )
        if not result.published:
            context.log.warning(result.reason)
            yield dg.MaterializeResult(metadata={"published": False, "reason": result.reason})
            return
        if backfill:
            context.log.warning(
                f"backfill: {s.as_of} is before the newest published export ({newest}); its "
                f"files are under exports/{s.as_of}/ but `latest` stays and no contact history is "
                "written (these lists were never sent)"
            )
        else:
            with open_warehouse(s) as con:
                recorded = exports.record_contacts(con, s.as_of)
            context.log.info(f"{recorded:,} messages recorded in campaigns.contact_history")
        m = result.manifest
        yield dg.MaterializeResult(
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
                "retention_deleted": len(removed),
                "backfill": backfill,
            }
        )

    return [*list_assets, campaign_exports]


def _model_summary(doc: dict | None) -> dict | None:
    """The selected model and its backtest calibration, for the manifest."""
    if doc is None:
        return None
    return {
        "selected": doc["selected"],
        "version": doc["model_version"],
        "selection_reason": doc.get("selection_reason"),
        "backtest_holdout_days": doc.get("holdout_days"),
        "backtest_bias_pct": doc.get("aggregate_bias_pct"),
        "calibration_by_decile": doc.get("calibration"),
    }
