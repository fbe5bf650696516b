"""Mark as sent: the sent_marks row the pipeline reads, its audit row, validation, revoking."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta

import pytest

from tests.portal.world import DAY, World, csrf_of

LIST_PAGE = f"/days/{DAY}/lists/win_back"


def _rows(world: World, sql: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(world.settings.portal_db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _mark(client, **form: str):
    token = csrf_of(client.get(LIST_PAGE).text)
    return client.post(f"{LIST_PAGE}/sent", data={"csrf_token": token, **form})


def test_sent_marks_table_has_exactly_the_contract_schema(world: World) -> None:
    world.store.users()  # creates the schema
    columns = [
        (r["name"], r["type"], r["dflt_value"], r["pk"])
        for r in _rows(world, "pragma table_info(sent_marks)")
    ]
    assert columns == [
        ("id", "INTEGER", None, 1),
        ("as_of", "TEXT", None, 0),
        ("list_name", "TEXT", None, 0),
        ("campaign_id", "TEXT", None, 0),
        ("sent_on", "TEXT", None, 0),
        ("channel", "TEXT", None, 0),
        ("platform_campaign_id", "TEXT", None, 0),
        ("marked_by", "TEXT", None, 0),
        ("marked_at", "TEXT", None, 0),
        ("revoked", "INTEGER", "0", 0),
    ]
    assert _rows(world, "pragma journal_mode")[0][0] == "wal"


def test_mark_as_sent_writes_a_mark_and_an_audit_row(world: World, as_user) -> None:
    client = as_user("mia")
    page = client.get(LIST_PAGE).text
    for fragment in ('id="mark-sent"', 'name="sent_on"', 'name="channel"',
                     'name="platform_campaign_id"', 'id="marks"'):  # fmt: skip
        assert fragment in page
    response = _mark(client, sent_on="2026-07-01", channel="sms", platform_campaign_id="SMS-778")
    assert response.status_code == 303
    assert response.headers["location"].startswith(LIST_PAGE)
    (mark,) = _rows(world, "select * from sent_marks")
    assert dict(mark) | {"marked_at": None} == {
        "id": 1,
        "as_of": DAY,
        "list_name": "win_back",
        "campaign_id": "win_back-20260701",  # read from the send file
        "sent_on": "2026-07-01",
        "channel": "sms",
        "platform_campaign_id": "SMS-778",
        "marked_by": "mia",
        "marked_at": None,
        "revoked": 0,
    }
    assert datetime.fromisoformat(mark["marked_at"]).tzinfo is not None
    (audit,) = _rows(world, "select * from audit where action = 'mark_sent'")
    assert audit["user"] == "mia" and audit["address"] == "testclient"
    assert audit["file"] == f"{DAY}/win_back"
    assert "win_back-20260701" in audit["detail"] and "2026-07-01" in audit["detail"]
    assert audit["rows"] > 0  # the list's sends by that channel
    html = client.get(LIST_PAGE).text
    marks = html[html.index('id="marks"') :]
    assert 'data-mark="1"' in marks and "SMS-778" in marks


def test_all_channels_is_stored_as_null(world: World, as_user) -> None:
    client = as_user("mia")
    assert '<option value="all" selected>' in client.get(LIST_PAGE).text  # the default
    assert _mark(client, sent_on="2026-07-01", channel="all").status_code == 303
    (mark,) = _rows(world, "select channel from sent_marks")
    assert mark[0] is None
    (audit,) = _rows(world, "select rows, detail from audit where action = 'mark_sent'")
    manifest = json.loads((world.export_dir / DAY / "manifest.json").read_text("utf-8"))
    sends = next(x["send"] for x in manifest["lists"] if x["list"] == "win_back")
    assert "every channel" in audit[1] and audit[0] == sends  # all of the list's sends
    assert "all channels of the list" in client.get(LIST_PAGE).text


def test_the_platform_id_is_optional(world: World, as_user) -> None:
    assert _mark(as_user("mia"), sent_on="2026-07-02", channel="email").status_code == 303
    assert _rows(world, "select platform_campaign_id from sent_marks")[0][0] is None


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"sent_on": "2026-06-29", "channel": "sms"}, "date"),  # before the as-of day
        ({"sent_on": (date.today() + timedelta(days=3)).isoformat(), "channel": "sms"}, "date"),
        ({"sent_on": "01/07/2026", "channel": "sms"}, "date"),
        ({"sent_on": "", "channel": "sms"}, "date"),
        ({"sent_on": "2026-07-01", "channel": "push"}, "channel"),  # not a channel of the list
        ({"sent_on": "2026-07-01", "channel": "fax"}, "channel"),
        ({"sent_on": "2026-07-01", "channel": "sms", "platform_campaign_id": "x" * 101}, "id"),
        ({"sent_on": "2026-07-01", "channel": "sms", "platform_campaign_id": "a\nb"}, "id"),
    ],
)
def test_invalid_marks_are_refused_with_a_message(
    world: World, as_user, form: dict[str, str], problem: str
) -> None:
    response = _mark(as_user("mia"), **form)
    assert response.status_code == 400
    assert 'id="mark-error"' in response.text
    assert not _rows(world, "select * from sent_marks")
    assert not _rows(world, "select * from audit where action = 'mark_sent'")


def test_marking_an_unknown_list_or_day_is_404(world: World, as_user) -> None:
    client = as_user("mia")
    token = csrf_of(client.get(LIST_PAGE).text)
    form = {"csrf_token": token, "sent_on": "2026-07-01", "channel": "sms"}
    assert client.post(f"/days/{DAY}/lists/nope/sent", data=form).status_code == 404
    assert client.post("/days/2020-01-01/lists/win_back/sent", data=form).status_code == 404
    assert not _rows(world, "select * from sent_marks")


def test_revoking_a_mark(world: World, as_user) -> None:
    mia = as_user("mia")
    _mark(mia, sent_on="2026-07-01", channel="sms")
    # another marketer may not revoke mia's mark; an admin may
    ann = as_user("ann")
    token = csrf_of(ann.get(LIST_PAGE).text)
    assert ann.post(f"{LIST_PAGE}/sent/1/revoke", data={"csrf_token": token}).status_code == 403
    token = csrf_of(mia.get(LIST_PAGE).text)
    response = mia.post(f"{LIST_PAGE}/sent/1/revoke", data={"csrf_token": token})
    assert response.status_code == 303
    assert _rows(world, "select revoked from sent_marks")[0][0] == 1
    (audit,) = _rows(world, "select * from audit where action = 'mark_revoked'")
    assert audit["user"] == "mia" and "mark 1" in audit["detail"]
    # a revoked mark cannot be revoked again, and an unknown one is 404
    assert mia.post(f"{LIST_PAGE}/sent/1/revoke", data={"csrf_token": token}).status_code == 404
    assert mia.post(f"{LIST_PAGE}/sent/99/revoke", data={"csrf_token": token}).status_code == 404
    assert 'class="revoked"' in mia.get(LIST_PAGE).text
