"""The plain-text summary printed after a run."""

from __future__ import annotations

from orchestration.lib.warehouse import counts, md_text, open_warehouse, table_exists
from orchestration.settings import Settings


def build_summary(s: Settings, notes: list[str] | None = None) -> str:
    if not s.warehouse.exists():
        return f"no warehouse at {s.warehouse} yet"
    lines = [f"crm-pipeline summary (as of {s.as_of})"]
    with open_warehouse(s, read_only=True) as con:

        def scalar(sql: str) -> int:
            return int(con.execute(sql).fetchall()[0][0] or 0)

        if table_exists(con, "marts.customer_lifecycle"):
            members = scalar("select count(*) from marts.customer_lifecycle")
            buyers = scalar("select count(*) from marts.customer_rfm")
            lines.append(f"  members  {members:>10,}   customers with a purchase {buyers:,}")
        if table_exists(con, "marts.ingest_reconciliation"):
            for src, landed, staged, quarantined, dups, merged in con.execute(
                "select source, rows_landed, rows_staged, rows_quarantined, "
                "exact_duplicates_removed, rows_merged from marts.ingest_reconciliation "
                "where rows_landed > 0 or source in ('orders', 'members') order by 1"
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
        latest = (
            con.execute(
                "select status, status_reason from model.clv_model_runs where as_of = ? "
                "order by created_at desc limit 1",
                [s.as_of],
            ).fetchall()
            if table_exists(con, "model.clv_model_runs")
            else []
        )
        skipped = bool(latest) and latest[0][0] == "skipped"
        if skipped:
            lines.append(
                f"  CLV model skipped: {latest[0][1]}. RFM and lifecycle are published; "
                "lists that need model scores were not built"
            )
        if not skipped and table_exists(con, "model.customer_scores"):
            n, version = con.execute(
                "select count(*), any_value(model_version) from model.customer_scores"
            ).fetchall()[0]
            lines.append(f"  customer scores: {n:,} customers, model {version}")
        if not skipped and table_exists(con, "model.clv_model_runs"):
            rows = con.execute(
                "select model, status_reason from model.clv_model_runs "
                "where stage = 'final' and selected and model != 'gamma_gamma' "
                "order by created_at desc limit 1"
            ).fetchall()
            if rows:
                model, reason = rows[0]
                # the decision, without the list of losses (on the model card)
                decision = (reason or "").split("; losses")[0]
                lines.append(f"  CLV model: {model}. {decision}")
        if table_exists(con, "marts.campaign_targets"):
            lines.append("  campaign lists (send / control):")
            for name, send, control in con.execute(
                "select list_name, count(*) filter (where not is_control), "
                "count(*) filter (where is_control) from marts.campaign_targets "
                "group by 1 order by min(list_priority)"
            ).fetchall():
                lines.append(f"    {name:<20} {send:>10,} / {control:,}")
        if table_exists(con, "marts.campaign_results"):
            rows = con.execute(
                "select campaign_id, window_closed, uplift, uplift_ci_low, uplift_ci_high, "
                "incremental_buyers, roi from marts.campaign_results "
                "where priority_group is null and channel is null "
                "order by sent_on desc, campaign_id limit 10"
            ).fetchall()
            if rows:
                lines.append("  campaign results (uplift vs control, 95% interval):")
            for cid, closed, up, lo, hi, extra, roi in rows:
                readout = (
                    f"{100 * up:+.1f} pts ({100 * lo:+.1f} .. {100 * hi:+.1f}), "
                    f"{extra:+,.1f} buyers, ROI {roi:,.1f}"
                    if up is not None and lo is not None and roi is not None
                    else "no control group to compare with"
                )
                state = "final" if closed else "provisional"
                lines.append(f"    {cid:<28} {readout} [{state}]")
            # the newest closed campaign by priority group: where to stop next time
            groups = con.execute(
                "select campaign_id, priority_group, treated, control, uplift, uplift_ci_low, "
                "uplift_ci_high, roi from marts.campaign_results where channel is null "
                "and priority_group is not null and campaign_id = (select max_by(campaign_id, "
                "sent_on) from marts.campaign_results where window_closed) order by 2"
            ).fetchall()
            if groups:
                lines.append(f"    {groups[0][0]} by priority group (uplift pts, 95%, ROI):")
            for _, pg, treated, control, up, lo, hi, roi in groups:
                lines.append(
                    f"      group {pg:<3} {treated:>6,} / {control:<6,} {_pts(up)} "
                    f"({_pts(lo)} .. {_pts(hi)}), ROI {_num(roi, ',.1f')}"
                )
    lines += [f"  {note}" for note in notes or []]
    lines.append(f"  warehouse: {s.warehouse}")
    latest = s.export_dir / "latest"
    lines.append(f"  exports:   {latest if latest.exists() else s.export_dir}")
    lines.append(f"  models:    {s.models_dir}")
    return "\n".join(lines)


def _pts(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if v is None else format(v, fmt)


def campaign_summaries(con, table: str = "marts.campaign_results", limit: int = 10) -> str:
    """A Markdown readout per campaign (newest first): totals, then one line per
    priority group over all channels. Aggregates only, never a member."""
    cur = con.execute(
        f"select * from {table} where channel is null order by sent_on desc, campaign_id, "
        "priority_group nulls first"
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    campaigns = list(dict.fromkeys(r["campaign_id"] for r in rows))[:limit]
    if not campaigns:
        return "no campaign to read out yet"
    out: list[str] = []
    for cid in campaigns:
        mine = [r for r in rows if r["campaign_id"] == cid]
        t = next(r for r in mine if r["priority_group"] is None)
        state = "closed" if t["window_closed"] else "provisional: the window is still open"
        out += [
            f"### {md_text(cid)}",
            f"{md_text(t['list_name'])}, sent {t['sent_on']}, "
            f"{t['window_days']}-day window ({state}).",
            "",
            f"- **{t['treated']:,} reached** ({t['not_delivered']:,} not delivered), "
            f"{t['control']:,} held out",
            f"- bought: {_pct(t['treated_rate'])} vs {_pct(t['control_rate'])} held out: "
            f"**uplift {_pts(t['uplift'])} pts** (95% {_pts(t['uplift_ci_low'])} .. "
            f"{_pts(t['uplift_ci_high'])}, {t['ci_method']}); this control size detects "
            f"{_pts(t['min_detectable_uplift'])} pts",
            f"- incremental: {_num(t['incremental_buyers'], ',.1f')} buyers, "
            f"¥{_num(t['incremental_revenue'])} revenue",
            f"- coupons: {t['coupons_issued']:,} issued, {t['coupons_redeemed']:,} redeemed "
            f"({_pct(t['redemption_rate'])}), subsidy ¥{_num(t['subsidy'])}; messages "
            f"¥{_num(t['message_cost'], ',.2f')}; **ROI {_num(t['roi'], ',.2f')}**",
            f"- silent/churned recalled: {_pct(t['recall_rate'])}; opened or clicked: "
            f"{_pct(t['reach_rate'])}",
            "",
            "| group | reached | held out | uplift pts | 95% interval | incremental buyers | ROI |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            if r["priority_group"] is None:
                continue
            out.append(
                f"| {r['priority_group']} | {r['treated']:,} | {r['control']:,} | "
                f"{_pts(r['uplift'])} | {_pts(r['uplift_ci_low'])} .. "
                f"{_pts(r['uplift_ci_high'])} | {_num(r['incremental_buyers'], ',.1f')} | "
                f"{_num(r['roi'], ',.2f')} |"
            )
        out.append("")
    return "\n".join(out)


def kept_summary(s: Settings) -> str:
    """What a failed or refused run leaves in place (never an old summary as if new)."""
    latest = s.export_dir / "LATEST"
    export = latest.read_text(encoding="utf-8").strip() if latest.exists() else "none yet"
    warehouse = s.warehouse if s.warehouse.exists() else "none yet"
    return (
        f"crm-pipeline: nothing from this run (as of {s.as_of}) was published. Kept as they "
        f"were: warehouse {warehouse}; exports latest {export} in {s.export_dir}."
    )
