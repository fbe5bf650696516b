"""Export files: formula safety, hashed audiences, atomic publish, leftovers, retention."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from orchestration.lib import exports
from orchestration.lib.personal_data import mask_frame, mask_value

AS_OF = date(2026, 11, 29)
LISTS = [
    {
        "name": "win_back",
        "goal": "win-back",
        "priority": 1,
        "channels": ["sms", "email"],
        "offer": {"type": "coupon"},
    }
]


def _targets(**overrides: object) -> pd.DataFrame:
    row = {c: None for c, _ in exports.LIST_COLUMNS}
    row.update(
        member_id="M1",
        name="王小明",
        channel="sms",
        priority_group=1,
        list_rank=1,
        reason="silent",
        phone="+8613900000001",
        email="m1@example.com",
        list_name="win_back",
        is_control=False,
        cost_per_contact=0.05,
        model_version="v1",
    )
    row.update(overrides)
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    "payload",
    [
        '=HYPERLINK("http://evil.example","click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\tlead",
        "\rlead",
        "＝1+1",
        "＋1",
        "－1",
        "＠x",
    ],
)
def test_formula_payloads_are_neutralised(payload: str) -> None:
    safe = exports.spreadsheet_safe(pd.DataFrame({"name": [payload], "member_id": [payload]}))
    assert safe.loc[0, "name"] == "'" + payload
    assert safe.loc[0, "member_id"] == "'" + payload


def test_e164_phone_keeps_its_plus_but_a_non_phone_does_not() -> None:
    df = pd.DataFrame({"phone": ["+8613900000001", "+1+1"], "n": [1.0, -2.0]})
    safe = exports.spreadsheet_safe(df)
    assert list(safe["phone"]) == ["+8613900000001", "'+1+1"]
    assert list(safe["n"]) == [1.0, -2.0]  # numbers are numbers, not text


def test_control_characters_are_removed() -> None:
    df = exports.clean_text(pd.DataFrame({"name": ["Li\x00Ming\x07", "a\tb\r\nc"]}))
    assert list(df["name"]) == ["LiMing", "a b c"]


def test_hashed_audience_has_only_the_rows_own_channel_in_each_platforms_format() -> None:
    send = pd.DataFrame(
        {
            "channel": ["sms", "email", "push"],
            "phone": ["+8613900000001", None, None],
            "email": [None, "m2@example.com", None],
        }
    )
    out = exports.hashed_audience(send)
    assert list(out["identifier_type"]) == ["phone", "email"]

    def sha(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    phone = out.iloc[0]
    assert phone["google_sha256"] == sha("+8613900000001")
    assert phone["meta_sha256"] == sha("8613900000001") == phone["tiktok_sha256"]
    assert set(out.iloc[1][list(exports.HASHED_PLATFORMS)]) == {sha("m2@example.com")}


def _stage(root: Path, run: str, as_of: date = AS_OF, **overrides: object):
    return exports.stage_exports(
        _targets(**overrides),
        export_dir=root,
        as_of=as_of,
        run_id=run * 8,
        lists=LISTS,
        hashed_audience_files=True,
    )


def test_publish_then_republish_switches_links_atomically(tmp_path: Path) -> None:
    first = exports.publish(_stage(tmp_path, "a"))
    assert first.published
    day = tmp_path / AS_OF.isoformat()
    assert day.is_symlink() and (day / "manifest.json").exists()
    assert (tmp_path / "latest").resolve() == day.resolve()
    assert (tmp_path / "LATEST").read_text().strip() == AS_OF.isoformat()
    exports.publish(_stage(tmp_path, "b", name="李雷"))
    assert "李雷" in (tmp_path / "latest" / "win_back.csv").read_text(encoding="utf-8-sig")
    # the replaced folder stays for readers part-way through it, until the next clean-up
    assert len(list((tmp_path / ".published").iterdir())) == 2
    assert exports.clean_leftovers(tmp_path) == [f".published/{AS_OF}.aaaaaaaa"]
    assert [p.name for p in (tmp_path / ".published").iterdir()] == [f"{AS_OF}.bbbbbbbb"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".link-"))]


def test_a_killed_run_leaves_nothing_behind_after_the_next_start(tmp_path: Path) -> None:
    exports.publish(_stage(tmp_path, "a"))
    # killed after staging (full send files on disk) ...
    staged = _stage(tmp_path, "b")
    assert (staged.folder / "win_back.csv").exists()
    # ... and a killed publish that had moved its folder but not switched the link
    os.rename(_stage(tmp_path, "c").folder, tmp_path / ".published" / f"{AS_OF}.cccccccc")
    (tmp_path / ".link-latest-123").symlink_to("nowhere")
    removed = exports.clean_leftovers(tmp_path)
    assert sorted(removed) == sorted(
        [staged.folder.name, ".link-latest-123", f".published/{AS_OF}.cccccccc"]
    )
    assert [p.name for p in (tmp_path / ".published").iterdir()] == [f"{AS_OF}.aaaaaaaa"]
    assert (tmp_path / "latest" / "manifest.json").exists()


def test_a_dangling_latest_is_repointed_at_the_newest_complete_export(tmp_path: Path) -> None:
    exports.publish(_stage(tmp_path, "a", as_of=date(2026, 11, 1)))
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").symlink_to("2026-11-30")  # a folder that never got there
    assert "latest (dangling)" in exports.clean_leftovers(tmp_path)
    assert os.readlink(tmp_path / "latest") == "2026-11-01"
    assert (tmp_path / "LATEST").read_text().strip() == "2026-11-01"


def test_retention_deletes_old_exports_but_never_latest(tmp_path: Path) -> None:
    for day in (date(2026, 7, 1), date(2026, 8, 31), date(2026, 11, 29)):
        exports.publish(_stage(tmp_path, "a", as_of=day))
    deleted = exports.apply_retention(tmp_path, keep_days=90, today=date(2026, 11, 29))
    assert deleted == ["2026-07-01"]
    assert not (tmp_path / "2026-07-01").exists()
    assert len(list((tmp_path / ".published").iterdir())) == 2
    # the day just published (a backfill) survives its own run's retention
    exports.publish(_stage(tmp_path, "b", as_of=date(2026, 1, 5)), move_latest=False)
    assert "2026-01-05" not in exports.apply_retention(
        tmp_path, keep_days=90, today=date(2026, 11, 29), keep=(date(2026, 1, 5),)
    )
    # the export latest points at survives even when it is old
    assert exports.apply_retention(tmp_path, keep_days=1, today=date(2027, 6, 1)) == [
        "2026-01-05",
        "2026-08-31",
    ]
    assert (tmp_path / "latest" / "manifest.json").exists()


def test_masking_shows_shape_not_value() -> None:
    assert mask_value("+8613900000002") == "+86139****0002"
    assert mask_value("h2@example.com") == "h***@example.com"
    assert mask_value("欧阳娜") == "欧**"
    df = mask_frame(pd.DataFrame({"member_id": ["M1"], "phone": ["13900000002"]}))
    assert list(df.iloc[0]) == ["M1", "139****0002"]


def test_markdown_metadata_cannot_carry_links_or_break_tables() -> None:
    import pandas as pd

    from orchestration.lib.warehouse import markdown_table, md_text

    hostile = "x|y ![t](http://evil.example/p.png) <img src=x>\n`z`"
    assert md_text("win_back-20240701") == "win_back-20240701"
    text = md_text(hostile)
    assert "|" not in text.replace("\\|", "") and "\n" not in text
    assert "![t](" not in text and "\\<img" in text and " <img" not in text
    table = markdown_table(pd.DataFrame({"reason": [hostile]}), table="orders_quarantine")
    assert len(table.splitlines()) == 3  # header, rule, one row
    assert table.splitlines()[2].count("|") - table.splitlines()[2].count("\\|") == 2
