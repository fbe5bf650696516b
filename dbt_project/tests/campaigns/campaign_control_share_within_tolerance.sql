-- Blocking: each list's control share is near its target (binomial tolerance:
-- 3 standard deviations, at least 2 percentage points; lists under 50 members
-- are too small to judge).
{%- set pb = var('playbook') %}
{%- if pb.lists | length > 0 %}
with targets as (select * from {{ ref('campaign_targets') }}),
expected as (
    select * from (values
        {%- for cl in pb.lists %}
        ({{ sql_literal(cl.name) }}, {{ cl.control_share }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as t(list_name, control_share)
),
actual as (
    select list_name, count(*) as n, avg(case when is_control then 1.0 else 0.0 end) as share
    from targets group by list_name
)
select a.list_name, a.n, a.share, e.control_share
from actual as a
inner join expected as e on a.list_name = e.list_name
where a.n >= 50
  and abs(a.share - e.control_share)
      > greatest(0.02, 3 * sqrt(e.control_share * (1 - e.control_share) / a.n))
{%- else %}
select 1 where false
{%- endif %}
