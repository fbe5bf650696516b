-- BTYD model inputs per customer as of the as-of date, in days (definitions in the
-- btyd_features macro, shared with the backtest's calibration period).
with

features as (

    {{ btyd_features(ref('int_purchase_occasions'), as_of_date()) }}

),

members as (

    select member_id, acquisition_cost from {{ ref('int_members_unioned') }}

),

final as (

    select
        f.member_id,
        f.frequency,
        f.recency,
        f."T",
        f.monetary_value,
        f.first_purchase_date,
        f.last_purchase_date,
        cast(m.acquisition_cost as double) as acquisition_cost,
        {{ as_of_date() }} as as_of_date
    from features as f
    left join members as m on f.member_id = m.member_id

)

select * from final
