{{ config(meta={"dagster": {"ref": {"name": "campaign_targets"}}}) }}
-- Blocking: each list's control group is the size its target share allows.
--
-- Each member's control draw is a stable hash (stable_bucket), so the control count
-- of a clean list is Binomial(n, control_share). The test is exact at every size:
-- the two-sided binomial p-value of the observed count (summed from the probability
-- mass function with lgamma) must not fall below var('control_share_alpha'), 1e-6 by
-- default - a clean shop fails it about once in a million list-days, while a rule
-- that removes members from one arm only (a cap, cool-down or budget cut) is caught.
-- Members drawn by the list earlier in the same campaign period are not counted.
{%- set pb = var('playbook') %}
{%- set targets_relation = ref('campaign_targets') %}
{%- if pb.lists | length > 0 %}
with

targets as (select * from {{ targets_relation }}),

expected as (
    select * from (values
        {%- for cl in pb.lists %}
        ({{ sql_literal(cl.name) }}, {{ cl.control_share }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as t(list_name, control_share)
),

-- members the list already drew earlier in this campaign period keep their side (the
-- draw is stable), e.g. a member back after a bounced send or one a send log did not
-- name: only first draws are counted
drawn_before as (
    select list_name, member_id
    from {{ source('campaigns', 'contact_history') }}
    where as_of_date < {{ as_of_date() }}
      and as_of_date >= {{ as_of_date() }} - 32  -- a period (month or week) is shorter
      and {{ campaign_period('as_of_date + 1') }} = {{ campaign_period(as_of_date() ~ ' + 1') }}
    union
    select list_name, member_id
    from {{ ref('int_campaign_contacts') }}
    where {{ campaign_period('sent_on') }} = {{ campaign_period(as_of_date() ~ ' + 1') }}
),

actual as (
    select t.list_name, count(*) as n, count(*) filter (where t.is_control) as x
    from targets as t
    left join drawn_before as d on t.list_name = d.list_name and t.member_id = d.member_id
    where d.member_id is null
    group by t.list_name
),

observed as (
    select a.list_name, a.n, a.x, e.control_share as p
    from actual as a
    inner join expected as e on a.list_name = e.list_name
    where e.control_share > 0 and e.control_share < 1
),

pmf as (
    select
        o.list_name,
        k.k,
        exp(
            lgamma(o.n + 1) - lgamma(k.k + 1) - lgamma(o.n - k.k + 1)
            + k.k * ln(o.p) + (o.n - k.k) * ln(1 - o.p)
        ) as prob,
        k.k <= o.x as at_most,
        k.k >= o.x as at_least
    from observed as o
    cross join lateral (select unnest(range(0, o.n + 1)) as k) as k

),

tails as (
    select
        list_name,
        sum(prob) filter (where at_most) as p_low,
        sum(prob) filter (where at_least) as p_high
    from pmf
    group by list_name
)

select
    o.list_name,
    o.n,
    o.x as control,
    round(o.x / o.n, 4) as share,
    o.p as target_share,
    least(1.0, 2 * least(t.p_low, t.p_high)) as p_value
from observed as o
inner join tails as t on o.list_name = t.list_name
where least(1.0, 2 * least(t.p_low, t.p_high)) < {{ var('control_share_alpha', 0.000001) }}
{%- else %}
select 1 where false
{%- endif %}
