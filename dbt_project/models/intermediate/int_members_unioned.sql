-- Every member: those in the members file plus anyone who ordered without
-- being in it (their registration is taken as their first order date).
with

members as (

    select * from {{ ref('stg_shop__members') }}

),

ordering_members as (

    select member_id, min(order_date) as first_order_date
    from {{ ref('stg_shop__orders') }}
    group by member_id

),

final as (

    select
        coalesce(m.member_id, o.member_id) as member_id,
        coalesce(m.registered_at, o.first_order_date) as registered_at,
        m.member_id is not null as in_members_file,
        m.name,
        m.gender,
        m.birthday,
        m.city,
        m.phone,
        m.email,
        m.acquisition_channel,
        m.acquisition_cost,
        m.marketing_consent
    from members as m
    full outer join ordering_members as o on m.member_id = o.member_id

)

select * from final
where registered_at <= {{ as_of_date() }}
