"""great-expectations on the raw tables (orchestration/lib/expectations.py), known answers.

The warehouse holds `raw.orders`, `raw.members` and `raw.suppression` exactly as the
ingest writes them (every column text, plus `_source_file`, `_source_row`,
`_reject_reason`), with hand-placed bad rows, so every count below is exact.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.lib import expectations as gxv
from orchestration.lib.landing import ENTITIES
from orchestration.lib.personal_data import personal_columns

AS_OF = date(2024, 6, 30)
PARAMS = gxv.Params(
    as_of=AS_OF,
    min_date=date(2000, 1, 1),
    max_amount=1_000_000,
    dbt_vars={"timezone": "Asia/Shanghai"},
)
REJECT = "too few fields: 2 of 8 on line 11; the row looks cut short"
ORDERS = [  # order_id, member_id, ordered_at, amount, status, channel (row = position)
    ("O1", "MEM0001", "2024-01-05 10:00:00", "10.00", "paid", "tmall"),
    ("O2", "MEM0002", "2024/02/05", "¥1,299.00", "PAID", "jd"),  # layouts staging reads
    ("O3", "MEM0001", "20240305", "1 299,00", " completed ", "tmall"),
    ("O4", "MEM0002", "31/12/2024", "10", "paid", "tmall"),  # unreadable date
    ("O5", "MEM0001", "2024-03-01", "abc", "paid", "tmall"),  # unreadable amount
    ("O6", "MEM0002", "2024-03-02", "-3.00", "refunded", "jd"),  # negative
    ("O7", "MEM0001", "1999-12-31", "5", "paid", "tmall"),  # before CRM_MIN_ORDER_DATE
    ("O8", "MEM0002", "2024-07-02", "5", "paid", "tmall"),  # after the as-of date
    ("O9", "MEM0001", "2024-03-03", "2000000", "paid", "tmall"),  # above CRM_MAX_ORDER_AMOUNT
    (None, None, None, None, None, None),  # split wrongly by the reader (REJECT)
    ("O11", "MEM0002", "2024-03-04T10:00:00+00:00", "12元", "cancelled", "jd"),
    ("O12", "MEM0001", None, "5", "paid", "tmall"),  # no date
]
# member_id, registered_at, name, gender, birthday, city, phone, email, channel, cost, consent
MEMBERS = [
    ("MEM0001", "2023-01-01", "王芳", "F", "1990-03-02", "上海", "13800000001", "wang@example.com",
     "tmall", "25.00", "true"),
    ("MEM0002", "2023-02-01", "李伟", "M", "1985-07-20", "北京", "+86 139 0000 0002", "li@x.cn",
     "jd", "¥30", "是"),
    ("MEM0003", "not a date", "张秀英", "F", "1990-13-45", "广州", "call 13800000003",
     "zhang at example.com", "store", "abc", "maybe"),
    ("MEM0004", "2025-01-01", "刘洋", "M", None, "深圳", None, None, "tmall", "-5", "不同意"),
    ("MEM0005", "1990-01-01", "陈静", "F", None, None, "13800000005", "c@x.cn", "jd", None, None),
    # rejected (too many fields): "Li, Ming" shifted every field after the name
    ("MEM0006", "2023-01-01", "Li", "Ming", "F", "1990-01-01", "上海", "13800000006", "s@x.cn",
     "tmall", "20.00"),
]  # fmt: skip
REJECTED = {("orders", 10), ("members", 6)}
SUPPRESSION = [  # member_id, phone, email, reason
    ("MEM0009", "13800000009", "nine@example.com", "complaint"),
    ("MEM0008", None, "eight@example.com", "asked"),
    (None, "13800000007", None, "asked"),
]
PERSONAL = [  # what must never leave the warehouse
    *(m[c] for m in MEMBERS[:5] for c in (0, 2, 4, 6, 7) if m[c]),
    *("MEM0006", "Ming", "13800000006", "s@x.cn"),
    *(v for s in SUPPRESSION for v in s[:3] if v),
]
EXPECTED = {  # check -> (passed, {expectation: rows failing})
    "orders_values_parse": (
        False,
        {
            "rows the CSV reader could split": 1,
            "ordered_at present and readable": 2,  # rows 4, 12 (10 is rejected)
            "amount present and readable": 1,  # row 5
        },
    ),
    "orders_mostly_readable": (
        True,
        {
            "ordered_at readable in at least 50% of the rows": 3,
            "amount readable in at least 50% of the rows": 2,
        },
    ),
    "orders_values_in_range": (
        False,
        {
            "ordered_at within 2000-01-01..2024-06-30": 2,  # rows 7, 8
            "amount within 0..1,000,000": 2,  # rows 6, 9
        },
    ),
    "orders_profile_stable": (True, {}),
    "members_values_parse": (
        False,
        {
            "rows the CSV reader could split": 1,  # MEM0006: its values are not read
            "registered_at present and readable": 1,  # M3
            "acquisition_cost readable when given": 1,  # M3 abc
            "marketing_consent readable when given": 1,  # M3 maybe (是, 不同意 are read)
        },
    ),
    "members_values_in_range": (
        False,
        {
            "registered_at within 2000-01-01..2024-06-30": 2,  # M4, M5
            "acquisition_cost within 0..1,000,000": 1,  # M4
        },
    ),
    "members_profile_stable": (True, {}),
    "suppression_has_not_shrunk": (True, {}),
}


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    cols = ENTITIES[table].columns
    con.execute(
        f"create or replace table raw.{table} as select "
        + ", ".join(f"cast(null as varchar) as {c}" for c in cols)
        + ", cast(null as varchar) as _source_file, cast(null as bigint) as _source_row, "
        "cast(null as varchar) as _reject_reason where false"
    )
    for i, row in enumerate(rows, start=1):
        values = list(row) + [None] * (len(cols) - len(row))
        reject = REJECT if (table, i) in REJECTED else None
        con.execute(
            f"insert into raw.{table} values ({', '.join('?' * (len(cols) + 3))})",
            [*values, f"{table}.csv", i, reject],
        )


def build_warehouse(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        _insert(con, "orders", ORDERS)
        _insert(con, "members", MEMBERS)
        _insert(con, "suppression", SUPPRESSION)
    return path


def _run(path: Path, params: gxv.Params = PARAMS, **kw) -> dict[str, gxv.Outcome]:
    return {o.check.name: o for o in gxv.validate(path, params, **kw)}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, gxv.Outcome]]:
    path = build_warehouse(tmp_path_factory.mktemp("gx") / "warehouse.duckdb")
    return path, _run(path)


def test_every_check_reports_exact_counts(first) -> None:
    _, outcomes = first
    assert {n: (o.passed, o.unexpected) for n, o in outcomes.items()} == EXPECTED
    assert {o.rows for o in outcomes.values() if o.check.table == "orders"} == {12}


def test_examples_name_the_landed_rows_and_text(first) -> None:
    _, outcomes = first
    parse = outcomes["orders_values_parse"]
    assert {"source_file": "orders.csv", "source_row": 4, "ordered_at_landed": "31/12/2024"} in (
        parse.examples
    )
    assert {"source_file": "orders.csv", "source_row": 5, "amount_landed": "abc"} in parse.examples
    assert "orders.csv row 4 ('31/12/2024')" in parse.sentence
    assert "2 of 12 rows fail (16.67%)" in parse.sentence
    in_range = outcomes["orders_values_in_range"].examples
    assert {"source_file": "orders.csv", "source_row": 8, "ordered_at": "2024-07-02"} in in_range
    assert {"source_file": "orders.csv", "source_row": 6, "amount": -3.0} in in_range
    consent = outcomes["members_values_parse"]
    (row3,) = [e for e in consent.examples if e["source_row"] == 3]
    assert row3["marketing_consent_landed"] == "maybe"  # every bad value of the row
    assert row3["registered_at_landed"] == "not a date"
    assert "members.csv row 3 ('maybe')" in consent.sentence
    assert all(o.examples == [] for o in outcomes.values() if o.passed)


def test_first_run_keeps_the_profile_as_reference(first) -> None:
    path, outcomes = first
    drift = outcomes["orders_profile_stable"]
    assert drift.passed and "No earlier profile" in drift.sentence
    profile = drift.profile
    assert profile["rows"] == 12
    assert profile["null_share"]["ordered_at"] == pytest.approx(3 / 12, abs=1e-6)
    # readable amounts: 10, 1299, 1299, 10, -3, 5, 5, 2000000, 12, 5
    assert profile["amount"]["median"] == 10.0
    assert profile["shares"]["status"] == pytest.approx(
        {"paid": 8 / 11, "completed": 1 / 11, "refunded": 1 / 11, "cancelled": 1 / 11}, abs=1e-6
    )
    assert set(profile["shares"]) == {"status", "channel"}  # never ids, phones, emails
    assert gxv.profile_path(gxv.docs_dir(path), "orders").exists()


def test_data_docs_are_written_and_linked(first) -> None:
    path, outcomes = first
    docs = gxv.docs_dir(path)
    assert (docs / "index.html").exists()
    index = (docs / "index.html").read_text(encoding="utf-8")
    for table in ("orders", "members", "suppression"):
        url = next(o.docs_url for o in outcomes.values() if o.check.table == table)
        page = Path(url.removeprefix("file://"))
        assert page.is_file() and page.is_relative_to(docs)
        assert f"raw_{table}" in index
    page = Path(outcomes["orders_values_parse"].docs_url.removeprefix("file://"))
    text = page.read_text(encoding="utf-8")
    assert "31/12/2024" in text and "(missing)" in text  # what could not be read is listed
    assert REJECT in text


def _leaks(folder: Path) -> dict[str, list[str]]:
    """Personal values of the fixture found in the text files under `folder`."""
    found: dict[str, list[str]] = {}
    for f in folder.rglob("*"):
        if "static" not in f.relative_to(folder).parts and f.suffix in {
            ".html",
            ".json",
            ".js",
            ".css",
            ".txt",
        }:
            text = f.read_text(encoding="utf-8", errors="replace")
            hits = [v for v in PERSONAL if re.search(rf"(?<![\w@.]){re.escape(v)}(?![\w@])", text)]
            if hits:
                found[str(f.relative_to(folder))] = hits
    return found


def test_no_personal_data_in_docs_profiles_or_results(first) -> None:
    path, outcomes = first
    assert _leaks(gxv.docs_dir(path)) == {}
    text = repr(list(outcomes.values()))
    assert [v for v in PERSONAL if v in text] == []


def test_the_scan_finds_a_personal_column_let_through(tmp_path, monkeypatch) -> None:
    # the check above can fail: treat email as a plain value column and it shows up
    path = build_warehouse(tmp_path / "warehouse.duckdb")
    monkeypatch.setitem(gxv.VALUES, "members", {**gxv.VALUES["members"], "email": "text"})
    _run(path, tables=["members"])
    _run(path, tables=["members"])  # the second run's drift expectations list the values
    assert "li@x.cn" in str(_leaks(gxv.docs_dir(path)))


def test_value_columns_are_not_declared_personal() -> None:
    for table, columns in gxv.VALUES.items():
        declared = personal_columns(table)
        assert declared is not None, "dbt manifest missing: run `dbt parse`"
        assert not set(columns) & (declared | {"member_id", "order_id"}), table


def test_drift_against_the_previous_profile(tmp_path) -> None:
    path = build_warehouse(tmp_path / "warehouse.duckdb")
    _run(path, tables=["orders"])
    same = _run(path, tables=["orders"])["orders_profile_stable"]
    assert same.passed and "every expectation met" in same.sentence
    assert any(e["expectation"].startswith("rows: 9..15") for e in same.observed)
    with duckdb.connect(str(path)) as con:  # amounts tripled, a new status spelling
        con.execute("update raw.orders set amount = '30' where amount in ('10', '10.00', '5')")
        con.execute("update raw.orders set status = 'lost' where _source_row = 1")
    drift = _run(path, tables=["orders"])["orders_profile_stable"]
    assert not drift.passed and drift.check.severity == "warn"
    failed = {e["expectation"]: e["observed"] for e in drift.observed if not e["passed"]}
    assert failed == {
        "amount median: 7.50..12.50 (was 10.00)": 30.0,
        "status: only values seen before": ["lost"],
    }
    # a WARN drift still becomes the reference: the next run compares with this one
    assert _run(path, tables=["orders"])["orders_profile_stable"].passed


def test_a_shrunk_do_not_contact_list_blocks_until_accepted(tmp_path) -> None:
    path = build_warehouse(tmp_path / "warehouse.duckdb")
    _run(path, tables=["suppression"])
    kept = gxv.profile_path(gxv.docs_dir(path), "suppression").read_text(encoding="utf-8")
    with duckdb.connect(str(path)) as con:
        con.execute("update raw.suppression set phone = null")  # the phone column came empty
    check = _run(path, tables=["suppression"])["suppression_has_not_shrunk"]
    assert not check.passed and check.check.blocking and check.check.severity == "error"
    assert "rows with phone: at least 53.3% (was 66.7%): now 0" in check.sentence
    assert gxv.profile_path(gxv.docs_dir(path), "suppression").read_text(encoding="utf-8") == kept
    accepted = replace(PARAMS, accept_input_change=True)
    check = _run(path, accepted, tables=["suppression"])["suppression_has_not_shrunk"]
    assert check.passed and check.sentence.startswith("accepted by --accept-input-change")
    assert gxv.profile_path(gxv.docs_dir(path), "suppression").read_text(encoding="utf-8") != kept


def test_orders_mostly_unreadable_is_an_error_and_not_the_reference(tmp_path) -> None:
    path = build_warehouse(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(path)) as con:  # a new date layout in the export
        con.execute("update raw.orders set ordered_at = '06/30/2024' where _source_row <= 8")
    got = _run(path, tables=["orders"])
    check = got["orders_mostly_readable"]
    assert not check.passed and check.check.blocking
    assert "ordered_at readable in at least 50% of the rows: 10 of 12 rows fail" in check.sentence
    assert not gxv.profile_path(gxv.docs_dir(path), "orders").exists()


def test_the_memory_cap_from_the_settings_reaches_every_connection(tmp_path, monkeypatch) -> None:
    """CRM_DUCKDB_MEMORY_LIMIT from the project's .env (not only the environment) caps the
    scratch file's connections: the one that stages it and GX's engine."""
    from orchestration.defs.validation import params
    from orchestration.settings import load_settings

    monkeypatch.delenv("CRM_DUCKDB_MEMORY_LIMIT", raising=False)
    env = tmp_path / ".env"
    env.write_text("CRM_DUCKDB_MEMORY_LIMIT=640MB\n", encoding="utf-8")
    assert params(load_settings(env_file=env)).memory_limit == "640MB"
    path = build_warehouse(tmp_path / "warehouse.duckdb")
    opened: list[tuple[str, object]] = []
    real = duckdb.connect

    def connect(database: str = ":memory:", *args, **kwargs):
        config = kwargs.get("config") or {}
        opened.append((Path(str(database)).name, config.get("memory_limit")))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    _run(path, replace(PARAMS, memory_limit="640MB"), tables=["orders"])
    scratch = [limit for name, limit in opened if name == "raw.duckdb"]
    assert len(scratch) >= 2 and set(scratch) == {"640MB"}


def test_docs_folder_beside_the_warehouse() -> None:
    assert gxv.docs_dir(Path("/d/warehouse.duckdb")) == Path("/d/gx_docs")
    assert gxv.docs_dir(Path("/d/cdnow.duckdb")) == Path("/d/gx_docs-cdnow")
    from orchestration.settings import load_settings

    s = load_settings(warehouse=Path("/d/cdnow.duckdb"))
    assert s.data_docs_dir == Path("/d/gx_docs-cdnow")  # the settings' default
    # a run's working copy keeps the published warehouse's folder
    assert s.with_overrides(warehouse=Path("/d/.cdnow.duckdb.run-1a2b")).data_docs_dir == Path(
        "/d/gx_docs-cdnow"
    )


def test_missing_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    from orchestration.errors import CrmError

    with pytest.raises(CrmError, match="does not exist"):
        gxv.validate(tmp_path / "nope.duckdb", PARAMS)


def _raw_stubs() -> list[dg.AssetsDefinition]:
    """Stand-ins for the ingest assets (the tables are already in the warehouse)."""

    def stub(table: str) -> dg.AssetsDefinition:
        @dg.asset(key=f"raw_{table}")
        def _raw() -> None: ...

        return _raw

    return [stub(t) for t in gxv.TABLES]


def test_dagster_checks(crm_env: Path) -> None:
    from orchestration.defs.resources import PipelineSettings
    from orchestration.defs.validation import VALIDATION_CHECKS

    path = build_warehouse(crm_env / "warehouse.duckdb")
    result = dg.materialize(
        [*_raw_stubs(), *VALIDATION_CHECKS],
        resources={"crm": PipelineSettings(warehouse=str(path), as_of=AS_OF.isoformat())},
        raise_on_error=False,
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {n: e.passed for n, e in evals.items()} == {n: v[0] for n, v in EXPECTED.items()}
    blocking = {n for n, e in evals.items() if e.blocking}
    assert blocking == {"orders_mostly_readable", "suppression_has_not_shrunk"}
    parse = evals["orders_values_parse"]
    assert parse.asset_key == dg.AssetKey("raw_orders")
    assert parse.severity == dg.AssetCheckSeverity.WARN
    md = parse.metadata
    assert md["unexpected_count"].value == 4 and md["rows"].value == 12
    assert "| source_file | source_row |" in md["examples"].value
    assert "31/12/2024" in md["examples"].value
    assert md["data_docs"].value.startswith(f"file://{crm_env}/gx_docs/validations/raw_orders/")
    assert evals["suppression_has_not_shrunk"].asset_key == dg.AssetKey("raw_suppression")
    assert [v for v in PERSONAL if v in repr(evals)] == []


def test_dagster_checks_fail_when_validation_cannot_run(crm_env: Path) -> None:
    from orchestration.defs.resources import PipelineSettings
    from orchestration.defs.validation import VALIDATION_CHECKS

    path = crm_env / "empty.duckdb"
    duckdb.connect(str(path)).close()  # no raw tables
    result = dg.materialize(
        [*_raw_stubs(), *VALIDATION_CHECKS],
        resources={"crm": PipelineSettings(warehouse=str(path), as_of=AS_OF.isoformat())},
        raise_on_error=False,
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evals) == {c.name for c in gxv.CHECKS}
    assert not any(e.passed for e in evals.values())
    assert "could not run" in evals["orders_mostly_readable"].description
    shutil.rmtree(crm_env / "gx_docs-empty", ignore_errors=True)
