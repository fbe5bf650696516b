"""great-expectations validation (orchestration/lib/expectations.py) on a hand-made warehouse.

The warehouse mimics the staging tables the dbt project builds (same names and
columns; the base models are views, like in dbt) with known bad rows, so every
count below is exact.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.errors import CrmError
from orchestration.lib import expectations as gxv

AS_OF = date(2024, 6, 30)

# Landed order rows, as staging.base_shop__orders types them (invalid_reason as dbt sets it).
BASE_ORDERS = [
    # order_id, member_id, ordered_at, amount, status, row, invalid_reason
    ("O1", "M1", "2024-01-05 10:00:00", "10.00", "paid", 1, None),
    ("O2", "M2", "2024-02-05 10:00:00", "20.00", "paid", 2, None),
    ("O3", "M1", "2024-03-05 10:00:00", "5.00", "cancelled", 3, None),
    (None, "M2", "2024-03-06 10:00:00", "7.00", "paid", 4, "missing order_id"),
    ("O5", None, "2024-03-07 10:00:00", "7.00", "paid", 5, "missing member_id"),
    ("O6", "M1", None, "8.00", "paid", 6, "unparseable ordered_at: 31/31/2024"),
    ("O7", "M2", "2024-03-08 10:00:00", None, "paid", 7, "unparseable amount: abc"),
    ("O8", "M1", "2024-03-09 10:00:00", "-3.00", "paid", 8, "negative amount: -3.00"),
    ("O9", "M2", "2024-03-10 10:00:00", "-4.00", "paid", 9, "negative amount: -4.00"),
    ("O10", "M1", "2024-03-11 10:00:00", "9.00", None, 10, "unknown status: lost"),
    ("O11", "M9", "2024-07-02 10:00:00", "11.00", "paid", 11, None),  # after as-of, member unknown
    ("O12", "M8", "2024-04-01 10:00:00", "12.00", "refunded", 12, None),  # member unknown
    ("O1", "M1", "2024-01-05 10:00:00", "10.00", "paid", 13, None),  # exact duplicate of row 1
]
# Usable orders as stg_shop__orders would hold them — with deliberate defects that staging
# must never produce (a repeated order_id, a negative amount, a missing member_id), so the
# ERROR checks have something to find.
STG_ORDERS = [
    ("O1", "M1", "2024-01-05 10:00:00", "10.00", "paid", 13),
    ("O2", "M2", "2024-02-05 10:00:00", "20.00", "paid", 2),
    ("O3", "M1", "2024-03-05 10:00:00", "5.00", "cancelled", 3),
    ("O11", "M9", "2024-07-02 10:00:00", "11.00", "paid", 11),
    ("O12", "M8", "2024-04-01 10:00:00", "12.00", "refunded", 12),
    ("O2", "M2", "2024-02-06 10:00:00", "21.00", "paid", 14),  # repeated order_id
    ("O15", "M1", "2024-02-07 10:00:00", "-1.00", "paid", 15),  # negative amount
    ("O16", None, "2024-02-08 10:00:00", "1.00", "paid", 16),  # no member_id
]
# Landed member rows: raw text (consent as landed) and what base_shop__members makes of it.
MEMBERS = [
    # member_id, registered_at, consent text, row, invalid_reason
    ("M1", "2023-01-01", "true", 1, None),
    ("M2", "2023-02-01", " No ", 2, None),
    ("M3", "2023-03-01", None, 3, None),
    ("M4", "2023-04-01", "maybe", 4, None),
    ("M5", "2024-08-01", "是", 5, None),  # registered after the as-of date
    (None, "2023-05-01", "1", 6, "missing member_id"),
    ("M7", None, "yes", 7, "unparseable registered_at: soon"),
    ("M1", "2023-01-05", "sometimes", 8, None),  # merged into M1 by staging
]


def _sql_list(rows: list[tuple]) -> str:
    def lit(v: object) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, int):
            return str(v)
        return "'" + str(v).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)


def build_warehouse(path: Path, *, with_members: bool = True) -> Path:
    members = MEMBERS if with_members else []
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create schema staging")
    con.execute(
        "create table raw.members (member_id varchar, registered_at varchar, "
        "marketing_consent varchar, _source_file varchar, _source_row bigint)"
    )
    if members:
        con.execute(
            "insert into raw.members select m, r, c, 'members.csv', n from (values "
            + _sql_list([(m, r, c, n) for m, r, c, n, _ in members])
            + ") t(m, r, c, n)"
        )
    con.execute(
        "create table staging._base_orders_rows (order_id varchar, member_id varchar, "
        "ordered_at timestamp, amount decimal(18, 2), status varchar, source_row bigint, "
        "invalid_reason varchar)"
    )
    con.execute(f"insert into staging._base_orders_rows values {_sql_list(BASE_ORDERS)}")
    con.execute(
        """
        create view staging.base_shop__orders as
        select order_id, member_id, ordered_at, cast(ordered_at as date) as order_date, amount,
               status, 'tmall' as channel, cast(null as varchar) as store_id,
               cast(null as varchar) as coupon_code, 'orders.csv' as source_file, source_row,
               invalid_reason
        from staging._base_orders_rows
        """
    )
    con.execute(
        "create table staging.stg_shop__orders as "
        "select order_id, member_id, cast(ordered_at as timestamp) as ordered_at, "
        "cast(cast(ordered_at as timestamp) as date) as order_date, "
        "cast(amount as decimal(18, 2)) as amount, status, status = 'paid' as is_purchase, "
        "'tmall' as channel, cast(null as varchar) as store_id, "
        "cast(null as varchar) as coupon_code, 'orders.csv' as source_file, "
        "cast(source_row as bigint) as source_row "
        f"from (values {_sql_list(STG_ORDERS)}) t(order_id, member_id, ordered_at, amount, "
        "status, source_row)"
    )
    con.execute(
        """
        create view staging.base_shop__members as
        select member_id, cast(registered_at as date) as registered_at,
               case lower(trim(marketing_consent))
                   when 'true' then true when '1' then true when 'yes' then true
                   when '是' then true when 'no' then false when 'false' then false
               end as marketing_consent,
               cast(null as decimal(18, 2)) as acquisition_cost,
               _source_file as source_file, _source_row as source_row, invalid_reason
        from raw.members
        left join (values """
        + (_sql_list([(n, reason) for *_, n, reason in members]) or "(0, NULL)")
        + """) q(n, invalid_reason) on q.n = _source_row
        """
    )
    con.execute(
        "create table staging.stg_shop__members as "
        "select member_id, min(registered_at) as registered_at, "
        "bool_and(marketing_consent) as marketing_consent, "
        "max(acquisition_cost) as acquisition_cost, count(*) as source_rows "
        "from staging.base_shop__members where invalid_reason is null group by member_id"
    )
    if with_members:  # a defect staging never produces: the same member twice
        con.execute(
            "insert into staging.stg_shop__members values ('M2', date '2023-02-02', null, null, 1)"
        )
    con.close()
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("gx") / "warehouse.duckdb")


@pytest.fixture(scope="module")
def outcomes(warehouse: Path) -> dict[str, gxv.Outcome]:
    return {o.name: o for o in gxv.validate(warehouse, gxv.Params(as_of=AS_OF))}


# rule -> (success, unexpected_count, element_count)
EXPECTED = {
    "orders_columns_and_types": (True, 0, 9),
    "orders_order_id_unique": (False, 2, 8),  # both O2 rows
    "orders_amount_not_negative": (False, 1, 8),
    "orders_member_id_present": (False, 1, 8),
    "orders_landed_order_id_present": (False, 1, 13),
    "orders_landed_member_id_present": (False, 1, 13),
    "orders_landed_ordered_at_parseable": (False, 1, 13),
    "orders_landed_amount_parseable": (False, 1, 13),
    "orders_landed_amount_not_negative": (False, 2, 13),
    "orders_landed_status_known": (False, 1, 13),
    "orders_not_after_as_of": (False, 1, 8),
    # M9, M8 and the order without member_id are not among the usable members
    "orders_member_known": (False, 3, 8),
    "members_columns_and_types": (True, 0, 4),
    "members_member_id_unique": (False, 2, 6),  # M1..M5 + the repeated M2 row
    "members_landed_member_id_present": (False, 1, 8),
    "members_landed_registered_at_parseable": (False, 1, 8),
    "members_marketing_consent_recognised": (False, 2, 8),  # maybe, sometimes
    "members_registered_not_after_as_of": (False, 1, 6),
}


def test_every_rule_reports_exact_counts(outcomes: dict[str, gxv.Outcome]) -> None:
    assert set(outcomes) == {r.name for r in gxv.RULES} == set(EXPECTED)
    got = {n: (o.success, o.unexpected_count, o.element_count) for n, o in outcomes.items()}
    assert got == EXPECTED


def test_severities_and_blocking() -> None:
    errors = {r.name for r in gxv.RULES if r.severity == "error"}
    assert errors == {
        "orders_columns_and_types",
        "orders_order_id_unique",
        "orders_amount_not_negative",
        "orders_member_id_present",
        "members_columns_and_types",
        "members_member_id_unique",
    }
    assert all(r.blocking == (r.severity == "error") for r in gxv.RULES)


def test_examples_point_at_the_landed_rows(outcomes: dict[str, gxv.Outcome]) -> None:
    def rows(name: str) -> set[tuple[str, int]]:
        return {(e["source_file"], e["source_row"]) for e in outcomes[name].examples}

    assert rows("orders_landed_amount_not_negative") == {("orders.csv", 8), ("orders.csv", 9)}
    assert rows("orders_landed_status_known") == {("orders.csv", 10)}
    assert rows("orders_order_id_unique") == {("orders.csv", 2), ("orders.csv", 14)}
    assert rows("orders_not_after_as_of") == {("orders.csv", 11)}
    assert rows("orders_member_known") == {
        ("orders.csv", 11),
        ("orders.csv", 12),
        ("orders.csv", 16),
    }
    assert rows("members_landed_registered_at_parseable") == {("members.csv", 7)}
    assert rows("members_marketing_consent_recognised") == {("members.csv", 4), ("members.csv", 8)}
    assert outcomes["orders_landed_order_id_present"].examples == [
        {
            "source_file": "orders.csv",
            "source_row": 4,
            "order_id": None,
            "invalid_reason": "missing order_id",
        }
    ]
    status = outcomes["orders_landed_status_known"].examples[0]
    assert status["invalid_reason"] == "unknown status: lost"
    assert outcomes["members_member_id_unique"].examples[0]["member_id"] == "M2"
    assert all(o.examples == [] for o in outcomes.values() if o.success)


def test_sentences_and_missing_consent(outcomes: dict[str, gxv.Outcome]) -> None:
    neg = outcomes["orders_landed_amount_not_negative"]
    assert neg.sentence.startswith("2 of 13 landed order rows (15.38%) have a negative amount")
    assert "orders.csv row 8" in neg.sentence and "quarantine" in neg.sentence
    assert outcomes["orders_columns_and_types"].sentence == (
        "None of the 9 required columns are missing or of another type."
    )
    consent = outcomes["members_marketing_consent_recognised"]
    assert consent.missing_count == 1  # M3 landed without a value: unknown, allowed
    assert "1 row has no value (consent unknown" in consent.sentence
    assert round(outcomes["orders_order_id_unique"].unexpected_percent, 2) == 25.0


def test_known_statuses_and_examples_are_parameters(warehouse: Path) -> None:
    params = gxv.Params(as_of=date(2024, 7, 31), known_statuses=("paid",), max_examples=1)
    got = {o.name: o for o in gxv.validate_orders(warehouse, params)}
    assert {o.entity for o in got.values()} == {"orders"}
    # cancelled (row 3) and refunded (row 12) are now unknown too, beside row 10
    assert got["orders_landed_status_known"].unexpected_count == 3
    assert len(got["orders_landed_status_known"].examples) == 1
    assert got["orders_not_after_as_of"].success


def test_without_members_file_member_rules_pass(tmp_path: Path) -> None:
    path = build_warehouse(tmp_path / "w.duckdb", with_members=False)
    got = {o.name: o for o in gxv.validate(path, gxv.Params(as_of=AS_OF))}
    known = got["orders_member_known"]
    assert known.success and known.unexpected_count == 0 and known.element_count == 8
    assert "No members file" in known.sentence
    assert got["members_member_id_unique"].success
    assert got["members_marketing_consent_recognised"].element_count == 0


def test_columns_and_types_names_the_column(tmp_path: Path) -> None:
    path = build_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect(str(path))
    con.execute("alter table staging.stg_shop__orders alter amount type varchar")
    con.execute("alter table staging.stg_shop__orders drop column is_purchase")
    con.close()
    got = {o.name: o for o in gxv.validate_orders(path, gxv.Params(as_of=AS_OF))}
    cols = got["orders_columns_and_types"]
    assert not cols.success and cols.unexpected_count == 2 and cols.element_count == 9
    assert {e["column"]: e["observed"] for e in cols.examples} == {
        "amount": "String",
        "is_purchase": "missing",
    }


def test_rules_that_cannot_run_fail_with_the_reason(tmp_path: Path) -> None:
    path = build_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect(str(path))
    con.execute("alter table staging.stg_shop__orders drop column member_id")
    con.close()
    got = {o.name: o for o in gxv.validate_orders(path, gxv.Params(as_of=AS_OF))}
    present = got["orders_member_id_present"]
    assert not present.success and present.error and "member_id" in present.error
    assert present.sentence.startswith("Could not be evaluated on staging.stg_shop__orders")
    assert not got["orders_member_known"].success
    assert got["orders_columns_and_types"].examples == [
        {"column": "member_id", "expected": "present", "observed": "missing"}
    ]
    # the landed-row rules read another table and still count
    assert got["orders_landed_amount_not_negative"].unexpected_count == 2


def test_read_only_and_released(warehouse: Path, outcomes: dict[str, gxv.Outcome]) -> None:
    # validation held no connection: a writer can open the file in this process right away
    con = duckdb.connect(str(warehouse))
    con.close()


def test_missing_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="does not exist"):
        gxv.validate(tmp_path / "nope.duckdb", gxv.Params(as_of=AS_OF))


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(Exception, match="members"):
        gxv.validate_members(path, gxv.Params(as_of=AS_OF))


def test_suites_are_built_from_parameters() -> None:
    plans = gxv.build_suites(gxv.Params(as_of=AS_OF, known_statuses=("paid", "void")))
    by_table = {p.table: p for p in plans}
    assert set(by_table) == {
        gxv.STG_ORDERS,
        gxv.BASE_ORDERS,
        gxv.STG_MEMBERS,
        gxv.BASE_MEMBERS,
        gxv.RAW_MEMBERS,
    }
    in_set = [
        e
        for e in by_table[gxv.BASE_ORDERS].rows.expectations
        if type(e).__name__ == "ExpectColumnValuesToBeInSet"
    ]
    assert [sorted(e.value_set) for e in in_set] == [["paid", "void"]]
    dates = [
        e for e in by_table[gxv.STG_ORDERS].rows.expectations if e.meta["rule"].endswith("as_of")
    ]
    assert dates[0].max_value == AS_OF


def test_dagster_checks(crm_env: Path) -> None:
    from orchestration.defs.resources import PipelineSettings
    from orchestration.defs.validation import VALIDATION_CHECKS

    path = build_warehouse(crm_env / "warehouse.duckdb")

    @dg.asset(key="stg_shop__orders")
    def stg_orders() -> None: ...

    @dg.asset(key="stg_shop__members")
    def stg_members() -> None: ...

    result = dg.materialize(
        [stg_orders, stg_members, *VALIDATION_CHECKS],
        resources={"crm": PipelineSettings(warehouse=str(path), as_of=AS_OF.isoformat())},
        raise_on_error=False,
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evals) == set(EXPECTED)
    unique = evals["orders_order_id_unique"]
    assert not unique.passed and unique.severity == dg.AssetCheckSeverity.ERROR
    assert unique.blocking
    md = unique.metadata
    assert md["unexpected_count"].value == 2 and md["element_count"].value == 8
    assert md["percent"].value == 25.0
    assert "| source_file | source_row |" in md["examples"].value
    assert "orders.csv" in md["examples"].value
    status = evals["orders_landed_status_known"]
    assert status.severity == dg.AssetCheckSeverity.WARN and not status.blocking
    assert evals["orders_columns_and_types"].passed


def test_dagster_checks_fail_when_validation_cannot_run(crm_env: Path) -> None:
    from orchestration.defs.resources import PipelineSettings
    from orchestration.defs.validation import members_expectations

    path = crm_env / "empty.duckdb"
    duckdb.connect(str(path)).close()  # no staging tables

    @dg.asset(key="stg_shop__members")
    def stg_members() -> None: ...

    result = dg.materialize(
        [stg_members, members_expectations],
        resources={"crm": PipelineSettings(warehouse=str(path), as_of=AS_OF.isoformat())},
        raise_on_error=False,
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evals) == {r.name for r in gxv.rules_for("members")}
    assert not any(e.passed for e in evals.values())
    assert "could not run" in evals["members_member_id_unique"].description
