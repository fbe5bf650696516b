from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.errors import CrmError
from orchestration.lib import landing

HEADER = "order_id,member_id,ordered_at,amount,status\n"


def _load(tmp_path: Path, entity=landing.ORDERS, con=None):
    con = con or duckdb.connect()
    report = landing.load_entity(con, entity, landing.find_files(tmp_path, entity))
    return con, report


def test_every_row_kept_with_file_and_row_number(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        HEADER + "A,M1,2024-01-01,10,paid\nB,M2,2024-01-02,20,paid\n"
    )
    (tmp_path / "orders_2.csv").write_text(HEADER + "C,M3,2024-01-03,30,paid\n")
    con, report = _load(tmp_path)
    rows = con.sql(
        "select order_id, _source_file, _source_row from raw.orders order by order_id"
    ).fetchall()
    assert rows == [("A", "orders.csv", 1), ("B", "orders.csv", 2), ("C", "orders_2.csv", 1)]
    assert report.rows == 3 and report.rows_per_file == {"orders.csv": 2, "orders_2.csv": 1}


@pytest.mark.parametrize(
    ("encoding", "label"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030")],
)
def test_encodings_detected_and_chinese_text_preserved(
    tmp_path: Path, encoding: str, label: str
) -> None:
    text = "member_id,registered_at,name,city\nM1,2024-01-01,王芳,上海\nM2,2024-01-02,张秀英,广州\n"
    (tmp_path / "members.csv").write_bytes(text.encode(encoding))
    con, report = _load(tmp_path, landing.MEMBERS)
    assert report.encodings == {"members.csv": label}
    assert con.sql("select name, city from raw.members order by member_id").fetchall() == [
        ("王芳", "上海"),
        ("张秀英", "广州"),
    ]


def test_missing_required_column_names_file_column_and_suggests(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "order_id,member_id,order_time,amount\nA,M1,2024-01-01,1\n"
    )
    with pytest.raises(CrmError) as err:
        _load(tmp_path)
    msg = str(err.value)
    assert "orders.csv" in msg and "'ordered_at'" in msg and "order_time" in msg


def test_header_names_are_matched_case_and_space_insensitively(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        " Order_ID ,MEMBER_ID,Ordered_At,Amount,Extra Col\nA,M1,2024-01-01,1,x\n"
    )
    con, report = _load(tmp_path)
    assert con.sql("select order_id, member_id, amount from raw.orders").fetchall() == [
        ("A", "M1", "1")
    ]
    assert report.notes == ["orders.csv: ignored extra columns extra_col"]


def test_truncated_last_line_is_kept_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(HEADER + "A,M1,2024-01-01,10,paid\nB,M2,2024-01")
    con, _ = _load(tmp_path)
    assert con.sql("select order_id, ordered_at, amount from raw.orders order by 1").fetchall() == [
        ("A", "2024-01-01", "10"),
        ("B", "2024-01", None),
    ]


def test_header_only_orders_stop_and_keep_previous_table(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(HEADER + "A,M1,2024-01-01,10,paid\n")
    con, _ = _load(tmp_path)
    (tmp_path / "orders.csv").write_text(HEADER)
    with pytest.raises(CrmError, match="contain no data rows"):
        _load(tmp_path, con=con)
    assert con.sql("select count(*) from raw.orders").fetchall() == [(1,)]


def test_empty_file_has_clear_message(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("")
    with pytest.raises(CrmError, match=r"orders.csv is empty \(no header row\)"):
        _load(tmp_path)


def test_members_file_is_optional(tmp_path: Path) -> None:
    con, report = _load(tmp_path, landing.MEMBERS)
    assert report.rows == 0
    assert con.sql("select count(*) from raw.members").fetchall() == [(0,)]


def test_missing_orders_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="no orders file"):
        landing.find_files(tmp_path, landing.ORDERS)


def test_parquet_is_read(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(
        f"copy (select 'A' as order_id, 'M1' as member_id, timestamp '2024-01-01 10:00:00' "
        f"as ordered_at, 12.5 as amount) to '{tmp_path / 'orders.parquet'}' (format parquet)"
    )
    con, _ = _load(tmp_path, con=con)
    assert con.sql("select order_id, ordered_at, amount from raw.orders").fetchall() == [
        ("A", "2024-01-01 10:00:00", "12.5")
    ]


def test_semicolon_delimited_file(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "order_id;member_id;ordered_at;amount\nA;M1;2024-01-01;1 299,00\n"
    )
    con, _ = _load(tmp_path)
    assert con.sql("select amount from raw.orders").fetchall() == [("1 299,00",)]


# --- every record of the file is accounted for (strict reading, independent count) ---

ROW = "O{i:05d},M{i:05d},2024-12-30,301.50,paid\n"


def _rows(a: int, b: int) -> str:
    return "".join(ROW.format(i=i) for i in range(a, b))


def _raw(con) -> dict[int, tuple]:
    return {
        r[0]: r[1:]
        for r in con.sql(
            "select _source_row, order_id, amount, _reject_reason from raw.orders"
        ).fetchall()
    }


def test_a_stray_quote_is_quarantined_with_the_lines_it_swallowed(tmp_path: Path) -> None:
    bad = 'O00020,M00020,2024-12-30,"SAVE10,paid\n'
    (tmp_path / "orders.csv").write_text(HEADER + _rows(1, 20) + bad + _rows(21, 31))
    con, report = _load(tmp_path)
    raw = _raw(con)
    assert len(raw) == 20 and all(raw[i][2] is None for i in range(1, 20))
    reason = raw[20][2]
    assert reason.startswith("unterminated or misplaced quote: lines 21-31")
    assert "(11 lines)" in reason
    assert "could not be parsed" in report.notes[0]


def test_a_row_cut_short_is_quarantined_not_staged(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(HEADER + _rows(1, 5) + "O04851,M01996,2024-12-30,301")
    con, _ = _load(tmp_path)
    raw = _raw(con)
    assert raw[5] == ("O04851", "301", "too few fields: 4 of 5 on line 6; the row looks cut short")
    assert [raw[i][2] for i in range(1, 5)] == [None] * 4


def test_rows_after_a_rejected_one_keep_their_record_numbers(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        HEADER + _rows(1, 3) + "X,Y\n" + _rows(4, 6) + "a,b,c,d,e,f\n" + _rows(7, 9)
    )
    con, _ = _load(tmp_path)
    raw = _raw(con)
    assert {i: raw[i][0] for i in (1, 2, 4, 5, 7, 8)} == {
        i: f"O{i:05d}" for i in (1, 2, 4, 5, 7, 8)
    }
    assert raw[3][2].startswith("too few fields: 2 of 5")
    assert raw[6][2].startswith("too many fields: 6 of 5")


def test_a_quoted_line_break_loads(tmp_path: Path) -> None:
    text = "member_id,registered_at,name\n" + "".join(
        f"M{i},2024-01-01,N{i}\n" for i in range(5000)
    )
    text += 'MX,2024-01-01,"Li\nMing"\n' + "MY,2024-01-01,x\n"
    (tmp_path / "members.csv").write_text(text)
    con, report = _load(tmp_path, landing.MEMBERS)
    assert report.rows == 5002
    assert con.sql("select name from raw.members where member_id = 'MX'").fetchall() == [
        ("Li\nMing",)
    ]


def test_huge_lines_are_quarantined_not_fatal_and_not_dropped(tmp_path: Path) -> None:
    huge = "O99999,M1,2024-12-30,1.00," + "x" * (3 << 20) + "\n"
    last = "O77777,M1,2024-12-30,1.00," + "y" * (landing.MAX_LINE_BYTES + 10)  # no newline
    (tmp_path / "orders.csv").write_text(HEADER + _rows(1, 4) + huge + _rows(5, 8) + last)
    con, report = _load(tmp_path)
    raw = _raw(con)
    assert report.rows == 8
    assert raw[4][2] == "line too long: line 5 is longer than 2 MB"
    assert raw[8][2] == "line too long: line 9 is longer than 2 MB"  # the last, unterminated
    assert [raw[i][0] for i in (5, 6, 7)] == ["O00005", "O00006", "O00007"]


def test_mixed_line_endings_load(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(
        HEADER.replace("\n", "\r\n").encode() + _rows(1, 4).encode()
    )
    _, report = _load(tmp_path)
    assert report.rows == 3


def test_windows_1252_is_refused_not_turned_into_chinese(tmp_path: Path) -> None:
    text = "member_id,registered_at,name\nM1,2024-01-01,Renée\nM2,2024-01-02,François\n"
    (tmp_path / "members.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(CrmError, match=r"members.csv: .*Windows-1252.*line 2.*UTF-8"):
        _load(tmp_path, landing.MEMBERS)


def test_a_bad_row_after_blank_lines_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        HEADER + _rows(1, 3) + "\n\nO00003,M1,2024-12-30,1.00,paid,extra\n" + _rows(4, 6)
    )
    con, report = _load(tmp_path)
    raw = _raw(con)
    assert report.rows == 5
    assert raw[3][2].startswith("too many fields: 6 of 5")
    assert [raw[i][0] for i in (1, 2, 4, 5)] == ["O00001", "O00002", "O00004", "O00005"]


def test_old_mac_line_endings_load(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes((HEADER + _rows(1, 4)).replace("\n", "\r").encode())
    _, report = _load(tmp_path)
    assert report.rows == 3


def test_send_log_and_coupon_events_land_like_the_other_entities(tmp_path: Path) -> None:
    """The campaign systems' files: optional, any encoding, every row kept with its place."""
    (tmp_path / "orders.csv").write_text(HEADER + "A,M1,2024-01-01,10,paid\n")
    (tmp_path / "campaign_sends_sms.csv").write_bytes(
        "campaign_id,member_id,channel,sent_at,status,备注\n"
        "win_back-20240701,M1,短信,2024-07-01 10:00,发送成功,x\n"
        "win_back-20240701,M2,短信,2024-07-01 10:00,发送失败,y\n".encode("gbk")
    )
    con, report = _load(tmp_path, landing.CAMPAIGN_SENDS)
    assert report.encodings == {"campaign_sends_sms.csv": "gb18030"}
    assert con.sql(
        "select member_id, channel, status, _source_row from raw.campaign_sends order by 4"
    ).fetchall() == [("M1", "短信", "发送成功", 1), ("M2", "短信", "发送失败", 2)]
    assert any("ignored extra columns" in n for n in report.notes)
    # optional: without a file the table is there, empty
    _, events = _load(tmp_path, landing.COUPON_EVENTS, con)
    assert events.rows == 0
    assert con.sql("select count(*) from raw.coupon_events").fetchall() == [(0,)]


def test_coupon_events_without_event_column_name_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "coupon_events.csv").write_text(
        "coupon_code,member_id,event_at\nC1,M1,2024-07-02\n"
    )
    with pytest.raises(CrmError, match=r"coupon_events\.csv.*event"):
        _load(tmp_path, landing.COUPON_EVENTS)


def test_record_numbers_hold_when_the_reader_splits_a_large_file(tmp_path: Path) -> None:
    """A file larger than the reader's buffer (~32 MB), written without insertion order:
    every record keeps its number across the buffers, with quoted line breaks, blank lines
    and rejected records spread through the file (the small files above fit one buffer)."""
    n, lines = 1_200_000, []
    for rec in range(1, n + 1):
        if rec % 99_991 == 0:
            lines.append(f"O{rec},M{rec},2024-12-30,1.00,paid,extra\n")  # rejected
        elif rec % 70_001 == 0:
            lines.append(f'O{rec},M{rec},2024-12-30,1.00,"pa\nid"\n')  # quoted line break
        else:
            lines.append(f"O{rec},M{rec},2024-12-30,{rec % 997}.50,paid\n")
        if rec % 123_457 == 0:
            lines.append("\n")  # a blank line is no record
    (tmp_path / "orders.csv").write_text(HEADER + "".join(lines))
    assert (tmp_path / "orders.csv").stat().st_size > 40_000_000
    con, report = _load(tmp_path)
    assert report.rows == n
    wrong = con.execute(
        "select count(*) filter (where order_id <> 'O' || _source_row), "
        "count(*) filter (where _reject_reason is not null), "
        "count(*) filter (where _reject_reason is not null and _source_row % 99991 <> 0), "
        "count(distinct _source_row), min(_source_row), max(_source_row) from raw.orders"
    ).fetchone()
    assert wrong == (0, n // 99_991, 0, n, 1, n)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 22])
def test_fast_line_counts_agree_with_the_csv_reader_across_chunk_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The byte-level counters against Python's csv module and a plain definition of mixed
    line endings, on random files of LF / CRLF lines, blank lines, missing final line
    breaks, stray quotes and bare CRs, read in chunks that split every CRLF somewhere. A
    quote, a bare CR or a CRLF split by the chunk leaves the count to the csv reader."""
    import random
    import re

    monkeypatch.setattr(landing, "_CHUNK", chunk)
    rng = random.Random(chunk)
    path = tmp_path / "orders.csv"
    for case in range(150):
        ends = rng.choice([["\n"], ["\r\n"], ["\n", "\r\n"]])
        parts = [HEADER.rstrip("\n") + rng.choice(ends)]
        for i in range(rng.randint(0, 12)):
            parts.append("" if rng.random() < 0.25 else f"O{i},M{i},2024-01-01,1.5,paid")
            if rng.random() < 0.03:
                parts.append(rng.choice(['"', "\r", "x\rx"]))  # a stray quote, a bare CR
            parts.append(rng.choice(ends))
        text = "".join(parts)
        if rng.random() < 0.3:
            text = text.rstrip("\r\n")  # no final line break
        path.write_bytes(text.encode())
        data = path.read_bytes()
        fast = landing._count_unquoted(path)
        to_reader = b'"' in data or any(  # a bare CR, or a CR that ends a chunk
            b == 13 and (i + 1 == len(data) or data[i + 1] != 10 or (i + 1) % chunk == 0)
            for i, b in enumerate(data)
        )
        assert (fast is None) == to_reader, (case, data)
        if fast is not None:
            slow = landing.scan_records(path, ",", want={0})
            assert fast.records == slow.records, (case, data)
        mixed = b"\r\n" in data and re.search(rb"(?<!\r)\n", data) is not None
        assert landing._mixed_line_endings(path) == mixed, (case, data)
