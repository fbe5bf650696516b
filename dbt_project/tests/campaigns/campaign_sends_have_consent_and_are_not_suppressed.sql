-- Blocking: nobody without marketing consent, or on the do-not-contact list, is
-- ever in a send row (checked against the members table itself, independently
-- of how campaign_targets was built).
{%- set pb = var('playbook') %}
select t.list_name, t.member_id, m.marketing_consent
from {{ ref('campaign_targets') }} as t
inner join {{ ref('int_members_unioned') }} as m on t.member_id = m.member_id
where not t.is_control
  and (
    {% if pb.consent == 'opt_out' -%}
    m.marketing_consent is not distinct from false
    {%- else -%}
    m.marketing_consent is distinct from true
    {%- endif %}
    or exists (
        select 1 from {{ ref('stg_shop__suppression') }} as x
        where x.member_id = t.member_id
           or (x.email is not null and x.email = t.email)
           or (x.phone is not null and x.phone in (t.phone, m.phone))
    )
  )
