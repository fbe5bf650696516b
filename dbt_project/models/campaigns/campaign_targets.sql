-- The run's campaign lists, one row per member (a member is in at most one list:
-- the highest-priority list they qualify for and can be contacted by).
-- Who is sendable and which list each member is assigned to: campaign_assignments.
-- Within a list members are ranked by the list's score (best first), capped by
-- contacts or budget, split into priority groups, and a stable hash of member,
-- list and campaign period holds out the control group (is_control: never sent).
{%- set pb = var('playbook') %}
{%- set costs = pb.cost_per_contact %}
{%- if pb.lists | length == 0 %}
select * from {{ ref('campaign_audiences') }} where false
{%- else %}
with

lists as (

    select * from (values
        {%- for cl in pb.lists %}
        ({{ sql_literal(cl.name) }}, {{ sql_literal(cl.goal) }}, {{ cl.priority }},
         {{ sql_literal(cl.rank_by) }}, {{ cl.priority_groups }},
         {{ sql_literal(cl.max_contacts) }}, {{ sql_literal(cl.budget) }}, {{ cl.control_share }},
         {{ sql_literal(cl.offer.type) }}, {{ cl.offer.threshold }}, {{ cl.offer.amount }},
         {{ cl.offer.validity_days }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as t(list_name, goal, list_priority, rank_by, priority_groups, max_contacts, budget,
           control_share, offer_type, offer_threshold, offer_amount, offer_validity_days)

),

assigned as (

    select a.* exclude (is_assigned, list_priority), l.* exclude (list_name)
    from {{ ref('campaign_assignments') }} as a
    inner join lists as l on a.list_name = l.list_name
    where a.is_assigned

),

ranked as (

    select
        *,
        row_number() over (
            partition by list_name order by score desc nulls last, member_id
        ) as list_rank,
        {{ stable_bucket("member_id || '|' || list_name || '|' || " ~ campaign_period(as_of_date() ~ " + 1")) }}
            < control_share as is_control,
        case channel
            {%- for ch, cost in costs.items() %}
            when '{{ ch }}' then {{ cost }}
            {%- endfor %}
            else 0
        end as cost_per_contact
    from assigned

),

cumulative as (

    select
        *,
        sum(case when is_control then 0 else 1 end) over w as cumulative_sends,
        sum(case when is_control then 0 else cost_per_contact end) over w as cumulative_cost
    from ranked
    window w as (partition by list_name order by list_rank rows unbounded preceding)

),

capped as (

    -- the ranked prefix that fits the cap: stop at the first row that does not fit
    select * exclude (fits, all_fit_so_far)
    from (
        select
            *,
            bool_and(fits) over (
                partition by list_name order by list_rank rows unbounded preceding
            ) as all_fit_so_far
        from (
            select
                *,
                (max_contacts is null or cumulative_sends <= max_contacts)
                and (budget is null or cumulative_cost <= budget + 1e-9) as fits
            from cumulative
        )
    )
    where all_fit_so_far

),

scored as (

    -- churn odds over the list's own horizon: P(no purchase in horizon_days), from the
    -- selected model (NULL for members without a model score)
    select
        *,
        cast(case list_name
            {%- for cl in pb.lists %}
            when {{ sql_literal(cl.name) }} then {{ cl.horizon_days }}
            {%- endfor %}
        end as integer) as churn_horizon_days,
        cast(case list_name
            {%- for cl in pb.lists %}
            when {{ sql_literal(cl.name) }} then round(1 - p_purchase_{{ cl.horizon_days }}d, 4)
            {%- endfor %}
        end as double) as churn_odds
    from capped

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        list_name,
        goal,
        list_priority,
        member_id,
        cast(list_rank as integer) as list_rank,
        cast(ntile(priority_groups) over (partition by list_name order by list_rank) as integer)
            as priority_group,
        score,
        rank_by,
        lifecycle_stage
            || coalesce(' / ' || rfm_segment, '')
            || coalesce('; p(buy ' || churn_horizon_days || 'd) ' || printf('%.2f', 1 - churn_odds), '')
            || coalesce('; CLV 12m ' || printf('%.0f', predicted_clv_12m), '')
            || '; ' || rank_by || ' ' || coalesce(printf('%.3f', score), 'n/a')
            as reason,
        lifecycle_stage,
        rfm_segment,
        rf_cell,
        p_alive,
        p_purchase_60d,
        p_purchase_90d,
        churn_odds,
        churn_horizon_days,
        expected_order_value,
        predicted_clv_12m,
        churn_risk,
        value_tier,
        offer_type,
        cast(offer_threshold as double) as offer_threshold,
        cast(offer_amount as double) as offer_amount,
        cast({{ dbt.dateadd('day', 'offer_validity_days', as_of_date()) }} as date) as offer_valid_until,
        -- the campaign: the list sent the day after the as-of date; each sent coupon a
        -- unique code derived from campaign and member, so redemptions trace back
        list_name || '-' || strftime({{ as_of_date() }} + 1, '%Y%m%d') as campaign_id,
        case when offer_type = 'coupon' and not is_control then
            {{ coupon_code("list_name || '-' || strftime(" ~ as_of_date() ~ " + 1, '%Y%m%d')", 'member_id') }}
        end as coupon_code,
        channel,
        cast(cost_per_contact as double) as cost_per_contact,
        is_control,
        name,
        phone_e164 as phone,
        email,
        model_version
    from scored

)

select * from final
{%- endif %}
