-- BTYD model inputs per customer as of the as-of date, in days, with exactly
-- lifetimes' definitions (summary_data_from_transaction_data, freq='D'):
--   frequency      repeat purchase occasions (occasions - 1)
--   recency        days from the first to the last occasion
--   T              days from the first occasion to the as-of date
--   monetary_value mean value of the repeat occasions (0 when there are none)
with

customers as (

    select * from {{ ref('int_customers_summarised') }}

),

members as (

    select member_id, acquisition_cost from {{ ref('int_members_unioned') }}

),

final as (

    select
        c.member_id,
        cast(c.occasions - 1 as integer) as frequency,
        cast({{ dbt.datediff('c.first_purchase_date', 'c.last_purchase_date', 'day') }} as integer) as recency,
        cast({{ dbt.datediff('c.first_purchase_date', as_of_date(), 'day') }} as integer) as "T",
        cast(case when c.occasions > 1 then c.repeat_amount / (c.occasions - 1) else 0 end
            as double) as monetary_value,
        c.first_purchase_date,
        c.last_purchase_date,
        cast(m.acquisition_cost as double) as acquisition_cost,
        {{ as_of_date() }} as as_of_date
    from customers as c
    left join members as m on c.member_id = m.member_id

)

select * from final
