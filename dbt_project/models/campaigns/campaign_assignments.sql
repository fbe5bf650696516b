-- Every (list, member) audience row with whether the member can be contacted for
-- that list, by which channel, and which single list the member is assigned to:
-- sendable = no contact block (consent, do-not-contact list, cool-down, contact
-- cap: campaign_members.contact_block_reason), no coupon rule against the list's
-- coupon (playbook coupon_rules, from int_member_coupons: open coupons held, the
-- same list's coupon recently, a recent redemption of it) and a contact detail for
-- one of the list's channels (the first one in the list's order);
-- assigned = the highest-priority list (lowest number) the member is sendable for.
{%- set pb = var('playbook') %}
with

{%- set rules = pb.coupon_rules %}
coupons as (

    select * from {{ ref('int_member_coupons') }}

),

open_coupons as (

    select member_id, count(*) as open_coupons
    from coupons
    where is_open
    group by member_id

),

list_coupons as (

    select
        member_id,
        list_name,
        max(issued_on) as last_issued_on,
        max(redeemed_on) as last_redeemed_on
    from coupons
    where list_name is not null
    group by member_id, list_name

),

audiences as (

    select
        a.list_name,
        a.list_priority,
        a.score,
        m.*,
        coalesce(oc.open_coupons, 0) as open_coupons,
        lc.last_issued_on as list_coupon_issued_on,
        lc.last_redeemed_on as list_coupon_redeemed_on
    from {{ ref('campaign_audiences') }} as a
    inner join {{ ref('campaign_members') }} as m on a.member_id = m.member_id
    left join open_coupons as oc on a.member_id = oc.member_id
    left join list_coupons as lc on a.member_id = lc.member_id and a.list_name = lc.list_name

),

channelled as (

    select
        *,
        {%- if pb.lists | length > 0 %}
        case list_name
            {%- for cl in pb.lists %}
            when {{ sql_literal(cl.name) }} then case
                {%- for ch in cl.channels %}
                when {{ ch }}_ok then '{{ ch }}'
                {%- endfor %}
            end
            {%- endfor %}
        end as channel,
        -- a list ranked or filtered on model scores is not built without current scores
        case
            {%- for cl in pb.lists if list_needs_scores(cl) %}
            when list_name = {{ sql_literal(cl.name) }} and not scores_available
                then 'list needs model scores; none for this as-of (model skipped: too little data?)'
            {%- endfor %}
        end as list_block_reason,
        -- a coupon list is not sent to a member a coupon rule protects
        case
            when false then null
            {%- set coupon_lists = pb.lists | selectattr('offer.type', 'equalto', 'coupon') | map(attribute='name') | list %}
            {%- for name in coupon_lists %}
            {%- if rules.max_unredeemed > 0 %}
            when list_name = {{ sql_literal(name) }} and open_coupons >= {{ rules.max_unredeemed }}
                then 'coupon rule: holds ' || open_coupons || ' open coupons (at most {{ rules.max_unredeemed }})'
            {%- endif %}
            {%- if rules.after_redemption_days > 0 %}
            when list_name = {{ sql_literal(name) }}
                and list_coupon_redeemed_on > {{ dbt.dateadd('day', -1 * rules.after_redemption_days, as_of_date()) }}
                then 'coupon rule: redeemed this list''s coupon on ' || cast(list_coupon_redeemed_on as varchar)
                    || ' (no repeat for {{ rules.after_redemption_days }} days)'
            {%- endif %}
            {%- if rules.same_offer_days > 0 %}
            when list_name = {{ sql_literal(name) }}
                and list_coupon_issued_on > {{ dbt.dateadd('day', -1 * rules.same_offer_days, dbt.dateadd('day', 1, as_of_date())) }}
                then 'coupon rule: got this list''s coupon on ' || cast(list_coupon_issued_on as varchar)
                    || ' (once in {{ rules.same_offer_days }} days)'
            {%- endif %}
            {%- endfor %}
        end as offer_block_reason
        {%- else %}
        cast(null as varchar) as channel,
        cast(null as varchar) as list_block_reason,
        cast(null as varchar) as offer_block_reason
        {%- endif %}
    from audiences

),

blocked as (

    select
        *,
        contact_block_reason is null and list_block_reason is null
            and offer_block_reason is null and channel is not null as sendable
    from channelled

),

final as (

    select
        * exclude (sendable),
        sendable as is_sendable,
        coalesce(
            sendable
            and row_number() over (
                partition by member_id order by sendable desc, list_priority
            ) = 1,
            false
        ) as is_assigned
    from blocked

)

select * from final
