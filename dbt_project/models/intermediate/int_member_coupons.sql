-- Every CRM coupon a member holds or held, one row per coupon code and member, as of
-- the as-of date: issued by a campaign we sent (its code in the send log or, for a
-- coupon offer, derived for the published list) or by the coupon system's `issued`
-- event. Closed by the first `redeemed` event or paid order carrying the code, an
-- `expired` or `revoked` event, or its validity: the list's offer.validity_days from
-- the day before the send (as in the send file's offer_valid_until), else the
-- playbook's coupon_rules.default_validity_days. Read by the coupon caps
-- (campaign_assignments) and campaign_results.
{%- set pb = var('playbook') %}
with

offers as (

    select list_name, validity_days, amount from {{ playbook_lists() }}

),

sent as (

    -- one row per code and member (a log reusing a code: its first campaign); a failed
    -- or bounced message carried no coupon (the coupon system's events may still say it
    -- was issued: the code links them to the campaign)
    select
        coupon_code,
        member_id,
        arg_min(campaign_id, sent_on) as campaign_id,
        arg_min(list_name, sent_on) as list_name,
        min(contacted_on) filter (where delivered) as issued_on
    from {{ ref('int_campaign_contacts') }}
    where coupon_code is not null
    group by coupon_code, member_id

),

events as (

    select * from {{ ref('stg_coupon__events') }}
    where invalid_reason is null
      and event_on <= {{ as_of_date() }}

),

event_summary as (

    select
        coupon_code,
        member_id,
        max(campaign_id) as campaign_id,
        min(event_on) filter (where event = 'issued') as issued_on,
        min(event_on) filter (where event = 'redeemed') as redeemed_on,
        min(event_on) filter (where event in ('expired', 'revoked')) as closed_on,
        max(face_value) as face_value
    from events
    group by coupon_code, member_id

),

redeeming_orders as (

    select coupon_code, member_id, min(order_date) as redeemed_on
    from {{ ref('stg_shop__orders') }}
    where is_purchase
      and coupon_code is not null
      and order_date <= {{ as_of_date() }}
    group by coupon_code, member_id

),

coupons as (

    select
        coalesce(s.coupon_code, e.coupon_code) as coupon_code,
        coalesce(s.member_id, e.member_id) as member_id,
        coalesce(e.campaign_id, s.campaign_id) as campaign_id,
        s.list_name,
        coalesce(least(s.issued_on, e.issued_on), s.issued_on, e.issued_on, e.redeemed_on)
            as issued_on,
        e.redeemed_on as event_redeemed_on,
        e.closed_on,
        e.face_value
    from sent as s
    full outer join event_summary as e
        on s.coupon_code = e.coupon_code and s.member_id = e.member_id

),

final as (

    select
        c.coupon_code,
        c.member_id,
        c.campaign_id,
        coalesce(c.list_name, k.list_name,
            {{ list_of_campaign('c.campaign_id') }}) as list_name,
        c.issued_on,
        least(c.event_redeemed_on, r.redeemed_on) as redeemed_on,
        c.closed_on,
        cast(c.issued_on - 1 + coalesce(
            o.validity_days, {{ pb.coupon_rules.default_validity_days }}) as date) as expires_on,
        cast(coalesce(c.face_value, o.amount) as double) as face_value
    from coupons as c
    left join redeeming_orders as r
        on c.coupon_code = r.coupon_code and c.member_id = r.member_id
    left join (
        select distinct campaign_id, list_name from {{ ref('int_campaign_contacts') }}
    ) as k on c.campaign_id = k.campaign_id
    left join offers as o on coalesce(c.list_name, k.list_name,
        {{ list_of_campaign('c.campaign_id') }}) = o.list_name
    where c.issued_on is not null

)

select
    *,
    -- held and usable on the as-of date: the coupon caps count these
    redeemed_on is null
        and closed_on is null
        and expires_on >= {{ as_of_date() }} as is_open
from final
