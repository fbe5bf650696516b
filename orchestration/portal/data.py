"""Read-only access to what the pipeline published: export day folders and their manifests,
the warehouse's campaign tables, the model card and the last run's status.

Nothing here writes to the export folder, the models folder or the warehouse. A path is
never built from request text: a day is looked up among the export folder's entries and
a file among the keys of that day's manifest, and the file actually opened must lie inside
that day's folder. Everything shown is an aggregate or a masked preview
(orchestration.lib.personal_data.mask_frame).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow.parquet as pq

from orchestration.errors import CrmError
from orchestration.lib.personal_data import mask_frame
from orchestration.lib.warehouse import finite_float
from orchestration.portal.i18n import translate
from orchestration.settings import Settings

log = logging.getLogger(__name__)

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: What a manifest's file name may look like (a list name and a suffix, no folder part).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")
_PLOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,100}\.png")
#: Columns of a send file shown (masked) in the preview; coupon codes are never shown
#: (whoever reads one can redeem it).
PREVIEW_COLUMNS = (
    "member_id", "name", "channel", "priority_group", "list_rank", "offer_type",
    "offer_amount", "offer_valid_until", "lifecycle_stage", "rfm_segment", "phone", "email",
)  # fmt: skip
PREVIEW_ROWS = 10
CHANNELS = ("sms", "email", "push")

#: Who may download which kind of file (see file_kind).
FILE_ROLES = {"send": "marketer", "audience": "marketer", "control": "analyst", "other": "admin"}


class DataUnavailable(CrmError):
    """Something a page needs is not there (yet): shown as an explanatory page. `key` and
    `params` name the explanation in orchestration.portal.i18n."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(translate(key, "en", **params))
        self.key = key
        self.params = params


class DownloadRefused(Exception):
    """A download that must not be served: the HTTP status, the reason (an i18n key; the
    audit log keeps its English text) and the manifest's file name when there is one."""

    def __init__(self, status: int, key: str, file: str | None = None, **params: object) -> None:
        self.reason = translate(key, "en", **params)
        super().__init__(self.reason)
        self.status = status
        self.key = key
        self.params = params
        self.file = file


# --- export days ------------------------------------------------------------------------


def published_days(export_dir: Path) -> list[date]:
    """Every published day folder (a `YYYY-MM-DD` entry holding manifest.json), newest first."""
    if not export_dir.is_dir():
        return []
    days = []
    for entry in export_dir.iterdir():
        if not _DAY.fullmatch(entry.name):
            continue
        try:
            day = date.fromisoformat(entry.name)
        except ValueError:
            continue
        if (entry / "manifest.json").is_file():
            days.append(day)
    return sorted(days, reverse=True)


def latest_day(export_dir: Path) -> date | None:
    """The day the exports' LATEST file names (if it is published), else the newest one."""
    days = published_days(export_dir)
    try:
        named = (export_dir / "LATEST").read_text(encoding="utf-8").strip()
    except OSError:
        named = ""
    for day in days:
        if day.isoformat() == named:
            return day
    return days[0] if days else None


def day_folder(export_dir: Path, as_of: str) -> Path | None:
    """The folder of a published day, found among the export folder's own entries (the
    request's text is only compared with their names); None for anything else."""
    if not _DAY.fullmatch(as_of):
        return None
    for day in published_days(export_dir):
        if day.isoformat() == as_of:
            return export_dir / day.isoformat()
    return None


@dataclass
class GroupRow:
    priority_group: int
    sends: int | None
    control: int | None
    customers: int | None = None
    buyers: float | None = None
    buyers_low: float | None = None
    buyers_high: float | None = None
    revenue: float | None = None
    revenue_low: float | None = None
    revenue_high: float | None = None
    cumulative_buyers: float | None = None


@dataclass
class ListSummary:
    """One list of a published day, from its manifest (aggregates only)."""

    name: str
    goal: str
    purpose: str | None
    offer: dict[str, Any]
    channels: dict[str, int]
    send: int
    control: int
    budget_yuan: float
    forecast: dict[str, Any] | None
    files: list[str]

    @property
    def buyers(self) -> tuple[float, float, float] | None:
        total = (self.forecast or {}).get("total") or {}
        try:
            values = (total["expected_buyers"], total["buyers_low"], total["buyers_high"])
            return tuple(float(v) for v in values)  # type: ignore[return-value]
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def horizon_days(self) -> int | None:
        value = (self.forecast or {}).get("horizon_days")
        return int(value) if isinstance(value, int | float) else None


@dataclass
class Day:
    as_of: date
    folder: Path
    manifest: dict[str, Any]
    lists: list[ListSummary]
    model_version: str
    published_at: str | None
    totals: dict[str, Any] = field(default_factory=dict)

    def list(self, name: str) -> ListSummary | None:
        return next((item for item in self.lists if item.name == name), None)


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataUnavailable("unavail.manifest", day=folder.name) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise DataUnavailable("unavail.manifest", day=folder.name)
    return doc


def load_day(settings: Settings, as_of: str, purposes: dict[str, str] | None = None) -> Day:
    """A published day with its lists; DataUnavailable when it is not published."""
    folder = day_folder(settings.export_dir, as_of)
    if folder is None:
        raise DataUnavailable("unavail.day", as_of=as_of)
    manifest = read_manifest(folder)
    files = [str(k) for k in manifest["files"]]
    lists = []
    for item in manifest.get("lists") or []:
        name = str(item.get("list", ""))
        lists.append(
            ListSummary(
                name=name,
                goal=str(item.get("goal", "")),
                purpose=(purposes or {}).get(name),
                offer=dict(item.get("offer") or {}),
                channels={str(k): int(v) for k, v in (item.get("by_channel") or {}).items()},
                send=int(item.get("send") or 0),
                control=int(item.get("control") or 0),
                budget_yuan=float(item.get("budget_yuan") or 0.0),
                forecast=item.get("forecast") if isinstance(item.get("forecast"), dict) else None,
                files=[f for f in files if file_kind(manifest, f)[1] == name],
            )
        )
    version = manifest.get("model_version")
    if isinstance(version, list):
        version = ", ".join(str(v) for v in version)
    return Day(
        as_of=date.fromisoformat(folder.name),
        folder=folder,
        manifest=manifest,
        lists=lists,
        model_version=str(version) if version else "",
        published_at=manifest.get("created_at"),
        totals=dict(manifest.get("totals") or {}),
    )


def file_kind(manifest: dict[str, Any], file: str) -> tuple[str, str | None]:
    """('send' | 'control' | 'audience' | 'other', list name) of a manifest file name."""
    for item in manifest.get("lists") or []:
        name = str(item.get("list", ""))
        if file in (f"{name}.csv", f"{name}.xlsx", f"{name}.parquet"):
            return "send", name
        if file == f"{name}_control.csv":
            return "control", name
        if file == f"{name}_audience_sha256.csv":
            return "audience", name
    return "other", None


def file_rows(manifest: dict[str, Any], file: str) -> int | None:
    """Rows of a list file from the manifest: its send count, or control count."""
    kind, name = file_kind(manifest, file)
    for item in manifest.get("lists") or []:
        if item.get("list") == name:
            if kind == "send":
                return int(item.get("send") or 0)
            if kind == "control":
                return int(item.get("control") or 0)
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _manifest_file(settings: Settings, as_of: str, file: str) -> tuple[Path, dict, str, Path]:
    """(day folder, manifest, the manifest's own key, the resolved file path) or
    DownloadRefused(404)."""
    folder = day_folder(settings.export_dir, as_of)
    if folder is None:
        raise DownloadRefused(404, "refused.not_day")
    try:
        manifest = read_manifest(folder)
    except DataUnavailable:
        raise DownloadRefused(404, "refused.manifest") from None
    key = next((k for k in manifest["files"] if k == file), None)
    if key is None:
        raise DownloadRefused(404, "refused.not_in_manifest")
    if not _FILE_NAME.fullmatch(key):
        raise DownloadRefused(404, "refused.outside", key)
    real_folder = folder.resolve()
    path = (real_folder / key).resolve()
    if path.parent != real_folder or not _inside(path, settings.export_dir.resolve()):
        raise DownloadRefused(404, "refused.outside", key)
    return folder, manifest, key, path


@dataclass
class CheckedFile:
    """An open file whose content matched the manifest's checksum; serve from `handle`."""

    name: str
    handle: IO[bytes]
    size: int
    rows: int | None
    kind: str
    list_name: str | None


def open_checked(settings: Settings, as_of: str, file: str, role: str) -> CheckedFile:
    """Open a published file for download, or raise DownloadRefused (404 unknown, 403 not
    for this role, 409 content differs from the manifest's checksum).

    The checksum is computed on the same open handle that is then served, so a file
    replaced in between cannot slip through.
    """
    from orchestration.portal.auth import role_at_least

    _, manifest, key, path = _manifest_file(settings, as_of, file)
    kind, list_name = file_kind(manifest, key)
    if not role_at_least(role, FILE_ROLES[kind]):
        raise DownloadRefused(403, "refused.role", key, kind=kind, role=FILE_ROLES[kind])
    expected = str((manifest["files"][key] or {}).get("sha256", "")).lower()
    try:
        handle = open(path, "rb")  # noqa: SIM115 - handed to the response, which closes it
    except OSError:
        raise DownloadRefused(409, "refused.missing", key) from None
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DownloadRefused(404, "refused.not_regular", key)
        digest = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        if not expected or digest.hexdigest() != expected:
            raise DownloadRefused(409, "refused.checksum", key)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return CheckedFile(key, handle, info.st_size, file_rows(manifest, key), kind, list_name)


_digest_cache: dict[tuple[str, int, int, int], str] = {}
_digest_lock = threading.Lock()


def file_intact(day: Day, file: str) -> bool:
    """Whether a manifest file is present with the manifest's checksum (for display; cached
    per file identity and modification time — downloads always hash the file again)."""
    key = next((k for k in day.manifest["files"] if k == file), None)
    if key is None or not _FILE_NAME.fullmatch(key):
        return False
    path = day.folder / key
    try:
        info = path.stat()
    except OSError:
        return False
    ident = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
    with _digest_lock:
        digest = _digest_cache.get(ident)
    if digest is None:
        from orchestration.lib.files import file_sha256

        digest = file_sha256(path)
        with _digest_lock:
            if len(_digest_cache) > 2000:
                _digest_cache.clear()
            _digest_cache[ident] = digest
    return digest == str((day.manifest["files"][key] or {}).get("sha256", "")).lower()


# --- one list -----------------------------------------------------------------------------


@dataclass
class ListDetail:
    day: Day
    summary: ListSummary
    groups: list[GroupRow]
    preview: pd.DataFrame | None  # masked; None when there is no intact send file
    campaign_id: str
    intact: dict[str, bool]


def _send_file(day: Day, name: str) -> Path | None:
    key = f"{name}.parquet"
    return day.folder / key if key in day.manifest["files"] and file_intact(day, key) else None


def list_detail(day: Day, name: str) -> ListDetail | None:
    summary = day.list(name)
    if summary is None:
        return None
    intact = {f: file_intact(day, f) for f in summary.files}
    parquet = _send_file(day, name)
    preview = None
    sends_by_group: dict[int, int] = {}
    campaign_id = ""
    if parquet is not None:
        table = pq.ParquetFile(parquet)
        columns = [c for c in PREVIEW_COLUMNS if c in table.schema_arrow.names]
        first = next(table.iter_batches(batch_size=PREVIEW_ROWS, columns=columns), None)
        if first is not None:
            preview = mask_frame(_dates_as_days(first.to_pandas()), "campaign_targets")
        if "priority_group" in table.schema_arrow.names:
            groups = pq.read_table(parquet, columns=["priority_group"]).to_pandas()
            sends_by_group = {
                int(k): int(v) for k, v in groups["priority_group"].value_counts().items()
            }
        if "campaign_id" in table.schema_arrow.names:
            ids = pq.read_table(parquet, columns=["campaign_id"]).column(0).drop_null()
            campaign_id = str(ids[0]) if len(ids) else ""
    if not campaign_id:
        # exports written before send rows carried it: the same rule as campaign_targets.sql
        # (the list sent the day after the as-of date)
        campaign_id = f"{name}-{(day.as_of + timedelta(days=1)):%Y%m%d}"
    control_by_group: dict[int, int] = {}
    control_key = f"{name}_control.csv"
    if intact.get(control_key):
        control = pd.read_csv(day.folder / control_key, usecols=["priority_group"])
        control_by_group = {
            int(k): int(v) for k, v in control["priority_group"].value_counts().items()
        }
    forecast_groups = {
        int(g["priority_group"]): g
        for g in (summary.forecast or {}).get("groups") or []
        if isinstance(g, dict) and "priority_group" in g
    }
    rows = []
    for group in sorted(set(sends_by_group) | set(control_by_group) | set(forecast_groups)):
        f = forecast_groups.get(group, {})
        rows.append(
            GroupRow(
                priority_group=group,
                sends=sends_by_group.get(group, 0) if parquet is not None else None,
                control=control_by_group.get(group, 0) if intact.get(control_key) else None,
                customers=_int(f.get("customers")),
                buyers=finite_float(f.get("expected_buyers")),
                buyers_low=finite_float(f.get("buyers_low")),
                buyers_high=finite_float(f.get("buyers_high")),
                revenue=finite_float(f.get("expected_revenue")),
                revenue_low=finite_float(f.get("revenue_low")),
                revenue_high=finite_float(f.get("revenue_high")),
                cumulative_buyers=finite_float(f.get("cumulative_buyers")),
            )
        )
    return ListDetail(day, summary, rows, preview, campaign_id, intact)


def _dates_as_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns that hold whole days (offer_valid_until) as YYYY-MM-DD text."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            known = values.dropna()
            if (known == known.dt.normalize()).all():
                out[col] = values.dt.strftime("%Y-%m-%d")
    return out


def _int(value: Any) -> int | None:
    out = finite_float(value)
    return int(out) if out is not None else None


# --- playbook -----------------------------------------------------------------------------

_purposes: dict[tuple[str, int], dict[str, str]] = {}


def list_purposes(settings: Settings) -> dict[str, str]:
    """Each playbook list's description (its purpose), cached per playbook file version;
    empty when the playbook cannot be read (the pages then show the goal only)."""
    path = settings.playbook
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return {}
    if key not in _purposes:
        try:
            from orchestration.lib.playbook import load_playbook

            book = load_playbook(path)
            _purposes.clear()
            _purposes[key] = {cl.name: cl.description for cl in book.lists if cl.description}
        except Exception as exc:  # the portal still works without descriptions
            log.warning("playbook %s not read for list descriptions: %s", path, exc)
            return {}
    return _purposes[key]


# --- warehouse ----------------------------------------------------------------------------


def _warehouse(settings: Settings):
    from orchestration.lib.warehouse import open_warehouse

    if not settings.warehouse.exists():
        raise DataUnavailable("unavail.warehouse")
    return open_warehouse(settings, read_only=True)


def _table_or_explain(con: Any, table: str) -> None:
    from orchestration.lib.warehouse import table_exists

    if not table_exists(con, table):
        raise DataUnavailable("unavail.table", table=table)


def campaign_results(settings: Settings) -> pd.DataFrame:
    """Per campaign: the total row and one row per priority group, over all channels
    (marts.campaign_results rows whose channel is null), newest campaign first."""
    with _warehouse(settings) as con:
        _table_or_explain(con, "marts.campaign_results")
        return con.execute(
            "select campaign_id, list_name, sent_on, priority_group, window_days, "
            "window_closed, treated, control, not_delivered, uplift, uplift_ci_low, "
            "uplift_ci_high, min_detectable_uplift, incremental_buyers, incremental_revenue, "
            "coupons_redeemed, message_cost, subsidy, roi "
            "from marts.campaign_results where channel is null "
            "order by sent_on desc, campaign_id, priority_group nulls first"
        ).df()


def where_to_stop_groups(settings: Settings, campaign: str | None = None) -> pd.DataFrame:
    """One row per priority group of a campaign (default: the newest) for the chart."""
    with _warehouse(settings) as con:
        _table_or_explain(con, "marts.campaign_results")
        return con.execute(
            "select campaign_id, priority_group, incremental_buyers, incremental_revenue, "
            "message_cost + coalesce(subsidy, 0) as cost from marts.campaign_results "
            "where priority_group is not null and channel is null and campaign_id = "
            "coalesce(?, (select max_by(campaign_id, sent_on) from marts.campaign_results)) "
            "order by priority_group",
            [campaign],
        ).df()


def exclusion_counts(settings: Settings) -> pd.DataFrame:
    """Why qualified members are not on a list: counts per list and reason (dates in a
    reason are folded, so the table stays short and names no one's history)."""
    with _warehouse(settings) as con:
        _table_or_explain(con, "marts.campaign_exclusions")
        return con.execute(
            "select list_name, regexp_replace(reason, '\\d{4}-\\d{2}-\\d{2}', '…', 'g') "
            "as reason, count(*) as members from marts.campaign_exclusions "
            "group by all order by list_name, members desc, reason"
        ).df()


# --- model card ---------------------------------------------------------------------------


@dataclass
class ModelCard:
    version: str
    markdown: str
    plots: list[str]


def _model_folder(models_dir: Path) -> tuple[str, Path]:
    try:
        version = (models_dir / "LATEST").read_text(encoding="utf-8").strip()
    except OSError:
        raise DataUnavailable("unavail.model_latest") from None
    if not _VERSION.fullmatch(version):
        raise DataUnavailable("unavail.model_bad")
    for entry in models_dir.iterdir():
        if entry.name == version and entry.is_dir():
            return version, entry
    raise DataUnavailable("unavail.model_folder", version=version)


def model_card(settings: Settings) -> ModelCard:
    version, folder = _model_folder(settings.models_dir)
    try:
        text = (folder / "model_card.md").read_text(encoding="utf-8")
    except OSError:
        raise DataUnavailable("unavail.model_card", version=version) from None
    plots = sorted(p.name for p in folder.iterdir() if _PLOT.fullmatch(p.name) and p.is_file())
    return ModelCard(version, text, plots)


def model_plot(settings: Settings, name: str) -> bytes | None:
    """A plot of the published model, found among its folder's own files."""
    _, folder = _model_folder(settings.models_dir)
    inside = folder.resolve()
    for entry in folder.iterdir():
        if entry.name == name and _PLOT.fullmatch(entry.name) and entry.is_file():
            if entry.resolve().parent != inside:  # a link out of the model folder
                return None
            return entry.read_bytes()
    return None


# --- run status ---------------------------------------------------------------------------


@dataclass
class RunStatus:
    run_id: str
    status: str  # SUCCESS, FAILURE, STARTED, QUEUED, CANCELED, ...
    as_of: str | None
    started: datetime | None
    ended: datetime | None
    trigger: str | None
    succeeded: bool
    failure: str | None
    hint: str | None
    #: its as-of day is a published export day (a successful run with nobody to contact
    #: publishes no lists)
    published: bool


def last_run(settings: Settings) -> RunStatus | None:
    """The newest `crm_job` run on this warehouse in the Dagster instance at
    settings.dagster_home; None when no run was recorded there yet."""
    home = settings.dagster_home
    if home is None or not (home / "history" / "runs.db").is_file():
        return None
    import dagster as dg

    from orchestration.lib.run_events import instance_events, verdict

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(
            filters=dg.RunsFilter(
                job_name="crm_job", tags={"crm/warehouse": str(settings.warehouse)}
            ),
            limit=1,
        )
        if not records:
            return None
        record = records[0]
        run = record.dagster_run
        status = run.status
        failure = hint = None
        if status == dg.DagsterRunStatus.FAILURE:
            v = verdict(instance_events(instance, run.run_id))
            failure = v.failure or "the run failed"
            hint = v.hint
        started = _moment(record.start_time)
        ended = _moment(record.end_time)
    days = {d.isoformat() for d in published_days(settings.export_dir)}
    return RunStatus(
        run_id=run.run_id,
        status=status.value,
        as_of=run.tags.get("crm/as_of"),
        started=started,
        ended=ended,
        trigger=run.tags.get("crm/trigger") or _trigger(run.tags),
        succeeded=status == dg.DagsterRunStatus.SUCCESS,
        failure=failure,
        hint=hint,
        published=status == dg.DagsterRunStatus.SUCCESS and run.tags.get("crm/as_of") in days,
    )


def _moment(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def _trigger(tags: dict[str, str]) -> str | None:
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    return None
