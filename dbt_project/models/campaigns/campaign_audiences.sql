-- Who qualifies for which list (before consent, channels, priority and caps),
-- with the list's ranking score. One row per member per list.
{%- set pb = var('playbook') %}
{%- if pb.lists | length == 0 %}
select
    cast(null as varchar) as list_name,
    cast(null as integer) as list_priority,
    cast(null as varchar) as member_id,
    cast(null as double) as score
where false
{%- else %}
with

members as (

    select * from {{ ref('campaign_members') }}

)

{% for cl in pb.lists %}
select
    {{ sql_literal(cl.name) }} as list_name,
    {{ cl.priority }} as list_priority,
    member_id,
    {{ rank_expression(cl.rank_by) }} as score
from members
where {{ audience_condition(cl.audience) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
{%- endif %}
