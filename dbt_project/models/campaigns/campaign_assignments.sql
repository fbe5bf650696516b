-- Every (list, member) audience row with whether the member can be contacted for
-- that list, by which channel, and which single list the member is assigned to:
-- sendable = no contact block (consent, do-not-contact list, cool-down, contact
-- cap: campaign_members.contact_block_reason) and a contact detail for one of
-- the list's channels (the first one in the list's order);
-- assigned = the highest-priority list (lowest number) the member is sendable for.
{%- set pb = var('playbook') %}
with

audiences as (

    select a.list_name, a.list_priority, a.score, m.*
    from {{ ref('campaign_audiences') }} as a
    inner join {{ ref('campaign_members') }} as m on a.member_id = m.member_id

),

channelled as (

    select
        *,
        {%- if pb.lists | length > 0 %}
        case list_name
            {%- for cl in pb.lists %}
            when {{ sql_literal(cl.name) }} then case
                {%- for ch in cl.channels %}
                when {{ ch }}_ok then '{{ ch }}'
                {%- endfor %}
            end
            {%- endfor %}
        end as channel,
        -- a list ranked or filtered on model scores is not built without current scores
        case
            {%- for cl in pb.lists if list_needs_scores(cl) %}
            when list_name = {{ sql_literal(cl.name) }} and not scores_available
                then 'list needs model scores; none for this as-of (model skipped: too little data?)'
            {%- endfor %}
        end as list_block_reason
        {%- else %}
        cast(null as varchar) as channel,
        cast(null as varchar) as list_block_reason
        {%- endif %}
    from audiences

),

final as (

    select
        *,
        contact_block_reason is null and list_block_reason is null and channel is not null
            as is_sendable,
        coalesce(
            contact_block_reason is null and list_block_reason is null and channel is not null
            and row_number() over (
                partition by member_id
                order by (
                    contact_block_reason is null and list_block_reason is null
                    and channel is not null
                ) desc,
                list_priority
            ) = 1,
            false
        ) as is_assigned
    from channelled

)

select * from final
