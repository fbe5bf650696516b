-- Rows of the campaign systems' files (send log, coupon events) that cannot be used,
-- with the reason and where they came from. They count in ingest_reconciliation.
with

sends as (

    select
        'campaign_sends' as entity, source_file, source_row, campaign_id, member_id,
        invalid_reason as reason
    from {{ ref('stg_campaign__sends') }}
    where invalid_reason is not null

),

coupons as (

    select
        'coupon_events' as entity, source_file, source_row, campaign_id, member_id,
        invalid_reason as reason
    from {{ ref('stg_coupon__events') }}
    where invalid_reason is not null

)

select source_file || ':' || cast(source_row as varchar) as row_key, *
from (select * from sends union all select * from coupons)
