-- Each playbook list's figures by priority group and channel: members to send to, the
-- control group held out, the cost of the sends and the lowest score in the group.
-- The Dagster asset of each list shows these (no list is built outside dbt).
with

targets as (

    select * from {{ ref('campaign_targets') }}

),

final as (

    select
        list_name,
        min(list_priority) as list_priority,
        priority_group,
        channel,
        count(*) filter (where not is_control) as send,
        count(*) filter (where is_control) as control,
        coalesce(sum(cost_per_contact) filter (where not is_control), 0) as cost,
        min(score) as min_score
    from targets
    group by list_name, priority_group, channel

)

select * from final
