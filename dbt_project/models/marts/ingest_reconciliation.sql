-- Row conservation per source: rows landed = rows staged + rows quarantined +
-- exact duplicates removed. `balanced` must be true (tested).
with

orders_landed as (select count(*) as n from {{ source('raw', 'orders') }}),
orders_quarantined as (select count(*) as n from {{ ref('orders_quarantine') }}),
orders_staged as (select count(*) as n from {{ ref('stg_shop__orders') }}),
orders_exact_duplicates as (
    -- valid rows identical to the kept version of their order_id
    select count(*) as n
    from {{ ref('base_shop__orders') }}
    where invalid_reason is null and not is_kept_version and same_as_kept
),

members_landed as (select count(*) as n from {{ source('raw', 'members') }}),
members_quarantined as (select count(*) as n from {{ ref('members_quarantine') }}),
members_merged as (
    -- extra valid rows for a member_id that already has one
    select coalesce(sum(n - 1), 0) as n
    from (
        select count(*) as n from {{ ref('base_shop__members') }}
        where invalid_reason is null group by member_id
    )
),
members_staged as (select count(*) as n from {{ ref('stg_shop__members') }}),

-- the campaign systems' files: every row is staged or quarantined (several rows of one
-- send are combined later, in int_campaign_contacts, not removed)
feedback as (
    {%- for entity, model in [('campaign_sends', 'stg_campaign__sends'), ('coupon_events', 'stg_coupon__events')] %}
    select
        '{{ entity }}' as source,
        (select count(*) from {{ source('raw', entity) }}) as rows_landed,
        count(*) filter (where invalid_reason is null) as rows_staged,
        count(*) filter (where invalid_reason is not null) as rows_quarantined
    from {{ ref(model) }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

final as (

    select
        'orders' as source,
        ol.n as rows_landed,
        os.n as rows_staged,
        oq.n as rows_quarantined,
        od.n as exact_duplicates_removed,
        cast(0 as bigint) as rows_merged
    from orders_landed as ol, orders_staged as os, orders_quarantined as oq, orders_exact_duplicates as od

    union all

    select
        'members',
        ml.n,
        ms.n,
        mq.n,
        cast(0 as bigint),
        cast(mm.n as bigint)
    from members_landed as ml, members_staged as ms, members_quarantined as mq, members_merged as mm

    union all

    select source, rows_landed, rows_staged, rows_quarantined, cast(0 as bigint), cast(0 as bigint)
    from feedback

)

select
    *,
    rows_landed = rows_staged + rows_quarantined + exact_duplicates_removed + rows_merged as balanced
from final
