-- Weekly repeat purchase occasions of the backtest cohort (customers whose first
-- purchase is on or before the newest backtest cut-off), through the calibration and
-- holdout periods: the "tracking plot" of actual vs model-predicted purchases.
with

occasions as (

    select
        member_id,
        occasion_date,
        row_number() over (partition by member_id order by occasion_date) as occasion_number,
        min(occasion_date) over (partition by member_id) as first_purchase_date
    from {{ ref('int_purchase_occasions') }}

),

bounds as (

    select cutoff_date as calibration_end
    from {{ ref('int_backtest_cutoffs_derived') }}
    where cutoff_number = 1

),

final as (

    select
        cast({{ dbt.date_trunc('week', 'o.occasion_date') }} as date) as week_start,
        count(*) as repeat_purchases
    from occasions as o
    cross join bounds as b
    where o.occasion_number > 1
      and o.first_purchase_date <= b.calibration_end
    group by 1

)

select * from final
