-- Calibration / holdout split for the model backtest, computed in SQL (the
-- lifetimes helper for this does not run on pandas 3 and is slow at scale); the
-- calibration features come from the btyd_features macro, as the published ones do.
-- Calibration ends `holdout_days` before the as-of date; customers whose first
-- occasion is on or before that day are included, with lifetimes' features as
-- of the calibration end and what they actually did in the holdout.
{%- set calibration_end =
    "cast(" ~ dbt.dateadd('day', -1 * var('holdout_days'), as_of_date()) ~ " as date)" %}
with

occasions as (

    select * from {{ ref('int_purchase_occasions') }}

),

bounds as (

    select
        {{ as_of_date() }} as as_of_date,
        {{ calibration_end }} as calibration_end

),

calibration as (

    {{ btyd_features('occasions', calibration_end) }}

),

holdout as (

    select
        o.member_id,
        count(*) as holdout_frequency,
        avg(o.occasion_amount) as holdout_monetary
    from occasions as o
    cross join bounds as b
    where o.occasion_date > b.calibration_end
      and o.occasion_date <= b.as_of_date
    group by o.member_id

),

final as (

    select
        c.member_id,
        c.frequency,
        c.recency,
        c."T",
        c.monetary_value,
        cast(coalesce(h.holdout_frequency, 0) as integer) as holdout_frequency,
        cast(coalesce(h.holdout_monetary, 0) as double) as holdout_monetary,
        cast({{ var('holdout_days') }} as integer) as holdout_days,
        b.calibration_end,
        b.as_of_date
    from calibration as c
    cross join bounds as b
    left join holdout as h on c.member_id = h.member_id

)

select * from final
