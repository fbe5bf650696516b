-- Purchase occasions: one row per member per day with at least one paid order
-- on or before the as-of date. Same-day orders merge into one occasion, as in
-- the buy-till-you-die literature (and lifetimes' summary helpers).
with

purchases as (

    select * from {{ ref('stg_shop__orders') }}
    where is_purchase
      and order_date <= {{ as_of_date() }}

),

final as (

    select
        member_id,
        order_date as occasion_date,
        sum(amount) as occasion_amount,
        count(*) as orders
    from purchases
    group by member_id, order_date

)

select * from final
