"""Campaign lists and exports on demo data plus hand-made members with known fates.

As of 2024-06-30 (campaign month July). Hand-made members, all silent repeat buyers
(so all in the win_back audience):
  H_OPTOUT     said no to marketing               -> never sent
  H_SUPP       phone on the do-not-contact list   -> never sent
  H_TWO        birthday in July: win_back AND birthday_care audiences -> only win_back
  H_EMAILONLY  no phone, has email                -> sent by email
  H_NOCONTACT  no phone, no email                 -> not sendable
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import openpyxl
import pytest

from orchestration.lib.demo_data import generate_demo_data
from tests.conftest import point_env_at

pytestmark = pytest.mark.integration
AS_OF = "2024-06-30"
HAND = {
    # member_id: (name, birthday, phone, email, consent)
    "H_OPTOUT": ("欧阳娜", "1990-03-01", "13900000001", "h1@example.com", "false"),
    "H_SUPP": ("司马光", "1985-02-01", "13900000002", "h2@example.com", "true"),
    "H_TWO": ("诸葛亮", "1988-07-15", "13900000003", "", "true"),
    "H_EMAILONLY": ("上官婉", "1992-01-20", "", "h4@example.com", "true"),
    "H_NOCONTACT": ("东方朔", "1979-05-05", "", "", "true"),
}


def _add_hand_made(landing: Path) -> None:
    with (landing / "members.csv").open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        for mid, (name, bday, phone, email, consent) in HAND.items():
            w.writerow(
                [
                    mid,
                    "2023-06-01",
                    name,
                    "F",
                    bday,
                    "上海",
                    phone,
                    email,
                    "tmall",
                    "20.00",
                    consent,
                ]
            )
    with (landing / "orders.csv").open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        for i, mid in enumerate(HAND):
            w.writerow([f"HX{i}a", mid, "2023-10-01 10:00:00", "300.00", "paid", "jd", "", ""])
            w.writerow([f"HX{i}b", mid, "2024-01-15 10:00:00", "280.00", "paid", "jd", "", ""])
    (landing / "suppression.csv").write_text(
        "phone,reason\n139 0000 0002,complaint\n", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("campaigns")
    generate_demo_data(root / "landing", members=1500, seed=11, end=date(2024, 6, 30))
    _add_hand_made(root / "landing")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root)
        mp.setenv("CRM_AS_OF", AS_OF)
        mp.setenv("CRM_EXPORT_HASHED_AUDIENCE", "true")
        from orchestration.runner import run_pipeline

        first = run_pipeline()
        assert first.success, first.failure
        folder = root / "exports" / AS_OF
        snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}
        second = run_pipeline()  # same inputs, same as-of
        # keep that day's warehouse for the tests, then run the next day
        shutil.copyfile(root / "warehouse.duckdb", root / "day1.duckdb")
        mp.setenv("CRM_AS_OF", "2024-07-01")
        third = run_pipeline()
    assert third.success, third.failure
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as day2:
        next_day = dict(
            day2.execute(
                "select member_id || '/' || list_name, reason from marts.campaign_exclusions "
                "where member_id in ('H_TWO', 'H_EMAILONLY') and list_name = 'win_back'"
            ).fetchall()
        )
    con = duckdb.connect(str(root / "day1.duckdb"), read_only=True)
    yield root, con, snapshot, second, next_day
    con.close()


def test_hand_made_members_land_where_expected(campaign_run) -> None:
    _, con, _, _, _ = campaign_run
    targets = dict(
        con.execute(
            "select member_id, list_name || ':' || channel from marts.campaign_targets "
            "where member_id like 'H\\_%' escape '\\'"
        ).fetchall()
    )
    assert targets == {"H_TWO": "win_back:sms", "H_EMAILONLY": "win_back:email"}
    reasons = dict(
        con.execute(
            "select member_id || '/' || list_name, reason from marts.campaign_exclusions "
            "where member_id like 'H\\_%' escape '\\'"
        ).fetchall()
    )
    assert reasons == {
        "H_OPTOUT/win_back": "no marketing consent",
        "H_SUPP/win_back": "on the do-not-contact list",
        "H_NOCONTACT/win_back": "no contact detail for the list's channels",
        "H_TWO/birthday_care": "assigned to higher-priority list win_back",
    }


def test_each_member_in_at_most_one_list_and_all_sendable(campaign_run) -> None:
    _, con, _, _, _ = campaign_run
    dupes, no_consent = con.execute(
        "select count(*) - count(distinct t.member_id), "
        "count(*) filter (where not t.is_control and m.marketing_consent is distinct from true) "
        "from marts.campaign_targets t join intermediate.int_members_unioned m using (member_id)"
    ).fetchall()[0]
    assert (dupes, no_consent) == (0, 0)
    lists = con.execute(
        "select list_name, count(*) from marts.campaign_targets group by 1"
    ).fetchall()
    assert {name for name, _ in lists} >= {"win_back", "activation"}


def test_send_files_exclude_control_and_unsendable_members(campaign_run) -> None:
    root, con, _, _, _ = campaign_run
    folder = root / "exports" / AS_OF
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    control = {
        r[0]
        for r in con.execute(
            "select member_id from marts.campaign_targets where is_control"
        ).fetchall()
    }
    for entry in manifest["lists"]:
        name = entry["list"]
        raw = (folder / f"{name}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), "CSV must carry a BOM for Excel"
        rows = list(csv.DictReader((folder / f"{name}.csv").open(encoding="utf-8-sig")))
        ids = {r["member_id"] for r in rows}
        assert len(rows) == entry["send"]
        assert not ids & control
        assert not ids & {"H_OPTOUT", "H_SUPP", "H_NOCONTACT"}
        ctrl = {
            r["member_id"]
            for r in csv.DictReader((folder / f"{name}_control.csv").open(encoding="utf-8-sig"))
        }
        assert len(ctrl) == entry["control"] and ctrl <= control
        # only the contact detail each row's channel needs; no raw PII in the hashed file
        assert all(set(r) == set(entry["columns"]) for r in rows)
        for r in rows:
            assert not r.get("email") or r["channel"] == "email"
            assert not r.get("phone") or r["channel"] == "sms"
        hashed = (folder / f"{name}_audience_sha256.csv").read_text(encoding="utf-8-sig")
        assert "+86" not in hashed and "@" not in hashed
        for fname, meta in manifest["files"].items():
            assert hashlib.sha256((folder / fname).read_bytes()).hexdigest() == meta["sha256"]
    # the next day's run moved `latest`; this day's folder stays as published
    assert (root / "exports" / "latest").resolve() == (root / "exports" / "2024-07-01").resolve()
    assert (folder / "manifest.json").exists()


def test_xlsx_opens_with_chinese_names_and_column_sheet(campaign_run) -> None:
    root, _, _, _, _ = campaign_run
    wb = openpyxl.load_workbook(root / "exports" / AS_OF / "win_back.xlsx", read_only=True)
    assert wb.sheetnames == ["targets", "columns"]
    rows = list(wb["targets"].iter_rows(values_only=True))
    header = rows[0]
    by_id = {r[header.index("member_id")]: r for r in rows[1:]}
    assert by_id["H_TWO"][header.index("name")] == "诸葛亮"
    assert by_id["H_TWO"][header.index("phone")] == "+8613900000003"
    meanings = dict(list(wb["columns"].iter_rows(values_only=True))[1:])
    assert "priority_group" in meanings


def test_same_inputs_give_byte_identical_exports(campaign_run) -> None:
    root, _, snapshot, second, _ = campaign_run
    assert second.success, second.failure
    again = {p.name: p.read_bytes() for p in (root / "exports" / AS_OF).iterdir()}
    assert set(again) == set(snapshot)
    changed = [n for n in snapshot if snapshot[n] != again[n] and n != "manifest.json"]
    assert changed == []


def test_next_day_respects_the_cool_down(campaign_run) -> None:
    *_, next_day = campaign_run
    # both were sent on 2024-06-30; the playbook's cool-down is 7 days
    assert next_day == {
        "H_TWO/win_back": "on a list on 2024-06-30 (cool-down 7 days)",
        "H_EMAILONLY/win_back": "on a list on 2024-06-30 (cool-down 7 days)",
    }
