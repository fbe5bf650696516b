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
