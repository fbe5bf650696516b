-- Each customer's purchase occasions per holdout week after every backtest cut-off
-- (customers whose first purchase is on or before it: the cut-off's cohort), only the
-- weeks with a purchase: what the models' cumulative weekly forecasts are held against
-- (tracking error), resampled customer by customer for its noise. Week 1 is the seven
-- days after the cut-off; holdouts are whole weeks.
with

cohort as (

    select cutoff_date, member_id, holdout_days from {{ ref('customer_features_backtest') }}

),

occasions as (

    -- the sampled customers' (int_backtest_sample_derived), as the cohort's
    select * from {{ ref('int_purchase_occasions') }}
    where {{ in_backtest_sample('member_id') }}

),

final as (

    select
        c.cutoff_date,
        c.member_id,
        cast(floor(({{ dbt.datediff('c.cutoff_date', 'o.occasion_date', 'day') }} - 1) / 7) + 1
            as integer) as holdout_week,
        count(*) as purchases
    from cohort as c
    inner join occasions as o
        on o.member_id = c.member_id
        and o.occasion_date > c.cutoff_date
        and o.occasion_date <= c.cutoff_date + c.holdout_days
    group by 1, 2, 3

)

select * from final
