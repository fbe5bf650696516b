"""Ingest: landing files → DuckDB `raw` tables (every row, as text, with provenance)."""

import json

import dagster as dg

from orchestration.defs.resources import PipelineSettings
from orchestration.errors import CrmError
from orchestration.lib import landing
from orchestration.lib.files import file_sha256
from orchestration.lib.landing_batch import (
    READY_MARKER,
    check_manifest,
    data_files,
    fingerprint,
    read_manifest,
)
from orchestration.lib.sent_marks import load_marks
from orchestration.lib.warehouse import WarehouseBusyError, markdown_table, open_warehouse

# A locked warehouse (another process briefly holding DuckDB's write lock) is the
# one transient failure here: it is retried (RetryRequested); bad files are not.


def _load(context: dg.AssetExecutionContext, crm: PipelineSettings, entity: landing.Entity):
    s = crm.settings()
    files = landing.find_files(s.landing_dir, entity)
    context.log.info(
        f"loading {entity.name} from {len(files)} file(s) in {s.landing_dir}: "
        + ", ".join(p.name for p in files)
    )
    manifest = read_manifest(s.landing_dir)
    # content hashes, read once: every landing file for the batch fingerprint (recorded
    # with the orders), this entity's files when a manifest lists their checksums
    hashed = data_files(s.landing_dir) if entity.name == "orders" else files if manifest else []
    hashes = {p.name: file_sha256(p) for p in hashed}
    try:
        with open_warehouse(s) as con:
            report = landing.load_entity(con, entity, files)
            _check_manifest(files, report, manifest, hashes)
            if entity.name == "orders":
                _record_batch(context, con, s, report, hashes)
            preview = con.sql(
                f"select * from raw.{entity.name} order by _source_file, _source_row limit 5"
            ).df()
    except WarehouseBusyError as exc:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=5) from exc
    for note in report.notes:
        context.log.warning(note)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows,
            "landing_dir": str(s.landing_dir),
            "files": dg.MetadataValue.json(report.rows_per_file),
            "encodings": dg.MetadataValue.json(report.encodings),
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in report.notes) or "none"),
            "preview": dg.MetadataValue.md(markdown_table(preview, table=entity.name)),
        }
    )


def _check_manifest(files, report, manifest, hashes: dict[str, str]) -> None:
    """The upstream export's `_READY` manifest, checked on load: checksums and row counts."""
    if not manifest:
        return
    names = {p.name for p in files}
    problem = check_manifest({n: e for n, e in manifest.items() if n in names}, hashes)
    if problem:
        raise CrmError(f"{problem}. Land the batch again; nothing was replaced")
    for name in names & set(manifest):
        rows, expected = report.rows_per_file.get(name, 0), manifest[name].rows
        if expected is not None and rows != expected:
            raise CrmError(
                f"{name}: {rows:,} records read but {READY_MARKER} says {expected:,}; "
                "the file is incomplete or from another export. Nothing was replaced"
            )


def _record_batch(context, con, s, report, hashes: dict[str, str]) -> None:
    """Which batch this run loaded (content fingerprint, rows): published with the warehouse,
    so the sensor can tell a new batch from the last published one, and the hold-back
    rules can compare row counts."""
    fp = fingerprint(hashes)
    con.execute(
        "create table if not exists raw.landing_batches (run_id varchar, as_of date, "
        "loaded_at timestamp, fingerprint varchar, orders_rows bigint, files json)"
    )
    con.execute("delete from raw.landing_batches where run_id = ?", [context.run_id])
    con.execute(
        "insert into raw.landing_batches values (?, ?, now(), ?, ?, ?)",
        [context.run_id, s.as_of, fp, report.rows, json.dumps(hashes, sort_keys=True)],
    )
    if context.instance is not None:
        context.instance.add_run_tags(context.run_id, {"crm/landing_fingerprint": fp})


DESCRIPTIONS = {
    "orders": (
        "Every row of the landed orders files (`orders*.csv|.txt|.parquet` in CRM_LANDING_DIR) "
        "as text in `raw.orders`, with `_source_file` and `_source_row`. CSV encodings UTF-8, "
        "UTF-8 with BOM and GBK/GB18030 are detected. A missing required column stops the run "
        "naming the file and column; nothing is replaced then."
    ),
    "members": (
        "Every row of the landed members files (`members*.csv|.txt|.parquet`) as text in "
        "`raw.members`. The file is optional: without it the table is empty and members are "
        "derived from orders."
    ),
    "suppression": (
        "The do-not-contact list (`suppression*.csv|.parquet` in the landing folder, optional) "
        "in `raw.suppression`: any of member_id, phone, email (+ reason). Matching members are "
        "never in a send file."
    ),
    "campaign_sends": (
        "The send log of the SMS/email/push platform (`campaign_sends*.csv|.parquet`, optional) "
        "in `raw.campaign_sends`: campaign_id, member_id, channel, sent_at (+ status, "
        "is_control, coupon_code, list_name, priority_group, cost). A landed log replaces the "
        "published list as the record of its campaign: failed and bounced sends are not "
        "contacts (campaign results, cool-downs, contact caps)."
    ),
    "coupon_events": (
        "Events of the coupon system (`coupon_events*.csv|.parquet`, optional) in "
        "`raw.coupon_events`: coupon_code, member_id, event (issued / redeemed / expired / "
        "revoked), event_at (+ campaign_id, channel_code, order_id, face_value, threshold). "
        "Campaign results count coupons issued, redeemed and the subsidy from them; the "
        "coupon caps read which coupons a member holds."
    ),
}


def _ingest_asset(entity: landing.Entity) -> dg.AssetsDefinition:
    @dg.asset(
        key=f"raw_{entity.name}",
        group_name="ingest",
        kinds={"duckdb", "csv"},
        description=DESCRIPTIONS[entity.name],
    )
    def _asset(context: dg.AssetExecutionContext, crm: PipelineSettings) -> dg.MaterializeResult:
        return _load(context, crm, entity)

    return _asset


@dg.asset(
    key="raw_sent_marks",
    group_name="ingest",
    kinds={"duckdb", "sqlite"},
    description=(
        'The portal\'s "mark as sent" records (send day, channel, platform campaign id per '
        "published list) copied read-only from its SQLite file (CRM_PORTAL_DB) into "
        "`raw.sent_marks`: until a send log is landed, cool-downs, contact caps and results "
        "count the day a list really went out. Empty without a portal."
    ),
)
def raw_sent_marks(
    context: dg.AssetExecutionContext, crm: PipelineSettings
) -> dg.MaterializeResult:
    s = crm.settings()
    try:
        with open_warehouse(s) as con:
            rows = load_marks(con, s.portal_db)
    except WarehouseBusyError as exc:
        raise dg.RetryRequested(max_retries=2, seconds_to_wait=5) from exc
    context.log.info(f"{rows:,} send mark(s) from {s.portal_db}")
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "portal_db": str(s.portal_db)})


raw_orders, raw_members, raw_suppression, raw_campaign_sends, raw_coupon_events = (
    _ingest_asset(landing.ENTITIES[name])
    for name in ("orders", "members", "suppression", "campaign_sends", "coupon_events")
)
