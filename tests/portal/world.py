"""A small published world for the portal tests, built in a temp folder (no pipeline run;
the fixtures are in conftest.py).

- exports/: two day folders written and published by orchestration.lib.exports itself
  (2026-06-29 and 2026-06-30, LATEST = 2026-06-30) with real manifests and checksums;
  2026-06-29's win_back.csv is tampered with after publishing; a folder that is not a date
  also holds a manifest.json; a secret file lies beside the export folder.
- warehouse.duckdb: marts.campaign_results, marts.campaign_exclusions and
  marts.campaign_targets shaped like the dbt models (results of one earlier campaign).
- models/: LATEST, a model card and a plot.
- users: marketer `mia`, analyst `ann`, admin `ada` (passwords PASSWORDS[name]).

The send files carry names, phones and emails (PERSONAL) that no page may show.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from fastapi.testclient import TestClient

from orchestration.lib import exports
from orchestration.portal.app import create_app
from orchestration.portal.auth import create_user
from orchestration.portal.charts import message_chart
from orchestration.portal.store import Store
from orchestration.settings import PROJECT_ROOT, Settings, load_settings

DAY = "2026-06-30"
OLD_DAY = "2026-06-29"
PASSWORDS = {
    "mia": "marketing-pass-1",
    "ann": "analysis-pass-22",
    "ada": "admin-pass-333x",
}
ROLES = {"mia": "marketer", "ann": "analyst", "ada": "admin"}
SECRET = "TOP-SECRET-NOT-IN-EXPORTS"

#: Seeded personal data: none of it may appear on any page.
NAMES = ["张伟明", "李秀英", "王建国", "刘晓燕", "陈志强", "Johanna Smithfield"]
PHONES = [f"+86139{n:08d}" for n in (12345671, 22345672, 32345673, 42345674, 52345675, 62345)]
EMAILS = [f"person{i}.private@example-mail.cn" for i in range(6)]
BIRTHDAYS = ["1984-03-17", "1990-11-02", "1979-07-23", "2001-01-30", "1965-05-05", "1995-12-12"]
PERSONAL = [*NAMES, *PHONES, *EMAILS, *BIRTHDAYS]

LISTS = [
    {
        "name": "win_back",
        "goal": "win-back",
        "priority": 1,
        "channels": ["sms", "email"],
        "offer": {"type": "coupon", "threshold": 199.0, "amount": 30.0, "validity_days": 14},
    },
    {
        "name": "retention",
        "goal": "retention",
        "priority": 2,
        "channels": ["sms", "push", "email"],
        "offer": {"type": "coupon", "threshold": 299.0, "amount": 50.0, "validity_days": 21},
    },
]


def targets(as_of: date) -> pd.DataFrame:
    """Rows shaped like marts.campaign_targets (the columns the export writes, and more)."""
    campaign = f"{(as_of + timedelta(days=1)):%Y%m%d}"
    rows = []
    for i in range(24):
        list_name = "win_back" if i < 16 else "retention"
        rank = i + 1 if list_name == "win_back" else i - 15
        channel = ("sms", "email", "push")[i % 3] if list_name == "retention" else "sms"
        if list_name == "win_back" and i % 4 == 3:
            channel = "email"
        rows.append(
            {
                "as_of_date": as_of,
                "list_name": list_name,
                "goal": "win-back" if list_name == "win_back" else "retention",
                "member_id": f"M{i:05d}",
                "list_rank": rank,
                "priority_group": 1 + (rank - 1) // 4,
                "name": NAMES[i % len(NAMES)],
                "phone": PHONES[i % len(PHONES)],
                "email": EMAILS[i % len(EMAILS)],
                "birthday": BIRTHDAYS[i % len(BIRTHDAYS)],
                "channel": channel,
                "offer_type": "coupon",
                "offer_threshold": 199.0 if list_name == "win_back" else 299.0,
                "offer_amount": 30.0 if list_name == "win_back" else 50.0,
                "offer_valid_until": as_of + timedelta(days=14),
                "campaign_id": f"{list_name}-{campaign}",
                "coupon_code": f"CPN{i:06d}SECRET",
                "reason": "silent / Loyal; p(buy 60d) 0.37",
                "lifecycle_stage": "silent",
                "rfm_segment": "Loyal",
                "churn_odds": 0.6,
                "churn_horizon_days": 60,
                "predicted_clv_12m": 1234.5,
                "is_control": i % 5 == 4,
                "cost_per_contact": 0.05 if channel == "sms" else 0.01,
                "model_version": f"{as_of.isoformat()}_abcd1234",
            }
        )
    return pd.DataFrame(rows)


def forecasts(frame: pd.DataFrame) -> dict[str, dict]:
    """A manifest forecast per list (per priority group, 90% intervals)."""
    out = {}
    for name, rows in frame[~frame["is_control"]].groupby("list_name"):
        groups, cumulative = [], 0.0
        for group, members in rows.groupby("priority_group"):
            buyers = 0.3 * len(members)
            cumulative += buyers
            groups.append(
                {
                    "priority_group": int(group),
                    "customers": len(members),
                    "expected_buyers": buyers,
                    "buyers_low": buyers * 0.6,
                    "buyers_high": buyers * 1.4,
                    "expected_revenue": buyers * 250,
                    "revenue_low": buyers * 150,
                    "revenue_high": buyers * 350,
                    "cumulative_buyers": cumulative,
                }
            )
        out[str(name)] = {
            "horizon_days": 60,
            "interval": "90%",
            "total": {
                "customers": len(rows),
                "expected_buyers": cumulative,
                "buyers_low": cumulative * 0.7,
                "buyers_high": cumulative * 1.3,
                "expected_revenue": cumulative * 250,
                "revenue_low": cumulative * 180,
                "revenue_high": cumulative * 320,
            },
            "groups": groups,
        }
    return out


def publish_day(export_dir: Path, as_of: date, run_id: str) -> pd.DataFrame:
    frame = targets(as_of)
    with exports.export_lock(export_dir):
        staged = exports.stage_exports(
            frame,
            export_dir=export_dir,
            as_of=as_of,
            run_id=run_id,
            lists=LISTS,
            hashed_audience_files=False,
            forecasts=forecasts(frame),
        )
        exports.publish(staged)
    return frame


def build_warehouse(path: Path, frame: pd.DataFrame) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema marts")
        con.register("targets_df", frame)
        con.execute("create table marts.campaign_targets as select * from targets_df")
        results = []
        for group in (None, 1, 2, 3):
            scale = 1 if group is not None else 3
            results.append(
                {
                    "campaign_id": "win_back-20260501",
                    "list_name": "win_back",
                    "sent_on": date(2026, 5, 1),
                    "priority_group": group,
                    "channel": None,
                    "window_days": 60,
                    "window_closed": True,
                    "treated": 400 * scale,
                    "control": 45 * scale,
                    "not_delivered": 3 * scale,
                    "treated_buyers": 60 * scale,
                    "control_buyers": 4 * scale,
                    "treated_rate": 0.15,
                    "control_rate": 0.0889,
                    "uplift": 0.0611 if group != 3 else -0.01,
                    "uplift_ci_low": 0.0123,
                    "uplift_ci_high": 0.1034,
                    "ci_method": "Newcombe hybrid score (Wilson), 95%",
                    "min_detectable_uplift": 0.12,
                    "incremental_buyers": 24.4 * scale,
                    "treated_revenue": 15000.0 * scale,
                    "control_revenue_per_member": 21.0,
                    "incremental_revenue": 6600.0 * scale if group != 3 else -100.0,
                    "coupons_issued": 400 * scale,
                    "coupons_redeemed": 50 * scale,
                    "redemption_rate": 0.125,
                    "subsidy": 1500.0 * scale,
                    "message_cost": 20.0 * scale,
                    "roi": 3.3,
                    "recall_rate": 0.1,
                    "reach_rate": None,
                }
            )
        # a per-channel row (channel not null) the results page must not show
        results.append({**results[0], "channel": "sms", "campaign_id": "win_back-20260501"})
        con.register("results_df", pd.DataFrame(results))
        con.execute(
            "create table marts.campaign_results as select * replace "
            "(cast(priority_group as integer) as priority_group, "
            "cast(channel as varchar) as channel, cast(reach_rate as double) as reach_rate) "
            "from results_df"
        )
        exclusions = pd.DataFrame(
            {
                "list_name": ["win_back"] * 5 + ["retention"] * 2,
                "member_id": [f"X{i}" for i in range(7)],
                "reason": [
                    "no marketing consent",
                    "no marketing consent",
                    "contacted on 2026-06-25 (cool-down 7 days)",
                    "contacted on 2026-06-26 (cool-down 7 days)",
                    "<script>alert(1)</script>",
                    "beyond the list cap",
                    "assigned to higher-priority list win_back",
                ],
            }
        )
        con.register("exclusions_df", exclusions)
        con.execute("create table marts.campaign_exclusions as select * from exclusions_df")
    finally:
        con.close()


def build_models(models_dir: Path) -> None:
    folder = models_dir / "2026-06-30_abcd1234"
    folder.mkdir(parents=True)
    (folder / "model_card.md").write_text(
        "# Model card: purchase models — 2026-06-30_abcd1234\n\n"
        "## Backtest\n\n| Model | RMSE |\n|---|---|\n| **bgnbd** (selected) | 1.738 |\n\n"
        "<script>alert('card')</script>\n",
        encoding="utf-8",
    )
    (folder / "decile_lift.png").write_bytes(message_chart("decile lift"))
    (models_dir / "LATEST").write_text("2026-06-30_abcd1234\n", encoding="utf-8")


@dataclass
class World:
    root: Path
    settings: Settings
    store: Store
    make_client: Callable[..., TestClient]

    @property
    def export_dir(self) -> Path:
        return self.settings.export_dir


def make_settings(root: Path, **fields: object) -> Settings:
    return load_settings(
        env_file=None,
        warehouse=root / "warehouse.duckdb",
        export_dir=root / "exports",
        models_dir=root / "models",
        dagster_home=root / "dagster_home",
        playbook=root / "campaigns.yml",
        **fields,
    )


def build_world(root: Path) -> World:
    """Write the exports, warehouse, models, playbook and users under `root`."""
    export_dir = root / "exports"
    publish_day(export_dir, date(2026, 6, 29), "11111111-aaaa")
    frame = publish_day(export_dir, date(2026, 6, 30), "22222222-bbbb")
    # tamper with a published file of the older day (its manifest keeps the old checksum)
    with (export_dir / OLD_DAY / "win_back.csv").open("ab") as fh:
        fh.write(b"M99999,intruder,sms\r\n")
    # a folder that is not a day but holds a manifest: never served
    (export_dir / "not-a-date").mkdir()
    (export_dir / "not-a-date" / "manifest.json").write_text(
        '{"files": {"passwd": {"sha256": "x"}}, "lists": []}', encoding="utf-8"
    )
    (root / "outside").mkdir()
    (root / "outside" / "passwd").write_text(SECRET, encoding="utf-8")
    (root / "secret.txt").write_text(SECRET, encoding="utf-8")
    build_warehouse(root / "warehouse.duckdb", frame)
    build_models(root / "models")
    shutil.copy(PROJECT_ROOT / "campaigns.yml", root / "campaigns.yml")
    store = Store(make_settings(root).portal_db)  # type: ignore[arg-type]
    for name, password in PASSWORDS.items():
        create_user(store, name, ROLES[name], password)
    return open_world(root)


def open_world(root: Path) -> World:
    """The World of files build_world wrote under `root` (e.g. a copy of them)."""
    settings = make_settings(root)
    store = Store(settings.portal_db)  # type: ignore[arg-type]

    def make_client(**overrides: object) -> TestClient:
        s = make_settings(root, **overrides) if overrides else settings
        return TestClient(create_app(s), follow_redirects=False)

    return World(root, settings, store, make_client)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found[1]


def sign_in(client: TestClient, name: str, password: str | None = None, **extra: str):
    """Sign in through the form (pre-session CSRF cookie + field); returns the response."""
    page = client.get("/login")
    token = csrf_of(page.text)
    form = {
        "username": name,
        "password": PASSWORDS.get(name, "") if password is None else password,
        "csrf_token": token,
        **extra,
    }
    return client.post("/login", data=form)


def audit_rows(world: World, action: str) -> list[sqlite3.Row]:
    """The portal's audit rows of one action, oldest first."""
    con = sqlite3.connect(world.settings.portal_db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("select * from audit where action = ? order by id", [action]).fetchall()
    finally:
        con.close()
