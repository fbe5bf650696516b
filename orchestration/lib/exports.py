"""Write the campaign lists as files marketing can open, and publish them atomically.

Layout under CRM_EXPORT_DIR:

    <as-of>/<list>.csv            send rows, UTF-8 with BOM (Excel opens Chinese text correctly)
    <as-of>/<list>.xlsx           the same rows + a sheet describing the columns
    <as-of>/<list>.parquet        the same rows, typed
    <as-of>/<list>_control.csv    the held-out control group (never contacted)
    <as-of>/<list>_audience_sha256.csv   optional: hashed phone/email for ad platforms
    <as-of>/manifest.json         run, as-of, model version, counts, columns, checksums
    latest -> <as-of>             symlink, switched only after a complete export
    LATEST                        the same, as text (for systems without symlinks)

A run writes into a hidden temporary folder and renames it into place; an
empty or failed run never replaces the last good export. Files are
byte-identical for the same inputs (timestamps live only in manifest.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

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
    ("reason", "Why this member is on the list (stage / segment; scores)"),
    ("lifecycle_stage", "Lifecycle stage"),
    ("rfm_segment", "RFM segment"),
    ("p_purchase_60d", "Probability of buying in the next 60 days"),
    ("predicted_clv_12m", "Predicted value of the next 12 months (yuan, discounted)"),
]
CONTACT_COLUMNS = {
    "sms": [("phone", "Mobile number, E.164 (+86…)")],
    "email": [("email", "Email address")],
    "push": [],
}
CONTROL_COLUMNS = [
    ("member_id", "Member id"),
    ("priority_group", "Priority group the member would have been in"),
    ("list_rank", "Rank within the list"),
    ("channel", "Channel the member would have been sent"),
]


@dataclass(frozen=True)
class ExportResult:
    folder: Path | None
    manifest: dict
    published: bool
    reason: str = ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def normalise_phone(phone: object) -> str | None:
    """E.164: 11-digit mainland mobiles get +86; other numbers keep their digits."""
    if not isinstance(phone, str) or not phone.strip():
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return "+" + digits if digits else None


def normalise_email(email: object) -> str | None:
    """Trimmed, lower-case; None when it is not an address."""
    return email.strip().lower() if isinstance(email, str) and "@" in email else None


def _sha(value: str | None) -> str | None:
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if value else None


def _columns_for(channels: list[str]) -> list[tuple[str, str]]:
    cols = list(LIST_COLUMNS)
    for ch in ("sms", "email", "push"):
        if ch in channels:
            cols += [c for c in CONTACT_COLUMNS[ch] if c not in cols]
    return cols


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    # UTF-8 with BOM and CRLF: what Excel on Windows expects for Chinese text.
    df.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")


def _write_xlsx(df: pd.DataFrame, path: Path, columns: list[tuple[str, str]], as_of: date) -> None:
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
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
        about.write_row(i, 0, [col, meaning])
    wb.close()


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def write_exports(
    targets: pd.DataFrame,
    *,
    export_dir: Path,
    as_of: date,
    run_id: str,
    lists: list[dict],
    hashed_audience: bool,
) -> ExportResult:
    """Write every list's files into a temp folder, then publish it as `<as-of>/`."""
    sends_total = int((~targets["is_control"]).sum()) if not targets.empty else 0
    if sends_total == 0:
        return ExportResult(
            folder=None,
            manifest={},
            published=False,
            reason="no member to contact in any list (no consent or contact details?); "
            f"nothing was published and the last good export in {export_dir} stays",
        )
    export_dir.mkdir(parents=True, exist_ok=True)
    tmp = export_dir / f".tmp-{as_of.isoformat()}-{run_id[:8]}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: dict[str, dict] = {}
    summary: list[dict] = []
    try:
        for spec in lists:
            name = spec["name"]
            rows = targets[targets["list_name"] == name].sort_values(["list_rank"])
            columns = _columns_for(spec["channels"])
            send = rows[~rows["is_control"]].copy()
            # a row carries only the contact detail its own channel needs
            send.loc[send["channel"] != "sms", "phone"] = None
            send.loc[send["channel"] != "email", "email"] = None
            send = send[[c for c, _ in columns]]
            control = rows[rows["is_control"]][[c for c, _ in CONTROL_COLUMNS]]
            outputs = {
                f"{name}.csv": lambda p, d=send: _write_csv(d, p),
                f"{name}.xlsx": lambda p, d=send, c=columns: _write_xlsx(d, p, c, as_of),
                f"{name}.parquet": lambda p, d=send: _write_parquet(d, p),
                f"{name}_control.csv": lambda p, d=control: _write_csv(d, p),
            }
            if hashed_audience:
                hashed = pd.DataFrame(
                    {
                        "phone_sha256": [_sha(normalise_phone(v)) for v in rows["phone"]],
                        "email_sha256": [_sha(normalise_email(v)) for v in rows["email"]],
                    }
                )
                hashed = hashed[~rows["is_control"].to_numpy()]
                outputs[f"{name}_audience_sha256.csv"] = lambda p, d=hashed: _write_csv(d, p)
            for fname, write in outputs.items():
                write(tmp / fname)
            for fname in outputs:
                files[fname] = {
                    "bytes": (tmp / fname).stat().st_size,
                    "sha256": _sha256(tmp / fname),
                }
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
                }
            )
        versions = sorted({str(v) for v in targets["model_version"].dropna().unique()})
        manifest = {
            "run_id": run_id,
            "as_of": as_of.isoformat(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model_version": versions[0] if len(versions) == 1 else versions,
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
    final = export_dir / as_of.isoformat()
    _swap_in(tmp, final)
    _point_latest(export_dir, final.name)
    return ExportResult(folder=final, manifest=manifest, published=True)


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace `final` with `tmp` so readers see the old folder or the new one, never half."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _point_latest(export_dir: Path, name: str) -> None:
    link = export_dir / "latest"
    tmp_link = export_dir / f".latest-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(name, tmp_link)
    os.replace(tmp_link, link)
    tmp_txt = export_dir / f".LATEST-{os.getpid()}"
    tmp_txt.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp_txt, export_dir / "LATEST")


def record_contacts(con, as_of: date) -> int:
    """Record this day's list members in campaigns.contact_history (replacing the day's rows).

    Cool-downs and contact caps read this history (earlier days only), so a
    re-run of the same day reproduces its lists.
    """
    con.execute("delete from campaigns.contact_history where as_of_date = ?", [as_of])
    con.execute(
        "insert into campaigns.contact_history "
        "select ?, list_name, member_id, channel, is_control from marts.campaign_targets",
        [as_of],
    )
    return con.execute(
        "select count(*) from campaigns.contact_history where as_of_date = ?", [as_of]
    ).fetchall()[0][0]
