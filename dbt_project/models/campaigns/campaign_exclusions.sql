-- Why members who qualified for a list are not in it: one row per member per
-- list they qualified for but are not targeted by. The audit trail for "why
-- was X not contacted?".
-- CTEs read more than once are `not materialized`: DuckDB would otherwise copy them
-- whole to read them again (re-reading the table is cheaper).
with

assignments as not materialized (

    select * from {{ ref('campaign_assignments') }}

),

assigned as (

    select member_id, list_name as assigned_list from assignments where is_assigned

),

targets as not materialized (

    select member_id, list_name from {{ ref('campaign_targets') }}

),

final as (

    select
        a.list_name,
        a.member_id,
        case
            when a.list_block_reason is not null then a.list_block_reason
            when a.contact_block_reason is not null then a.contact_block_reason
            when a.offer_block_reason is not null then a.offer_block_reason
            when a.channel is null then 'no contact detail for the list''s channels'
            when s.assigned_list != a.list_name
                then 'assigned to higher-priority list ' || s.assigned_list
                    || case when anywhere.member_id is null then ' (beyond its cap)' else '' end
            else 'beyond the list cap'
        end as reason
    from assignments as a
    left join assigned as s on a.member_id = s.member_id
    left join targets as t on a.member_id = t.member_id and a.list_name = t.list_name
    left join targets as anywhere on a.member_id = anywhere.member_id
    where t.member_id is null

)

select * from final
