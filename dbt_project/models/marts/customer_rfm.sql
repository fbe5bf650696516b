-- RFM per customer with at least one purchase as of the as-of date.
-- Scores 1-5 are quintiles of the customer's percent rank: equal values always
-- get the same score (so ties are broken deterministically, never by row order),
-- which makes quintiles uneven when many customers share a value (frequency 1).
-- R scores recent buyers high; F and M score high values high.
with

customers as (

    select * from {{ ref('int_customers_summarised') }}

),

cycle as (

    select * from {{ ref('int_purchase_cycle_derived') }}

),

rules as (

    select * from {{ ref('rfm_segment_rules') }}

),

measured as (

    select
        member_id,
        cast({{ dbt.datediff('last_purchase_date', as_of_date(), 'day') }} as integer) as recency_days,
        cast(occasions as integer) as frequency,
        cast(total_amount as decimal(18, 2)) as monetary_total,
        cast(round(total_amount / occasions, 2) as decimal(18, 2)) as monetary_avg,
        first_purchase_date,
        last_purchase_date
    from customers

),

r_ranks as ({{ quintile_ranks('measured', '-recency_days') }}),

f_ranks as ({{ quintile_ranks('measured', 'frequency') }}),

m_ranks as ({{ quintile_ranks('measured', 'monetary_total') }}),

scored as (

    select
        m.*,
        {{ quintile_score('r') }} as r_score,
        {{ quintile_score('f') }} as f_score,
        {{ quintile_score('mr') }} as m_score
    from measured as m
    left join r_ranks as r on -m.recency_days is not distinct from r.v
    left join f_ranks as f on m.frequency is not distinct from f.v
    left join m_ranks as mr on m.monetary_total is not distinct from mr.v

),

grid as (

    -- the segment of each of the 25 R x F score cells: the first matching rule by
    -- priority (looked up once per cell, not once per customer)
    select
        cast(rs.range as integer) as r_score,
        cast(fs.range as integer) as f_score,
        r.segment
    from range(1, 6) as rs
    cross join range(1, 6) as fs
    left join rules as r
        on rs.range between r.r_min and r.r_max
       and fs.range between r.f_min and r.f_max
    qualify row_number() over (partition by rs.range, fs.range order by r.priority) = 1

),

segmented as (

    select
        s.*,
        g.segment as rfm_segment
    from scored as s
    left join grid as g
        on s.r_score = g.r_score
       and s.f_score = g.f_score

),

final as (

    select
        s.member_id,
        s.recency_days,
        s.frequency,
        s.monetary_total,
        s.monetary_avg,
        cast(s.r_score as integer) as r_score,
        cast(s.f_score as integer) as f_score,
        cast(s.m_score as integer) as m_score,
        cast(s.r_score as varchar) || cast(s.f_score as varchar) || cast(s.m_score as varchar) as rfm_code,
        s.rfm_segment,
        case
            when s.recency_days <= c.active_within_days then 'active'
            when s.recency_days <= c.silent_after_days then 'silent'
            when s.recency_days <= c.churn_after_days then 'sleeping'
            else 'lost'
        end as r_group,
        case
            when s.frequency >= {{ var('rf_fan_min_purchases') }} then 'fan'
            when s.frequency >= {{ var('rf_regular_min_purchases') }} then 'regular'
            when s.frequency = 2 then 'second'
            else 'new'
        end as f_group,
        s.first_purchase_date,
        s.last_purchase_date,
        {{ as_of_date() }} as as_of_date
    from segmented as s
    cross join cycle as c

)

select
    *,
    r_group || '_' || f_group as rf_cell
from final
