-- Per customer with at least one purchase occasion as of the as-of date: the
-- dates, counts and amounts every customer mart is built from.
with

occasions as (

    select
        *,
        lag(occasion_date) over (partition by member_id order by occasion_date) as previous_occasion_date
    from {{ ref('int_purchase_occasions') }}

),

cycle as (

    select * from {{ ref('int_purchase_cycle_derived') }}

),

final as (

    select
        o.member_id,
        min(o.occasion_date) as first_purchase_date,
        max(o.occasion_date) as last_purchase_date,
        count(*) as occasions,
        sum(o.orders) as orders,
        sum(o.occasion_amount) as total_amount,
        {{ dbt.datediff('max(o.previous_occasion_date)', 'max(o.occasion_date)', 'day') }}
            as gap_before_last_days,
        count(*) filter (
            where o.occasion_date > {{ dbt.dateadd('day', '-c.window_days', as_of_date()) }}
        ) as occasions_recent_window,
        count(*) filter (
            where o.occasion_date > {{ dbt.dateadd('day', '-2 * c.window_days', as_of_date()) }}
              and o.occasion_date <= {{ dbt.dateadd('day', '-c.window_days', as_of_date()) }}
        ) as occasions_previous_window
    from occasions as o
    cross join cycle as c
    group by o.member_id

)

select * from final
