-- Purchase occasions per holdout week after every backtest cut-off, of the customers
-- whose first purchase is on or before it (the cut-off's cohort): what the models'
-- cumulative weekly forecasts are held against (tracking error). Week 1 is the seven
-- days after the cut-off; holdouts are whole weeks.
with

cohort as (

    select cutoff_date, member_id, holdout_days from {{ ref('customer_features_backtest') }}

),

occasions as (

    select * from {{ ref('int_purchase_occasions') }}

),

final as (

    select
        c.cutoff_date,
        cast(floor(({{ dbt.datediff('c.cutoff_date', 'o.occasion_date', 'day') }} - 1) / 7) + 1
            as integer) as holdout_week,
        count(*) as purchases
    from cohort as c
    inner join occasions as o
        on o.member_id = c.member_id
        and o.occasion_date > c.cutoff_date
        and o.occasion_date <= c.cutoff_date + c.holdout_days
    group by 1, 2

)

select * from final
