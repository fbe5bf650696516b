-- The business's own purchase cycle, from the gaps between consecutive purchase
-- occasions of the same customer (as of the as-of date). One row.
--   active_within_days: median gap (the typical inter-purchase interval)
--   silent_after_days:  gap within which `silent_quantile` (80%) of returns happen
--   churn_after_days:   gap within which `churn_quantile` (95%) of returns happen
-- A var overrides a derived value; with fewer than `cycle_min_gaps` gaps the
-- documented fallbacks apply.
with

gaps as (

    select
        {{ dbt.datediff(
            'lag(occasion_date) over (partition by member_id order by occasion_date)',
            'occasion_date', 'day') }} as gap_days
    from {{ ref('int_purchase_occasions') }}

),

histogram as (

    -- gaps are whole days: their counts are a few thousand rows however many orders
    -- (a holistic quantile over every gap held them all in memory: 100M orders ran out
    -- of DuckDB's memory cap)
    select gap_days, count(*) as n
    from gaps
    where gap_days is not null
    group by gap_days

),

ranked as (

    -- the gaps of this length hold the 0-based ranks [up_to - n, up_to - 1]
    select gap_days, n, sum(n) over (order by gap_days rows unbounded preceding) as up_to
    from histogram

),

positions as (

    -- quantile_cont's interpolation: the value at rank h = (count - 1) * q
    select q.name, (t.total - 1) * cast(q.q as double) as h, t.total
    from (select sum(n) as total from histogram) as t
    cross join (values
        ('median', 0.5),
        ('silent', {{ var('silent_quantile') }}),
        ('churn', {{ var('churn_quantile') }})
    ) as q(name, q)

),

quantiles as (

    select
        p.name,
        p.total,
        -- exactly quantile_cont: the values at the ranks either side of h, interpolated
        min(r.gap_days) filter (where r.up_to > floor(p.h))
            + (p.h - floor(p.h))
            * (min(r.gap_days) filter (where r.up_to > ceil(p.h))
                - min(r.gap_days) filter (where r.up_to > floor(p.h))) as value
    from positions as p
    cross join ranked as r
    group by p.name, p.total, p.h

),

stats as (

    select
        cast(coalesce(max(total), 0) as bigint) as gaps_observed,
        max(value) filter (where name = 'median') as median_gap_days,
        max(value) filter (where name = 'silent') as silent_quantile_days,
        max(value) filter (where name = 'churn') as churn_quantile_days
    from quantiles

),

derived as (

    select
        gaps_observed,
        median_gap_days,
        gaps_observed >= {{ var('cycle_min_gaps') }} as derived_from_data,
        case when gaps_observed >= {{ var('cycle_min_gaps') }}
            then greatest(1, cast(ceil(median_gap_days) as integer))
            else {{ var('fallback_active_within_days') }} end as derived_active_days,
        case when gaps_observed >= {{ var('cycle_min_gaps') }}
            then greatest(1, cast(ceil(silent_quantile_days) as integer))
            else {{ var('fallback_silent_after_days') }} end as derived_silent_days,
        case when gaps_observed >= {{ var('cycle_min_gaps') }}
            then greatest(2, cast(ceil(churn_quantile_days) as integer))
            else {{ var('fallback_churn_after_days') }} end as derived_churn_days
    from stats

),

resolved as (

    select
        gaps_observed,
        median_gap_days,
        derived_from_data,
        {{ var_or('active_within_days', 'derived_active_days') }} as active_within_days,
        {{ var_or('silent_after_days', 'derived_silent_days') }} as silent_after_days,
        {{ var_or('churn_after_days', 'derived_churn_days') }} as churn_after_days
    from derived

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        gaps_observed,
        median_gap_days as typical_interval_days,
        derived_from_data,
        -- keep the cut-offs ordered even when only some are overridden
        least(active_within_days, silent_after_days) as active_within_days,
        silent_after_days,
        greatest(churn_after_days, silent_after_days + 1) as churn_after_days,
        {{ var_or('lifecycle_window_days', 'silent_after_days') }} as window_days
    from resolved

)

select * from final
