"""Write the campaign lists as files marketing can open, check them, publish them atomically.

Layout under CRM_EXPORT_DIR:

    <as-of>/<list>.csv            send rows, UTF-8 with BOM (Excel opens Chinese text correctly)
    <as-of>/<list>.xlsx           the same rows + a sheet describing the columns
    <as-of>/<list>.parquet        the same rows, typed
    <as-of>/<list>_control.csv    the held-out control group (never contacted)
    <as-of>/<list>_audience_sha256.csv   optional: hashed phone/email for ad platforms
    <as-of>/manifest.json         run, as-of, model version, counts, columns, checksums
    latest -> <as-of>             symlink to the newest complete export
    LATEST                        the same, as text (for systems without symlinks)

`<as-of>` is itself a symlink to `.published/<as-of>.<run>/`: a run writes a
hidden staging folder, the send files are checked against the do-not-contact
list and consent (`verify_send_files`), and only then is the folder renamed
into `.published/` and the `<as-of>` link switched with one atomic rename, so a
reader (and `latest`) always sees the old export or the new one, never half of
one and never nothing. `clean_leftovers` removes what a killed run left behind
and `apply_retention` deletes exports older than CRM_EXPORT_RETENTION_DAYS.
Files are byte-identical for the same inputs (timestamps live only in manifest.json).

CSV cells are made safe for spreadsheets (OWASP "CSV injection"): control
characters are removed from all text, and a CSV text cell beginning with = + - @
(or their full-width forms), tab or carriage return gets a leading apostrophe,
except a validated E.164 phone. The XLSX writes every string as a string.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

from orchestration.lib.files import file_sha256, write_atomic

#: Columns every send file carries, then the contact detail its channel needs.
LIST_COLUMNS = [
    ("member_id", "Member id"),
    ("name", "Member name (for the greeting)"),
    ("channel", "Channel to use: sms, email or push"),
    ("priority_group", "Priority group, 1 = contact first; stop when the target is met"),
    ("list_rank", "Rank within the list (1 = best)"),
    ("offer_type", "Offer: coupon, referral, gift, points"),
    ("offer_threshold", "Minimum order value for the offer (yuan)"),
    ("offer_amount", "Offer value (yuan)"),
    ("offer_valid_until", "Last day the offer is valid"),
    ("campaign_id", "The campaign (list and send day): quote it in the platform's campaign"),
    ("coupon_code", "The member's own coupon code (coupon offers), so redemptions trace back"),
    ("reason", "Why this member is on the list (stage / segment; scores)"),
    ("lifecycle_stage", "Lifecycle stage"),
    ("rfm_segment", "RFM segment"),
    ("churn_odds", "Probability of NOT buying within the list's horizon (the model's churn odds)"),
    ("churn_horizon_days", "The list's horizon in days for churn_odds"),
    ("predicted_clv_12m", "Predicted value of the next 12 months (yuan, discounted)"),
]
CONTACT_COLUMNS = {
    "sms": [("phone", "Mobile number, E.164 (+86…)")],
    "email": [("email", "Email address")],
    "push": [],
}
CONTROL_COLUMNS = [
    ("member_id", "Member id"),
    ("campaign_id", "The campaign this member is held out of"),
    ("priority_group", "Priority group the member would have been in"),
    ("list_rank", "Rank within the list"),
    ("channel", "Channel the member would have been sent"),
]


@dataclass
class StagedExport:
    """A complete export written to a hidden staging folder, not yet published."""

    export_dir: Path
    as_of: date
    folder: Path | None  # None: nothing to publish (no member to contact)
    manifest: dict = field(default_factory=dict)
    reason: str = ""
    send_files: dict[str, str] = field(default_factory=dict)  # list name -> CSV file name


@dataclass(frozen=True)
class ExportResult:
    folder: Path | None
    manifest: dict
    published: bool
    reason: str = ""


#: Ad platforms of the hashed audience file and how each wants a phone hashed
#: (the email is the normalised address for all of them).
HASHED_PLATFORMS = {
    "google_sha256": "Google Customer Match: SHA-256 of the E.164 phone with '+'",
    "meta_sha256": "Meta (Facebook) custom audiences: SHA-256 of the digits with country code",
    "tiktok_sha256": "TikTok custom audiences: SHA-256 of the digits with country code",
}

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\r\n]+")
_FORMULA_START = tuple("=+-@\t\r＝＋－＠")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LOCK = ".exports.lock"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _columns_for(channels: list[str]) -> list[tuple[str, str]]:
    cols = list(LIST_COLUMNS)
    for ch in ("sms", "email", "push"):
        if ch in channels:
            cols += [c for c in CONTACT_COLUMNS[ch] if c not in cols]
    return cols


def clean_text(df: pd.DataFrame) -> pd.DataFrame:
    """Control characters out of every text cell (tab and line breaks become a space)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: (
                    _CONTROL_CHARS.sub("", _LINE_BREAKS.sub(" ", v)) if isinstance(v, str) else v
                )
            )
    return out


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Neutralise formula triggers in text cells (OWASP): a leading apostrophe.

    A `phone` cell that is a validated E.164 number keeps its `+` so it stays importable.
    """
    out = df.copy()
    for col in out.columns:
        if not (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            continue

        def neutralise(v: object, phone: bool = col == "phone") -> object:
            if not isinstance(v, str) or not v.startswith(_FORMULA_START):
                return v
            if phone and _E164.match(v):
                return v
            return "'" + v

        out[col] = out[col].map(neutralise)
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    # UTF-8 with BOM and CRLF: what Excel on Windows expects for Chinese text.
    spreadsheet_safe(df).to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")


def _write_xlsx(df: pd.DataFrame, path: Path, columns: list[tuple[str, str]], as_of: date) -> None:
    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties({"created": datetime(as_of.year, as_of.month, as_of.day)})
    bold = wb.add_format({"bold": True})
    ws = wb.add_worksheet("targets")
    for j, (col, _) in enumerate(columns):
        ws.write_string(0, j, col, bold)
    for i, row in enumerate(df.itertuples(index=False), start=1):
        for j, value in enumerate(row):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                ws.write_number(i, j, float(value))
            else:
                ws.write_string(i, j, str(value))
    about = wb.add_worksheet("columns")
    about.write_row(0, 0, ["column", "meaning"], bold)
    for i, (col, meaning) in enumerate(columns, start=1):
        about.write_string(i, 0, col)
        about.write_string(i, 1, meaning)
    wb.close()


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def hashed_audience(send: pd.DataFrame) -> pd.DataFrame:
    """One row per send row with a contact identifier: only that row's channel's identifier.

    Reads the warehouse's normalised columns (E.164 phone, normalised email); nothing is
    normalised again here.
    """
    rows = []
    for channel, phone, email in send[["channel", "phone", "email"]].itertuples(index=False):
        if channel == "sms" and isinstance(phone, str) and phone:
            digits = phone.lstrip("+")
            rows.append(("phone", _sha(phone), _sha(digits), _sha(digits)))
        elif channel == "email" and isinstance(email, str) and email:
            h = _sha(email)
            rows.append(("email", h, h, h))
    return pd.DataFrame(rows, columns=["identifier_type", *HASHED_PLATFORMS])


@contextmanager
def export_lock(export_dir: Path) -> Iterator[None]:
    """Serialise writers of one export folder (runs on different warehouses may share it)."""
    export_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(export_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def stage_exports(
    targets: pd.DataFrame,
    *,
    export_dir: Path,
    as_of: date,
    run_id: str,
    lists: list[dict],
    hashed_audience_files: bool,
    forecasts: dict[str, dict] | None = None,
    model: dict | None = None,
) -> StagedExport:
    """Write every list's files into a hidden staging folder (call under `export_lock`).

    `forecasts` (per list: buyers and revenue with intervals) and `model` (the selected
    model, its backtest calibration and bias) go into the manifest as given."""
    sends_total = int((~targets["is_control"]).sum()) if not targets.empty else 0
    if sends_total == 0:
        return StagedExport(
            export_dir=export_dir,
            as_of=as_of,
            folder=None,
            reason="no member to contact in any list (no consent or contact details?); "
            f"nothing was published and the last good export in {export_dir} stays",
        )
    export_dir.mkdir(parents=True, exist_ok=True)
    tmp = export_dir / f".tmp-{as_of.isoformat()}-{run_id[:8]}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    files: dict[str, dict] = {}
    summary: list[dict] = []
    send_files: dict[str, str] = {}
    try:
        for spec in lists:
            name = spec["name"]
            rows = clean_text(targets[targets["list_name"] == name].sort_values(["list_rank"]))
            columns = _columns_for(spec["channels"])
            send = rows[~rows["is_control"]].copy()
            # a row carries only the contact detail its own channel needs
            send.loc[send["channel"] != "sms", "phone"] = None
            send.loc[send["channel"] != "email", "email"] = None
            hashed = hashed_audience(send) if hashed_audience_files else None
            send = send[[c for c, _ in columns]]
            control = rows[rows["is_control"]][[c for c, _ in CONTROL_COLUMNS]]
            outputs = {
                f"{name}.csv": lambda p, d=send: _write_csv(d, p),
                f"{name}.xlsx": lambda p, d=send, c=columns: _write_xlsx(d, p, c, as_of),
                f"{name}.parquet": lambda p, d=send: _write_parquet(d, p),
                f"{name}_control.csv": lambda p, d=control: _write_csv(d, p),
            }
            if hashed is not None:
                outputs[f"{name}_audience_sha256.csv"] = lambda p, d=hashed: _write_csv(d, p)
            for fname, write in outputs.items():
                write(tmp / fname)
            for fname in outputs:
                files[fname] = {
                    "bytes": (tmp / fname).stat().st_size,
                    "sha256": file_sha256(tmp / fname),
                }
            send_files[name] = f"{name}.csv"
            cost = float(rows.loc[~rows["is_control"], "cost_per_contact"].sum())
            summary.append(
                {
                    "list": name,
                    "goal": spec["goal"],
                    "priority": spec["priority"],
                    "send": int(len(send)),
                    "control": int(len(control)),
                    "by_channel": {
                        str(k): int(v)
                        for k, v in rows[~rows["is_control"]]["channel"].value_counts().items()
                    },
                    "budget_yuan": round(cost, 2),
                    "columns": [c for c, _ in columns],
                    "offer": spec["offer"],
                    **({"forecast": forecasts[name]} if forecasts and name in forecasts else {}),
                }
            )
        versions = sorted({str(v) for v in targets["model_version"].dropna().unique()})
        manifest = {
            "run_id": run_id,
            "as_of": as_of.isoformat(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model_version": versions[0] if len(versions) == 1 else versions,
            **({"model": model} if model else {}),
            "lists": summary,
            "totals": {
                "send": sends_total,
                "control": int(targets["is_control"].sum()),
                "budget_yuan": round(sum(s["budget_yuan"] for s in summary), 2),
            },
            "files": files,
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StagedExport(export_dir, as_of, tmp, manifest, send_files=send_files)


def discard(staged: StagedExport) -> None:
    if staged.folder is not None:
        shutil.rmtree(staged.folder, ignore_errors=True)


def publish(staged: StagedExport, *, move_latest: bool = True) -> ExportResult:
    """Make a staged export `<as-of>/` (and `latest`, unless told not to) atomically."""
    if staged.folder is None:
        return ExportResult(folder=None, manifest={}, published=False, reason=staged.reason)
    export_dir = staged.export_dir
    store = export_dir / ".published"
    store.mkdir(exist_ok=True)
    run = staged.manifest["run_id"][:8]
    physical = store / f"{staged.as_of.isoformat()}.{run}"
    if physical.exists():
        shutil.rmtree(physical)
    os.rename(staged.folder, physical)
    link = export_dir / staged.as_of.isoformat()
    _replace_symlink(link, os.path.relpath(physical, export_dir))
    if move_latest:
        _replace_symlink(export_dir / "latest", link.name)
        write_atomic(export_dir / "LATEST", link.name + "\n")
    # the replaced folder stays until the next run's clean_leftovers, so a reader part-way
    # through it is not cut off
    return ExportResult(folder=link, manifest=staged.manifest, published=True)


def _replace_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".link-{link.name}-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    if link.is_dir() and not link.is_symlink():  # an export folder of an earlier layout
        old = link.with_name(f".old-{link.name}-{os.getpid()}")
        os.rename(link, old)
        os.replace(tmp, link)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(tmp, link)


def _target_of(link: Path) -> Path | None:
    if not link.is_symlink():
        return None
    return (link.parent / os.readlink(link)).resolve()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _export_dates(export_dir: Path) -> dict[date, Path]:
    """Published exports by as-of date (a `<as-of>` link or folder holding a manifest)."""
    found: dict[date, Path] = {}
    if not export_dir.is_dir():
        return found
    for p in export_dir.iterdir():
        try:
            day = date.fromisoformat(p.name)
        except ValueError:
            continue
        if (p / "manifest.json").is_file():
            found[day] = p
    return found


def newest_published(export_dir: Path) -> date | None:
    days = _export_dates(export_dir)
    return max(days) if days else None


def is_backfill(export_dir: Path, as_of: date) -> bool:
    """A run for a day earlier than the newest published export: it must not move `latest`,
    `models/LATEST` or write contact history (contacts that never happened)."""
    newest = newest_published(export_dir)
    return newest is not None and as_of < newest


def clean_leftovers(export_dir: Path) -> list[str]:
    """Remove what a killed run left behind and repair `latest` (call under `export_lock`).

    Staging folders (`.tmp-*`, full send files), half-made links, folders of an earlier
    swap (`.old-*`), published folders no `<as-of>` link points at; a `latest` that does
    not resolve is pointed at the newest complete export. Returns what was removed.
    """
    removed: list[str] = []
    if not export_dir.is_dir():
        return removed
    for p in export_dir.iterdir():
        if p.name.startswith((".tmp-", ".old-", ".link-", ".latest-", ".LATEST")):
            _remove(p)
            removed.append(p.name)
    store = export_dir / ".published"
    if store.is_dir():
        referenced = {
            t for p in export_dir.iterdir() if p.is_symlink() and (t := _target_of(p)) is not None
        }
        for p in store.iterdir():
            if p.resolve() not in referenced:
                _remove(p)
                removed.append(f".published/{p.name}")
    latest = export_dir / "latest"
    days = _export_dates(export_dir)
    if (latest.is_symlink() and not latest.exists()) or (not latest.exists() and days):
        if days:
            newest = days[max(days)].name
            _replace_symlink(latest, newest)
            (export_dir / "LATEST").write_text(newest + "\n", encoding="utf-8")
        else:
            latest.unlink(missing_ok=True)
            (export_dir / "LATEST").unlink(missing_ok=True)
        removed.append("latest (dangling)")
    return removed


def apply_retention(
    export_dir: Path, keep_days: int, today: date, keep: tuple[date, ...] = ()
) -> list[str]:
    """Delete exports whose as-of date is more than `keep_days` before `today`.

    The export `latest` points at, and the days in `keep` (the one just published), are
    never deleted. Returns the deleted as-of dates.
    """
    keep_from = today - timedelta(days=keep_days)
    latest = _target_of(export_dir / "latest")
    deleted = []
    for day, path in sorted(_export_dates(export_dir).items()):
        if (
            day >= keep_from
            or day in keep
            or path.resolve() == (latest.resolve() if latest else None)
        ):
            continue
        target = _target_of(path)
        _remove(path)
        if target is not None:
            _remove(target)
        deleted.append(day.isoformat())
    return deleted


def verify_send_files(
    con: duckdb.DuckDBPyConnection, staged: StagedExport, consent_mode: str
) -> tuple[int, list[str]]:
    """Independent safety check of the files actually written (before they are published).

    Reads every send CSV back (undoing only the apostrophe of formula escaping) and, for
    every row, looks the member up in the staged members table: the file's phone and
    email must be the member's own normalised ones, the member must have marketing
    consent (per the playbook's consent mode), and no identifier of the row or of the
    member may be on the normalised do-not-contact list (member id case-insensitively).
    Nothing of campaign_members / campaign_targets is used, so a bug in the list SQL
    cannot hide here too. Returns (violations, examples); examples name list, file line
    and rule, never personal data.
    """
    if staged.folder is None or not staged.send_files:
        return 0, []
    reads = []
    for name, fname in staged.send_files.items():
        path = staged.folder / fname
        scan = f"read_csv('{_sql_path(path)}', header=true, all_varchar=true)"
        present = {r[0] for r in con.execute(f"describe select * from {scan}").fetchall()}
        phone = "phone" if "phone" in present else "null"
        email = "email" if "email" in present else "null"
        reads.append(
            f"select '{name}' as list_name, '{fname}' as file, cast(ordinality + 1 as bigint) "
            f"as line, member_id, channel, {phone} as phone, {email} as email "
            f"from {scan} with ordinality"
        )
    unescape = (
        "case when regexp_matches({c}, '^''[=+\\-@\t\r＝＋－＠]') then substr({c}, 2) else {c} end"
    )
    consent_bad = (
        "m.marketing_consent is not distinct from false"
        if consent_mode == "opt_out"
        else "m.marketing_consent is distinct from true"
    )
    sql = f"""
        with raw_rows as ({" union all ".join(reads)}),
        sent as (
            select list_name, file, line, {unescape.format(c="member_id")} as member_id,
                channel, {unescape.format(c="phone")} as phone,
                {unescape.format(c="email")} as email
            from raw_rows
        ),
        checked as (
            select s.*, u.member_id as known_id, m.phone as member_phone,
                m.email as member_email, m.marketing_consent
            from sent as s
            left join staging.stg_shop__members as m on m.member_id = s.member_id
            left join intermediate.int_members_unioned as u on u.member_id = s.member_id
        ),
        x as (select * from staging.stg_shop__suppression),
        violations as (
            select list_name, file, line, 'member id on the do-not-contact list' as rule
            from checked join x on x.member_key = lower(checked.member_id)
            union all
            select list_name, file, line, 'phone on the do-not-contact list'
            from checked join x on x.phone = checked.phone
            union all  -- equality joins only: a join on `or` compares every row with every entry
            select list_name, file, line, 'phone on the do-not-contact list'
            from checked join x on x.phone = checked.member_phone
            union all
            select list_name, file, line, 'email on the do-not-contact list'
            from checked join x on x.email = checked.email
            union all
            select list_name, file, line, 'email on the do-not-contact list'
            from checked join x on x.email = checked.member_email
            union all
            select list_name, file, line, 'no marketing consent'
            from checked as m where {consent_bad}
            union all
            select list_name, file, line, 'member id not among the members'
            from checked where known_id is null
            union all
            select list_name, file, line, 'phone is not the member''s own'
            from checked where phone is not null and phone is distinct from member_phone
            union all
            select list_name, file, line, 'email is not the member''s own'
            from checked where email is not null and email is distinct from member_email
            union all
            select list_name, file, line, 'sms row without a phone / email row without an email'
            from checked
            where (channel = 'sms' and phone is null) or (channel = 'email' and email is null)
        )
        select count(*) over () as n, list_name, file, line, rule
        from violations order by list_name, line limit 5
    """
    rows = con.execute(sql).fetchall()
    if not rows:
        return 0, []
    return int(rows[0][0]), [f"{r[1]} ({r[2]} line {r[3]}): {r[4]}" for r in rows]


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def record_contacts(con, as_of: date) -> int:
    """Record this day's list members in campaigns.contact_history (replacing the day's rows).

    Cool-downs and contact caps read this history (earlier days only), so a
    re-run of the same day reproduces its lists.
    """
    con.execute("delete from campaigns.contact_history where as_of_date = ?", [as_of])
    con.execute(
        "insert into campaigns.contact_history (as_of_date, list_name, member_id, channel, "
        "is_control, priority_group, lifecycle_stage, campaign_id) "
        "select ?, list_name, member_id, channel, is_control, priority_group, lifecycle_stage, "
        "campaign_id from marts.campaign_targets",
        [as_of],
    )
    return con.execute(
        "select count(*) from campaigns.contact_history where as_of_date = ?", [as_of]
    ).fetchall()[0][0]
