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

stats as (

    select
        count(gap_days) as gaps_observed,
        median(gap_days) as median_gap_days,
        quantile_cont(gap_days, {{ var('silent_quantile') }}) as silent_quantile_days,
        quantile_cont(gap_days, {{ var('churn_quantile') }}) as churn_quantile_days
    from gaps

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
