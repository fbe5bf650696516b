-- The model backtest's cut-off dates, derived from the length of the history.
-- The holdout is a quarter of the span from the first purchase occasion to the as-of
-- date, in whole weeks (at least one week, at most `holdout_days`, CRM_HOLDOUT_DAYS,
-- rounded down to whole weeks).
-- Cut-offs step back one holdout at a time from the as-of date. A cut-off is a
-- forecast origin (the candidates are fitted before it and scored after it) when at
-- least two holdouts of history precede it (calibration is at least two thirds of the
-- data up to the end of its holdout), up to `backtest_origins` of them: two for a
-- short history, three once the holdout is capped. A cut-off with one holdout of
-- history only teaches the recency-frequency baseline what happens next.
with

occasions as (

    select * from {{ ref('int_purchase_occasions') }}

),

span as (

    select min(occasion_date) as first_date, {{ as_of_date() }} as as_of_date
    from occasions

),

holdout as (

    select
        first_date,
        as_of_date,
        cast(least(
            7 * greatest(1, floor({{ var('holdout_days') }} / 7)),
            greatest(7, 7 * floor({{ dbt.datediff('first_date', 'as_of_date', 'day') }} / 28))
        ) as integer) as holdout_days
    from span
    where first_date is not null

),

cutoffs as (

    select
        cast(r.k as integer) as cutoff_number,
        cast(h.as_of_date - cast(r.k * h.holdout_days as integer) as date) as cutoff_date,
        h.holdout_days,
        h.first_date
    from holdout as h
    cross join range(1, {{ var('backtest_origins') }} + 2) as r(k)

),

final as (

    select
        cutoff_number,
        cutoff_date,
        holdout_days,
        {{ dbt.datediff('first_date', 'cutoff_date', 'day') }} >= 2 * holdout_days
            and cutoff_number <= {{ var('backtest_origins') }} as is_origin
    from cutoffs
    where {{ dbt.datediff('first_date', 'cutoff_date', 'day') }} >= holdout_days

)

select * from final
