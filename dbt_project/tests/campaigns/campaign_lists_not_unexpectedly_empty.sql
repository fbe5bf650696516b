{{ config(meta={"dagster": {"ref": {"name": "campaign_targets"}}}) }}
-- Blocking: a list that has members sendable for it (and not taken by a
-- higher-priority list) must not come out empty: that would mean a broken cap,
-- channel or score, not "nobody to contact".
with assignments as (
    select * from {{ ref('campaign_assignments') }}
),
available as (
    select list_name, count(*) filter (where is_assigned) as assigned_here
    from assignments
    where is_sendable
    group by list_name
),
targeted as (
    select list_name, count(*) as n from {{ ref('campaign_targets') }} group by list_name
)
select a.list_name, a.assigned_here
from available as a
left join targeted as t on a.list_name = t.list_name
where a.assigned_here > 0 and coalesce(t.n, 0) = 0
