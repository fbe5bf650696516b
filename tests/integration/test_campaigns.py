"""Campaign lists and exports on demo data plus hand-made members with known fates.

As of 2024-06-30 (campaign month July). Hand-made members, all silent repeat buyers
(so all in the win_back audience):
  H_OPTOUT     said no to marketing               -> never sent
  H_SUPP       phone on the do-not-contact list   -> never sent
  H_TWO        birthday in July: win_back AND birthday_care audiences -> only win_back
  H_EMAILONLY  no phone, has email                -> sent by email
  H_NOCONTACT  no phone, no email                 -> not sendable
  S_*          identifiers written in everyday forms on both sides of the do-not-contact
               list (phones with and without 86 / 0086 / +86 and separators, member ids
               in another case or with invisible characters, mailto: and upper-case
               emails)                              -> all suppressed
  F_*          names / ids / emails that are spreadsheet formulas -> sent, neutralised
  K_*          coupon holders (coupon_events_hand.csv) against the playbook's coupon
               rules: K_HOLDS2 holds two open coupons, K_REDEEMED redeemed a win_back
               coupon on 05-10, K_SAMEOFFER got one on 06-15 -> not on win_back;
               K_HOLDS1 holds one                   -> on win_back
The next day (2024-07-01) a send log lands for win_back: H_TWO's SMS bounced, H_EMAILONLY's
email was delivered -> only H_EMAILONLY is in the cool-down.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from datetime import date
from pathlib import Path

import duckdb
import openpyxl
import pytest

from orchestration.demo import generate_demo_data
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


def _split(p: str) -> tuple[str, str, str]:
    return p[:3], p[3:7], p[7:]


MEMBER_PHONE_FORMS = [
    lambda p: "+86 {} {} {}".format(*_split(p)),
    lambda p: f"86{p}",
    lambda p: p,
    lambda p: f"0086-{p}",
    lambda p: "(+86) {}-{}-{}".format(*_split(p)),
]
SUPPRESSION_PHONE_FORMS = [
    lambda p: p,
    lambda p: f"0086 {p}",
    lambda p: f"86{p}",
    lambda p: "+86 {} {} {}".format(*_split(p)),
    lambda p: "{}.{}.{}".format(*_split(p)),
]
# member id / email as in the members file -> as on the do-not-contact list
SUPPRESSED_BY_ID_OR_EMAIL = {
    "S_ID_CASE": ("S_ID_CASE", "", "s_id_case", ""),
    "S_ID_ZW": ("S_ID_ZW\u200b", "", "\u00a0S_ID_ZW ", ""),
    "S_EM_MAILTO": ("S_EM_MAILTO", "Foo.Bar@Example.COM", "", "mailto:foo.bar@example.com"),
    "S_EM_UPPER": ("S_EM_UPPER", " mailto:S2@example.com", "", "s2@EXAMPLE.com "),
}
FORMULAS = {
    # member_id: (name, phone, email)
    "F_LINK": ('=HYPERLINK("http://evil.example/x","click")', "13955550001", ""),
    "F_CMD": ("+cmd|' /C calc'!A0", "13955550002", ""),
    "F_AT": ("@SUM(1+1)", "", "-x@example.com"),
    "F_WIDE": ("\uff1d1+1\u0007bell", "13955550004", ""),
    "-F_DASH": ("\tTab", "13955550005", ""),
}


def _matrix_phone(i: int, j: int) -> str:
    return f"139{i:02d}{j:02d}7777"


def _suppressed_members() -> dict[str, tuple[str, str, str, str]]:
    """member_id -> (member_id as landed, member phone, member email, suppression row)."""
    out = {}
    for i, mform in enumerate(MEMBER_PHONE_FORMS):
        for j, sform in enumerate(SUPPRESSION_PHONE_FORMS):
            p = _matrix_phone(i, j)
            out[f"S_PH_{i}{j}"] = (f"S_PH_{i}{j}", mform(p), "", f",{sform(p)},,matrix")
    for mid, (landed, email, s_id, s_email) in SUPPRESSED_BY_ID_OR_EMAIL.items():
        out[mid] = (landed, "", email, f"{s_id},,{s_email},forms")
    return out


COUPON_HOLDERS = {
    # member_id: coupon events (code, event, at, campaign_id)
    "K_HOLDS2": [("KA1", "issued", "2024-06-20 10:00", ""), ("KA2", "issued", "2024-06-25", "")],
    "K_REDEEMED": [
        ("KR1", "issued", "2024-05-01 10:00", "win_back-20240501"),
        ("KR1", "redeemed", "2024-05-10 12:00", "win_back-20240501"),
    ],
    "K_SAMEOFFER": [
        ("KS1", "issued", "2024-06-15 10:00", "win_back-20240615"),
        ("KS1", "expired", "2024-06-29 23:59", "win_back-20240615"),
    ],
    "K_HOLDS1": [("KH1", "issued", "2024-06-20 10:00", "")],
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
        for landed, phone, email, _ in _suppressed_members().values():
            w.writerow([landed, "2023-06-01", "测试", "F", "1980-01-01", "上海", phone, email,
                        "tmall", "20.00", "true"])  # fmt: skip
        for mid, (name, phone, email) in FORMULAS.items():
            w.writerow([mid, "2023-06-01", name, "F", "1980-01-01", "上海", phone, email,
                        "tmall", "20.00", "true"])  # fmt: skip
        for i, mid in enumerate(COUPON_HOLDERS):
            w.writerow([mid, "2023-06-01", "测试", "F", "1980-01-01", "上海",
                        f"1396666000{i}", "", "tmall", "20.00", "true"])  # fmt: skip
    with (landing / "coupon_events_hand.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["coupon_code", "member_id", "event", "event_at", "campaign_id"])
        for mid, events in COUPON_HOLDERS.items():
            w.writerows([code, mid, event, at, campaign] for code, event, at, campaign in events)
    buyers = [*HAND, *_suppressed_members(), *FORMULAS, *COUPON_HOLDERS]
    with (landing / "orders.csv").open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        for i, mid in enumerate(buyers):
            w.writerow([f"HX{i}a", mid, "2023-10-01 10:00:00", "300.00", "paid", "jd", "", ""])
            w.writerow([f"HX{i}b", mid, "2024-01-15 10:00:00", "280.00", "paid", "jd", "", ""])
    lines = ["member_id,phone,email,reason", ",139 0000 0002,,complaint"]
    lines += [row for *_, row in _suppressed_members().values()]
    lines.append(",1.39E+10,,excel mangled the number")  # unusable: counted, suppresses nobody
    (landing / "suppression.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


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
        # the platform's log of that list: H_TWO's SMS bounced, H_EMAILONLY's email arrived
        (root / "landing" / "campaign_sends_day1.csv").write_text(
            "campaign_id,member_id,channel,sent_at,status\n"
            "win_back-20240701,H_TWO,短信,2024-07-01 09:00:00,bounced\n"
            "win_back-20240701,H_EMAILONLY,email,2024-07-01 09:00:00,delivered\n",
            encoding="utf-8",
        )
        mp.setenv("CRM_AS_OF", "2024-07-01")
        third = run_pipeline()
    assert third.success, third.failure
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as day2:
        next_day = dict(
            day2.execute(
                "select member_id || '/' || list_name, reason from marts.campaign_exclusions "
                "where member_id in ('H_TWO', 'H_EMAILONLY') and list_name = 'win_back' "
                "union all select member_id || '/' || list_name, 'listed' "
                "from marts.campaign_targets where member_id in ('H_TWO', 'H_EMAILONLY')"
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
    assert {k: v for k, v in reasons.items() if k.startswith("H_")} == {
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
    _, con, *_, next_day = campaign_run
    # both were on the list of 2024-06-30 (sent 07-01) and not in its control group; the
    # platform's log says H_TWO's SMS bounced: not a contact, so no cool-down for H_TWO
    sent = con.execute(
        "select count(*) from marts.campaign_targets where not is_control "
        "and member_id in ('H_TWO', 'H_EMAILONLY')"
    ).fetchall()[0][0]
    assert sent == 2
    assert next_day == {
        "H_TWO/win_back": "listed",
        "H_EMAILONLY/win_back": "contacted on 2024-07-01 (cool-down 7 days)",
    }


def test_coupon_rules_keep_coupons_from_piling_up(campaign_run) -> None:
    _, con, *_ = campaign_run
    reasons = dict(
        con.execute(
            "select member_id, reason from marts.campaign_exclusions "
            "where list_name = 'win_back' and member_id like 'K\\_%' escape '\\'"
        ).fetchall()
    )
    assert reasons == {
        "K_HOLDS2": "coupon rule: holds 2 open coupons (at most 2)",
        "K_REDEEMED": "coupon rule: redeemed this list's coupon on 2024-05-10 "
        "(no repeat for 60 days)",
        "K_SAMEOFFER": "coupon rule: got this list's coupon on 2024-06-15 (once in 30 days)",
    }
    listed = con.execute(
        "select list_name from marts.campaign_targets where member_id = 'K_HOLDS1'"
    ).fetchall()
    assert listed == [("win_back",)]
    # the rules hold for every coupon list: nobody is sent a coupon while holding two
    held = con.execute(
        "select count(*) from marts.campaign_targets t "
        "join (select member_id, count(*) as n from intermediate.int_member_coupons "
        "      where is_open group by 1) c using (member_id) "
        "where t.offer_type = 'coupon' and not t.is_control and c.n >= 2"
    ).fetchall()[0][0]
    assert held == 0


def test_every_identifier_form_pair_is_suppressed(campaign_run) -> None:
    _, con, _, _, _ = campaign_run
    expected = set(_suppressed_members())
    reasons = dict(
        con.execute(
            "select member_id, reason from marts.campaign_exclusions "
            "where list_name = 'win_back' and member_id like 'S\\_%' escape '\\'"
        ).fetchall()
    )
    assert set(reasons) == expected
    assert set(reasons.values()) == {"on the do-not-contact list"}
    sent = con.execute(
        "select count(*) from marts.campaign_targets where member_id like 'S\\_%' escape '\\'"
    ).fetchall()[0][0]
    assert sent == 0
    # the Excel-mangled entry is kept and counted (a WARN check), not guessed
    invalid = con.execute(
        "select count(*) filter (where phone_is_invalid), count(*) "
        "from staging.stg_shop__suppression"
    ).fetchall()[0]
    assert invalid == (1, len(expected) + 2)


def test_send_files_are_formula_safe(campaign_run) -> None:
    root, _, _, _, _ = campaign_run
    folder = root / "exports" / AS_OF
    triggers = tuple("=+-@\t\r＝＋－＠")
    seen: dict[str, dict[str, str]] = {}
    for path in folder.glob("*.csv"):
        text = path.read_text(encoding="utf-8-sig")
        assert "\x00" not in text and "\x07" not in text
        for row in csv.DictReader(text.splitlines()):
            for col, value in row.items():
                if col == "phone" and value:
                    assert value.startswith("+86") and value[1:].isdigit()
                    continue
                assert not value.startswith(triggers), (path.name, col, value)
            if row.get("member_id", "").lstrip("'") in FORMULAS and "name" in row:
                seen[row["member_id"]] = row
    assert seen["F_LINK"]["name"] == '\'=HYPERLINK("http://evil.example/x","click")'
    assert seen["F_CMD"]["name"] == "'+cmd|' /C calc'!A0"
    assert seen["F_AT"]["name"] == "'@SUM(1+1)" and seen["F_AT"]["email"] == "'-x@example.com"
    assert seen["F_WIDE"]["name"] == "'＝1+1bell"
    assert seen["'-F_DASH"]["member_id"] == "'-F_DASH"
    # the XLSX keeps the text as text (a string cell is never evaluated)
    wb = openpyxl.load_workbook(folder / "win_back.xlsx")
    ws = wb["targets"]
    header = [c.value for c in ws[1]]
    cells = {r[0].value: r[header.index("name")] for r in ws.iter_rows(min_row=2)}
    assert cells["F_LINK"].data_type == "s"
    assert cells["F_LINK"].value.startswith("=HYPERLINK")


def _pii_needles() -> list[bytes]:
    """Every fixture phone (digits) and email, and the hand-made names in UTF-8 and JSON form."""
    phones = {_matrix_phone(i, j) for i in range(5) for j in range(5)}
    phones |= {p for _, p, _, _, _ in HAND.values() if p}
    phones |= {p for _, p, _ in FORMULAS.values() if p}
    emails = {e for *_, e, _ in HAND.values() if e} | {"foo.bar@example.com", "s2@example.com"}
    names = {n for n, *_ in HAND.values()}
    out = [p.encode() for p in phones] + [e.encode() for e in emails]
    for n in names:
        out += [n.encode(), json.dumps(n).strip('"').encode()]
    return out


def test_no_personal_data_outside_the_warehouse_and_send_files(campaign_run) -> None:
    root, _, _, second, _ = campaign_run
    needles = _pii_needles()
    send_files = {
        p.resolve()
        for p in (root / "exports").rglob("*")
        if p.is_file()
        and p.suffix in {".csv", ".xlsx", ".parquet"}
        and not p.name.endswith("_control.csv")
    }
    places = [root / "dagster_home", root / "models", root / "exports"]
    places += [Path("dbt_project/target"), Path("dbt_project/logs")]
    leaks = []
    for place in places:
        for path in place.rglob("*") if place.exists() else []:
            if not path.is_file() or path.resolve() in send_files:
                continue
            data = path.read_bytes()
            leaks += [f"{path}: {n.decode()!r}" for n in needles if n in data]
    leaks += [f"summary: {n.decode()!r}" for n in needles if n in second.summary.encode()]
    assert leaks == []


def test_independent_check_stops_a_broken_list(campaign_run, tmp_path: Path) -> None:
    """Break the list SQL so it ignores the do-not-contact list, and switch off the dbt test
    that guards it too: the check of the written files alone must fail the run, and nothing
    may be published."""
    root, *_ = campaign_run
    shutil.copytree(root / "landing", tmp_path / "landing")
    sql = Path("dbt_project/models/campaigns/campaign_members.sql")
    guard = Path(
        "dbt_project/tests/campaigns/campaign_sends_have_consent_and_are_not_suppressed.sql"
    )
    originals = {p: p.read_text(encoding="utf-8") for p in (sql, guard)}
    broken = originals[sql].replace(
        "x.member_id is not null as is_suppressed", "false as is_suppressed"
    )
    assert broken != originals[sql]
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, tmp_path, as_of=AS_OF)
        from orchestration.runner import run_pipeline

        try:
            sql.write_text(broken, encoding="utf-8")
            guard.write_text("{{ config(enabled=false) }}\n" + originals[guard], "utf-8")
            outcome = run_pipeline()
        finally:
            for path, text in originals.items():
                path.write_text(text, encoding="utf-8")
    assert not outcome.success
    assert "send_files_respect_do_not_contact" in (outcome.failure or "")
    assert "on the do-not-contact list" in (outcome.failure or "")
    exports = tmp_path / "exports"
    assert not (exports / AS_OF).exists() and not (exports / "latest").exists()
    assert not any(p.name.startswith(".tmp-") for p in exports.iterdir())
    assert not (tmp_path / "warehouse.duckdb").exists()  # the run's working copy was discarded


def test_a_backfill_does_not_move_latest_or_change_the_newest_day(campaign_run) -> None:
    """After 06-30 and 07-01: re-run 06-29 (a backfill), then 07-01 again."""
    root, *_ = campaign_run
    exports = root / "exports"
    day2 = exports / "2024-07-01"
    before = {p.name: p.read_bytes() for p in day2.iterdir() if p.name != "manifest.json"}
    models_latest = (root / "models" / "LATEST").read_text()
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, as_of="2024-06-29")
        mp.setenv("CRM_EXPORT_HASHED_AUDIENCE", "true")  # as in the fixture's runs
        from orchestration.runner import run_pipeline

        backfill = run_pipeline()
        assert backfill.success, backfill.failure
        assert os.readlink(exports / "latest") == "2024-07-01"
        assert (exports / "LATEST").read_text().strip() == "2024-07-01"
        assert (root / "models" / "LATEST").read_text() == models_latest
        assert (exports / "2024-06-29" / "manifest.json").exists()
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            days = con.execute(
                "select distinct as_of_date::varchar from campaigns.contact_history order by 1"
            ).fetchall()
        assert days == [("2024-06-30",), ("2024-07-01",)]  # no contacts that never happened
        mp.setenv("CRM_AS_OF", "2024-07-01")
        again = run_pipeline()
    assert again.success, again.failure
    after = {p.name: p.read_bytes() for p in day2.iterdir() if p.name != "manifest.json"}
    assert after == before


def test_list_assets_show_the_lists_dbt_built(campaign_run) -> None:
    """Each list asset's figures are the dbt summary of campaign_targets (the newest run's),
    and the pipeline creates no tables or views of its own in the warehouse for lists."""
    import dagster as dg

    root = campaign_run[0]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        name, *expected = con.execute(
            "select list_name, count(*) filter (where not is_control), "
            "count(*) filter (where is_control), "
            "round(sum(cost_per_contact) filter (where not is_control), 2) "
            "from marts.campaign_targets group by 1 order by 2 desc limit 1"
        ).fetchall()[0]
        own = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'campaigns' "
            "and table_name <> 'contact_history'"
        ).fetchall()[0][0]
    assert expected[0] > 0 and own == 0
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(f"campaign_list_{name}"))
    md = event.asset_materialization.metadata
    assert (md["send"].value, md["control"].value, md["budget_yuan"].value) == (
        expected[0], expected[1], float(expected[2]),
    )  # fmt: skip
    assert "| priority_group | send | control | min_score |" in md["priority_groups"].value


def test_churn_odds_and_forecasts_marketing_can_read(campaign_run) -> None:
    """Lists carry P(no purchase within the list's horizon) from the selected model; the
    manifest and the list assets forecast buyers and revenue per priority group, with a
    90% interval that contains the point forecast."""
    import dagster as dg

    root, con, _, _, _ = campaign_run
    odd = con.execute(
        "select count(*) filter (where abs(t.churn_odds - round(1 - s.p_purchase_60d, 4)) "
        "> 1e-9), count(*), min(t.churn_horizon_days), max(t.churn_horizon_days) "
        "from marts.campaign_targets t join model.customer_scores s using (member_id) "
        "where t.list_name = 'win_back'"
    ).fetchall()[0]
    assert odd[0] == 0 and odd[1] > 0 and odd[2:] == (60, 60)
    header = (root / "exports" / AS_OF / "retention.csv").read_text("utf-8-sig")
    assert "churn_odds,churn_horizon_days" in header.splitlines()[0]
    assert "p_alive" not in header.splitlines()[0]
    manifest = json.loads((root / "exports" / AS_OF / "manifest.json").read_text())
    assert manifest["model"]["selected"] in {"bgnbd", "pareto_nbd", "mbgnbd"}
    assert len(manifest["model"]["calibration_by_decile"]) == 10
    forecast = next(x for x in manifest["lists"] if x["list"] == "retention")["forecast"]
    total = forecast["total"]
    assert forecast["horizon_days"] == 60 and forecast["parameter_uncertainty"]
    assert total["buyers_low"] < total["expected_buyers"] < total["buyers_high"]
    assert total["expected_buyers"] == pytest.approx(
        sum(g["expected_buyers"] for g in forecast["groups"]), abs=0.05
    )
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as day2:
        name = day2.execute(
            "select list_name from marts.campaign_targets t join model.customer_scores "
            "using (member_id) where not is_control group by 1 order by count(*) desc limit 1"
        ).fetchall()[0][0]
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(f"campaign_list_{name}"))
    md = event.asset_materialization.metadata
    assert md["forecast_horizon_days"].value == 60
    assert "(" in md["expected_buyers_90"].value and "–" in md["expected_buyers_90"].value


def _newcombe(t_buy: int, t_n: int, c_buy: int, c_n: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for a difference of proportions,
    written out independently of the SQL."""
    from math import sqrt

    z = 1.959963984540054

    def wilson(k: int, n: int) -> tuple[float, float]:
        p = k / n
        centre, half = p + z * z / (2 * n), z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)

    p1, p2 = t_buy / t_n, c_buy / c_n
    (l1, u1), (l2, u2) = wilson(t_buy, t_n), wilson(c_buy, c_n)
    d = p1 - p2
    return d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def test_campaign_results_read_the_published_lists_out(campaign_run) -> None:
    """The next day reads yesterday's campaigns out: every list with its treated and
    control members as published, except win_back, whose landed send log names two sends
    (one bounced: not a treated member) and no control rows (ours stay the control);
    groups adding up to the total, and the interval the named method gives."""
    root, day1, _, _, _ = campaign_run
    published = dict(
        day1.execute(
            "select list_name || '-20240701', count(*) from marts.campaign_targets group by 1"
        ).fetchall()
    )
    win_back_control = day1.execute(
        "select count(*) from marts.campaign_targets where list_name = 'win_back' and is_control"
    ).fetchall()[0][0]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as day2:
        rows = day2.execute(
            "select campaign_id, priority_group, channel, treated, control, treated_buyers, "
            "control_buyers, uplift_ci_low, uplift_ci_high, window_closed, ci_method, "
            "not_delivered from marts.campaign_results where sent_on = '2024-07-01'"
        ).fetchall()
    totals = {r[0]: (r[3], r[4], r[11]) for r in rows if r[1] is None and r[2] is None}
    assert totals.pop("win_back-20240701") == (1, win_back_control, 1)
    assert {cid: t + c for cid, (t, c, _) in totals.items()} == {
        cid: n for cid, n in published.items() if cid != "win_back-20240701"
    }
    for cid in totals:
        mine = [r for r in rows if r[0] == cid and r[1] is not None]
        by_channel = [r for r in mine if r[2] is not None]
        by_group = [r for r in mine if r[2] is None]
        for groups in (by_channel, by_group):
            assert sum(r[3] + r[4] for r in groups) == sum(totals[cid][:2])
    checked = 0
    for _, _, _, t_n, c_n, t_buy, c_buy, low, high, closed, method, _ in rows:
        assert not closed and method.startswith("Newcombe")  # the window has just opened
        if t_n and c_n:
            assert (low, high) == pytest.approx(_newcombe(t_buy, t_n, c_buy, c_n), abs=1e-12)
            checked += 1
    assert checked > 0
    import dagster as dg

    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("campaign_results"))
    md = event.asset_materialization.metadata
    assert "win_back-20240701" in md["campaigns"].value
    assert "### win_back-20240701" in md["summary"].value
    assert "H_TWO" not in md["summary"].value
    assert md["where_to_stop"].value.startswith("![where to stop](data:image/png;base64,")
