"""The backtest reads a hash sample of the customers when a cut-off is large: the same
customers at every cut-off and in the weekly holdout table, about the cap."""

import duckdb
import pytest

from orchestration.lib import model_store as store

CUSTOMERS = 20_000


@pytest.fixture()
def con():
    con = duckdb.connect()
    con.execute("create schema marts")
    # three cut-offs: the newest holds every customer, older ones fewer (nested cohorts)
    con.execute(
        f"""
        create table marts.customer_features_backtest as
        select date '2026-06-30' - (91 * c)::int as cutoff_date, c::int as cutoff_number,
               c < 3 as is_origin,
               'm' || lpad(i::varchar, 7, '0') as member_id, (i % 5)::int as frequency,
               (i % 50)::int as recency, 60::int as "T", 10.0 as monetary_value,
               (i % 3)::int as holdout_frequency, 0.0 as holdout_monetary, 91 as holdout_days
        from range(1, 4) t(c), range({CUSTOMERS}) r(i)
        where i < {CUSTOMERS} - 4000 * (c - 1)
        """
    )
    con.execute(
        """
        create table marts.backtest_holdout_weekly as
        select cutoff_date, member_id, 1 as holdout_week, holdout_frequency as purchases
        from marts.customer_features_backtest where holdout_frequency > 0
        """
    )
    yield con
    con.close()


def test_small_cohort_is_read_whole(con):
    cutoffs, weekly, sample = store.read_backtest(con, max_customers=CUSTOMERS)
    assert not sample.sampled and sample.share == 1.0
    assert sample.cohort == sample.customers == CUSTOMERS
    assert len(cutoffs) == CUSTOMERS + 16_000 + 12_000
    assert (
        len(weekly)
        == con.execute("select count(*) from marts.backtest_holdout_weekly").fetchall()[0][0]
    )
    assert "every customer (20,000" in sample.describe()


def test_large_cohort_is_a_nested_hash_sample(con):
    cutoffs, weekly, sample = store.read_backtest(con, max_customers=5_000)
    assert sample.sampled and sample.share == pytest.approx(0.25)
    assert sample.cohort == CUSTOMERS
    # about the cap (binomial: sd ~61 customers)
    assert 4_700 <= sample.customers <= 5_300
    by_cutoff = {n: set(g["member_id"]) for n, g in cutoffs.groupby("cutoff_number")}
    assert len(by_cutoff[1]) == sample.customers
    # the same customers at every cut-off: an older cohort is the newest's sample ∩ its own
    for n in (2, 3):
        whole = {f"m{i:07d}" for i in range(CUSTOMERS - 4000 * (n - 1))}
        assert by_cutoff[n] == by_cutoff[1] & whole
    # the weekly purchases are the sampled customers' own, and all of them
    assert set(weekly["member_id"]) <= by_cutoff[1]
    kept = cutoffs[cutoffs["holdout_frequency"] > 0]
    assert len(weekly) == len(kept)
    assert weekly["purchases"].sum() == kept["holdout_frequency"].sum()
    # the same sample on every read (a nightly run backtests the same customers)
    again, _, _ = store.read_backtest(con, max_customers=5_000)
    assert again["member_id"].tolist() == cutoffs["member_id"].tolist()
    assert "25.0% sample" in sample.describe() and "CRM_BACKTEST_MAX_CUSTOMERS" in sample.describe()
