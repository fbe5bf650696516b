{{ config(meta={"dagster": {"ref": {"name": "campaign_targets"}}}) }}
-- Blocking: nobody without marketing consent, or on the do-not-contact list, is
-- ever in a send row (checked against the staged members and suppression list,
-- independently of how campaign_members decided who may be contacted). The send
-- files themselves are checked again after they are written (campaign_exports).
{%- set pb = var('playbook') %}
with

sends as (

    select t.list_name, t.member_id, t.phone, t.email, m.marketing_consent, m.phone as member_phone,
        m.email as member_email
    from {{ ref('campaign_targets') }} as t
    left join {{ ref('int_members_unioned') }} as m on t.member_id = m.member_id
    where not t.is_control

),

suppression as (

    select * from {{ ref('stg_shop__suppression') }}

),

hits as (

    -- equality joins only (a join on `in (a, b)` compares every send with every entry)
    select s.list_name, s.member_id from sends as s
    inner join suppression as x on x.member_key = lower(s.member_id)
    {%- for column in ['phone', 'member_phone', 'email', 'member_email'] %}
    union all
    select s.list_name, s.member_id from sends as s
    inner join suppression as x on x.{{ column.replace('member_', '') }} = s.{{ column }}
    {%- endfor %}
    union all
    select list_name, member_id from sends
    where {% if pb.consent == 'opt_out' -%}
        marketing_consent is not distinct from false
    {%- else -%}
        marketing_consent is distinct from true
    {%- endif %}

)

select distinct list_name, member_id from hits
