-- Which customers the model backtest uses: every one, or, when the largest cut-off's
-- cohort (customers whose first purchase occasion is on or before it) holds more than
-- `backtest_max_customers` (CRM_BACKTEST_MAX_CUSTOMERS), a hash sample of them. A
-- customer is kept when hash(member_id) % 1,000,000 < bucket_limit (the macro
-- in_backtest_sample, which both backtest tables filter with): the same customers
-- at every cut-off, in the weekly holdout table and in every run with the same cap.
-- One row. customer_features_backtest and backtest_holdout_weekly read only the kept
-- customers' occasions, so the backtest's cost stays bounded however large the shop
-- (the published fit and the scores use every customer).
with

occasions as (

    select * from {{ ref('int_purchase_occasions') }}

),

cutoffs as (

    select * from {{ ref('int_backtest_cutoffs_derived') }}

),

cohort as (

    select count(distinct o.member_id) as cohort_customers
    from occasions as o
    where o.occasion_date <= (select max(cutoff_date) from cutoffs)

),

share as (

    select
        cohort_customers,
        case
            when cohort_customers > {{ var('backtest_max_customers') }}
                then cast({{ var('backtest_max_customers') }} as double) / cohort_customers
            else 1.0
        end as share
    from cohort

),

final as (

    select
        cast(cohort_customers as bigint) as cohort_customers,
        cast({{ var('backtest_max_customers') }} as bigint) as max_customers,
        cast(share as double) as share,
        cast(floor({{ backtest_buckets() }} * share) as bigint) as bucket_limit
    from share

)

select * from final
