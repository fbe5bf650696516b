"""The backtest's customers: dbt keeps a hash sample of a large cohort
(intermediate.int_backtest_sample_derived; its SQL has dbt unit tests in
marts/_unit_tests.yml); read_backtest reads the tables and says which customers they hold."""

import duckdb
import pytest

from orchestration.errors import CrmError
from orchestration.lib import model_store as store


def _warehouse(customers_per_cutoff: dict[int, int], cohort: int, share: float):
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create schema intermediate")
    con.execute(
        """
        create table marts.customer_features_backtest (
            cutoff_date date, cutoff_number integer, is_origin boolean, member_id varchar,
            frequency integer, recency integer, "T" integer, monetary_value double,
            holdout_frequency integer, holdout_monetary double, holdout_days integer)
        """
    )
    for n, customers in customers_per_cutoff.items():
        con.execute(
            f"""
            insert into marts.customer_features_backtest
            select date '2026-06-30' - (91 * {n})::int, {n}, true, 'm' || i, 1, 5, 60, 10.0,
                   (i % 2)::int, 0.0, 91
            from range({customers}) r(i)
            """
        )
    con.execute(
        """
        create table marts.backtest_holdout_weekly as
        select cutoff_date, member_id, 1 as holdout_week, holdout_frequency as purchases
        from marts.customer_features_backtest where holdout_frequency > 0
        """
    )
    con.execute(
        "create table intermediate.int_backtest_sample_derived as select "
        f"{cohort}::bigint as cohort_customers, 1000::bigint as max_customers, "
        f"{share}::double as share, floor({share} * 1000000)::bigint as bucket_limit"
    )
    return con


def test_every_customer_is_described_as_such() -> None:
    con = _warehouse({1: 900, 2: 700}, cohort=900, share=1.0)
    cutoffs, weekly, sample = store.read_backtest(con)
    assert not sample.sampled
    assert sample.cohort == sample.customers == 900
    assert len(cutoffs) == 1_600 and len(weekly) == 800
    assert list(cutoffs["cutoff_number"].unique()) == [1, 2]  # newest cut-off first
    assert "every customer (900" in sample.describe()


def test_a_sample_says_how_many_of_the_cohort_it_kept() -> None:
    con = _warehouse({1: 1_012, 2: 800}, cohort=4_000, share=0.25)
    _, _, sample = store.read_backtest(con)
    assert sample.sampled and sample.share == pytest.approx(0.25)
    assert (sample.cohort, sample.customers) == (4_000, 1_012)  # the largest cut-off's rows
    text = sample.describe()
    assert "25.0% sample" in text and "1,012 of 4,000" in text
    assert "CRM_BACKTEST_MAX_CUSTOMERS" in text


def test_the_cap_dbt_used_is_reported() -> None:
    con = _warehouse({1: 900}, cohort=900, share=1.0)
    _, _, sample = store.read_backtest(con)
    assert sample.max_customers == 1000  # compared with the settings by clv_model


def test_a_warehouse_without_the_sample_table_says_what_to_run() -> None:
    con = _warehouse({1: 900}, cohort=900, share=1.0)
    con.execute("drop table intermediate.int_backtest_sample_derived")
    with pytest.raises(CrmError, match="crm run"):
        store.read_backtest(con)
