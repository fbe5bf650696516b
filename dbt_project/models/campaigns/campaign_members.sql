-- Everything a campaign audience can filter or rank on, one row per member, plus
-- whether and how the member may be contacted. Scores are used only when they
-- were computed for this as-of date (stale scores are never used as new).
{%- set pb = var('playbook') %}
-- CTEs read more than once are `not materialized`: DuckDB would otherwise copy them
-- whole to read them again (re-reading the table is cheaper).
with

lifecycle as (

    select * from {{ ref('customer_lifecycle') }}

),

rfm as (

    select * from {{ ref('customer_rfm') }}

),

scores as not materialized (

    select * from {{ source('model', 'customer_scores') }}
    where as_of_date = {{ as_of_date() }}

),

members as not materialized (

    select * from {{ ref('int_members_unioned') }}

),

suppression as not materialized (

    select * from {{ ref('stg_shop__suppression') }}

),

suppressed as (

    -- equality joins on the normalised identifiers (macros/identifiers.sql), one per
    -- kind, so a million-entry list stays a hash join; member ids match case-insensitively
    select m.member_id
    from members as m
    inner join suppression as x on x.member_key = lower(m.member_id)
    union
    select m.member_id
    from members as m
    inner join suppression as x on x.phone = m.phone
    union
    select m.member_id
    from members as m
    inner join suppression as x on x.email = m.email

),

push_reachable as (

    select distinct member_id
    from {{ ref('stg_shop__orders') }}
    where order_date <= {{ as_of_date() }}
    {%- if pb.push_channels %}
      and channel in ({% for c in pb.push_channels %}{{ sql_literal(c) }}{{ ", " if not loop.last }}{% endfor %})
    {%- else %}
      and false
    {%- endif %}

),

history as (

    -- contacts of campaigns sent up to the as-of date (int_campaign_contacts: the send
    -- log where landed, else the published lists), so re-running a day reproduces its
    -- lists. Held-out members count for the cool-down (so control groups do not pile up
    -- on the next day); a failed or bounced send counts for neither rule.
    select
        member_id,
        max(contacted_on) as last_contacted_on,
        count(*) filter (
            where delivered
              and contacted_on > {{ dbt.dateadd('day', -1 * pb.contact_cap.days, dbt.dateadd('day', 1, as_of_date())) }}
        ) as contacts_in_cap_window
    from {{ ref('int_campaign_contacts') }}
    where delivered or is_control
    group by member_id

),

final as (

    select
        m.member_id,
        l.lifecycle_stage,
        l.days_since_last_purchase,
        {{ dbt.datediff('l.first_purchase_date', as_of_date(), 'day') }} as days_since_first_purchase,
        r.recency_days,
        r.frequency,
        r.monetary_total,
        r.r_score,
        r.f_score,
        r.m_score,
        r.rfm_segment,
        r.r_group,
        r.f_group,
        r.rf_cell,
        s.p_alive,
        s.p_purchase_60d,
        s.p_purchase_90d,
        {%- for h in var('playbook').lists | map(attribute='horizon_days') | unique
                if h not in (60, 90) %}
        s.p_purchase_{{ h }}d,
        {%- endfor %}
        s.expected_purchases_90d,
        s.expected_order_value,
        s.predicted_clv_12m,
        s.churn_risk,
        s.value_tier,
        s.model_version,
        m.name,
        m.gender,
        m.city,
        m.acquisition_channel,
        month(m.birthday) = month({{ dbt.dateadd('day', 1, as_of_date()) }}) as birthday_in_campaign_month,
        m.phone as phone_e164,
        m.email,
        {% if pb.consent == 'opt_out' -%}
        coalesce(m.marketing_consent, true) as has_consent,
        {%- else -%}
        coalesce(m.marketing_consent, false) as has_consent,
        {%- endif %}
        x.member_id is not null as is_suppressed,
        h.last_contacted_on,
        coalesce(h.contacts_in_cap_window, 0) as contacts_in_cap_window,
        m.phone is not null as sms_ok,
        m.email is not null as email_ok,
        p.member_id is not null as push_ok,
        exists (select 1 from scores) as scores_available
    from members as m
    inner join lifecycle as l on m.member_id = l.member_id
    left join rfm as r on m.member_id = r.member_id
    left join scores as s on m.member_id = s.member_id
    left join suppressed as x on m.member_id = x.member_id
    left join push_reachable as p on m.member_id = p.member_id
    left join history as h on m.member_id = h.member_id

)

select
    *,
    -- the first rule that forbids contacting the member at all this run (null = may contact)
    case
        when not has_consent then 'no marketing consent'
        when is_suppressed then 'on the do-not-contact list'
        {%- if pb.cooldown_days > 0 %}
        when last_contacted_on > {{ dbt.dateadd('day', -1 * pb.cooldown_days, dbt.dateadd('day', 1, as_of_date())) }}
            then 'contacted on ' || cast(last_contacted_on as varchar)
                || ' (cool-down {{ pb.cooldown_days }} days)'
        {%- endif %}
        {%- if pb.contact_cap.max_contacts > 0 %}
        when contacts_in_cap_window >= {{ pb.contact_cap.max_contacts }}
            then 'contact cap reached ({{ pb.contact_cap.max_contacts }} in {{ pb.contact_cap.days }} days)'
        {%- endif %}
    end as contact_block_reason
from final
