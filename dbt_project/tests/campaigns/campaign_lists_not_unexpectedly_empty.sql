-- Blocking: a list whose audience has contactable members must not come out
-- empty (that would mean a broken cap, channel or score, not "nobody to call").
with contactable as (
    select a.list_name, count(*) as n
    from {{ ref('campaign_audiences') }} as a
    inner join {{ ref('campaign_members') }} as m on a.member_id = m.member_id
    where m.has_consent and not m.is_suppressed and (m.sms_ok or m.email_ok or m.push_ok)
    group by a.list_name
),
targeted as (
    select list_name, count(*) as n from {{ ref('campaign_targets') }} group by list_name
),
taken as (
    -- members that a higher-priority list already took
    select a.list_name, count(*) as n
    from {{ ref('campaign_audiences') }} as a
    inner join {{ ref('campaign_targets') }} as t
        on a.member_id = t.member_id and a.list_name != t.list_name
    group by a.list_name
)
select c.list_name, c.n as contactable_members
from contactable as c
left join targeted as t on c.list_name = t.list_name
left join taken as k on c.list_name = k.list_name
where coalesce(t.n, 0) = 0 and c.n > coalesce(k.n, 0)
