-- The model backtest's data, computed in SQL (the lifetimes helper for this does not
-- run on pandas 3 and is slow at scale): for every cut-off of
-- int_backtest_cutoffs_derived, one row per customer whose first purchase occasion is
-- on or before it, with lifetimes' features as of the cut-off (the btyd_features
-- macro, as the published features) and what the customer actually did in the
-- holdout after it (purchase occasions and their mean value). Only the customers of
-- int_backtest_sample_derived (every one, or a hash sample of a large shop's).
with

occasions as (

    select * from {{ ref('int_purchase_occasions') }}
    where {{ in_backtest_sample('member_id') }}

),

cutoffs as (

    select * from {{ ref('int_backtest_cutoffs_derived') }}

),

before_cutoff as (

    select c.cutoff_date, o.member_id, o.occasion_date, o.occasion_amount
    from occasions as o
    inner join cutoffs as c on o.occasion_date <= c.cutoff_date

),

calibration as (

    {{ btyd_features('before_cutoff', 'cutoff_date', by='cutoff_date') }}

),

holdout as (

    select
        c.cutoff_date,
        o.member_id,
        count(*) as holdout_frequency,
        avg(o.occasion_amount) as holdout_monetary
    from occasions as o
    inner join cutoffs as c
        on o.occasion_date > c.cutoff_date
        and o.occasion_date <= c.cutoff_date + c.holdout_days
    group by c.cutoff_date, o.member_id

),

final as (

    select
        k.cutoff_date,
        k.cutoff_number,
        k.is_origin,
        c.member_id,
        c.frequency,
        c.recency,
        c."T",
        c.monetary_value,
        cast(coalesce(h.holdout_frequency, 0) as integer) as holdout_frequency,
        cast(coalesce(h.holdout_monetary, 0) as double) as holdout_monetary,
        k.holdout_days,
        {{ as_of_date() }} as as_of_date
    from calibration as c
    inner join cutoffs as k on c.cutoff_date = k.cutoff_date
    left join holdout as h on c.cutoff_date = h.cutoff_date and c.member_id = h.member_id

)

select * from final
