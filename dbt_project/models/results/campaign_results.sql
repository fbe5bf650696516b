-- Every campaign read out against its control group. The record of who was sent and
-- who was held out is int_campaign_contacts: a landed send log where there is one
-- (failed and bounced sends are not treated members: `not_delivered`), else the list
-- we published. A campaign's window is its list's results_window_days (playbook,
-- default 30) from the send day, observed up to this run's as-of date (provisional
-- until it closes). One row per campaign x priority group x channel, one per campaign
-- x priority group over all channels (channel null) and one total row per campaign
-- (priority_group and channel null). A member in two campaigns
-- counts in both, each against its own control group.
-- Rates are fractions; uplift = treated_rate - control_rate with a 95% Newcombe
-- (hybrid Wilson score) interval; min_detectable_uplift is what the control size
-- can detect (two-sided 5%, power 80%). Coupons (int_member_coupons): issued to the
-- campaign's sends, redeemed inside the window; subsidy = their face value. Costs
-- (messages, subsidy) count every send, delivered or not; roi = (incremental revenue
-- - message cost - subsidy) / (message cost + subsidy).
-- Incremental: a run replaces the rows of the campaigns int_campaign_contacts read (and
-- drops any sent after its as-of date) and keeps older ones, final since every window
-- closed; computed_as_of is the as-of date of the run that wrote a row. Built from
-- scratch the first time, with dbt's --full-refresh or `crm run --rebuild-results`.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    full_refresh=(true if var('rebuild_campaign_results', false) else none),
    pre_hook="{{ keep_final_campaign_results() }}",
) }}
{%- set pb = var('playbook') %}
{%- set z = 1.959963984540054 %}
with

contacts as (

    select * from {{ ref('int_campaign_contacts') }}

),

windows as (

    select list_name, window_days from {{ playbook_lists() }}

),

members as (

    select
        c.*,
        coalesce(w.window_days, 30) as window_days
    from contacts as c
    left join windows as w on c.list_name = w.list_name

),

purchases as (

    -- each contact's purchases inside its window, grouped by the contact's key, not by
    -- all its columns: this relies on one row per campaign and member, which the
    -- unique_combination test on int_campaign_contacts enforces (a failure stops dbt
    -- build before this model; joined back, a duplicate would count purchases twice)
    select
        m.campaign_id,
        m.member_id,
        count(*) as occasions,
        sum(o.occasion_amount) as revenue
    from members as m
    inner join {{ ref('int_purchase_occasions') }} as o
        on o.member_id = m.member_id
        and o.occasion_date >= m.sent_on
        and o.occasion_date < m.sent_on + m.window_days
    group by m.campaign_id, m.member_id

),

outcomes as (

    select
        m.*,
        p.occasions is not null as bought,
        coalesce(p.revenue, 0) as revenue
    from members as m
    left join purchases as p on m.campaign_id = p.campaign_id and m.member_id = p.member_id

),

with_coupons as (

    select
        o.*,
        k.coupon_code is not null as coupon_issued,
        coalesce(k.redeemed_on >= o.sent_on and k.redeemed_on < o.sent_on + o.window_days, false)
            as coupon_redeemed,
        case when k.redeemed_on >= o.sent_on and k.redeemed_on < o.sent_on + o.window_days
            then k.face_value else 0 end as subsidy
    from outcomes as o
    left join {{ ref('int_member_coupons') }} as k
        on not o.is_control
        and k.campaign_id = o.campaign_id
        and k.member_id = o.member_id

),

grouped as (

    select
        campaign_id,
        any_value(list_name) as list_name,
        any_value(sent_on) as sent_on,
        priority_group,
        channel,
        any_value(window_days) as window_days,
        count(*) filter (where delivered) as treated,
        count(*) filter (where is_control) as control,
        count(*) filter (where not is_control and not delivered) as not_delivered,
        count(*) filter (where delivered and bought) as treated_buyers,
        count(*) filter (where is_control and bought) as control_buyers,
        coalesce(sum(revenue) filter (where delivered), 0) as treated_revenue,
        coalesce(sum(revenue) filter (where is_control), 0) as control_revenue,
        count(*) filter (where delivered and was_lapsed) as treated_lapsed,
        count(*) filter (where delivered and was_lapsed and bought) as lapsed_buyers,
        count(*) filter (where not is_control and engaged) as engaged,
        count(*) filter (where not is_control and engaged is not null) as engagement_known,
        count(*) filter (where coupon_issued) as coupons_issued,
        count(*) filter (where coupon_redeemed) as coupons_redeemed,
        coalesce(sum(subsidy), 0) as subsidy,
        coalesce(sum(message_cost) filter (where not is_control), 0) as message_cost
    from with_coupons
    group by grouping sets (
        (campaign_id, priority_group, channel), (campaign_id, priority_group), (campaign_id)
    )

),

rates as (

    select
        *,
        treated_buyers / nullif(treated, 0) as treated_rate,
        control_buyers / nullif(control, 0) as control_rate
    from grouped

),

wilson as (

    -- Wilson score interval of each rate (l, u)
    select
        *,
        {% for side in ['treated', 'control'] %}
        ({{ side }}_rate + {{ z * z }} / (2 * {{ side }})
            - {{ z }} * sqrt({{ side }}_rate * (1 - {{ side }}_rate) / {{ side }}
                + {{ z * z }} / (4 * {{ side }} * {{ side }})))
            / (1 + {{ z * z }} / {{ side }}) as {{ side }}_low,
        ({{ side }}_rate + {{ z * z }} / (2 * {{ side }})
            + {{ z }} * sqrt({{ side }}_rate * (1 - {{ side }}_rate) / {{ side }}
                + {{ z * z }} / (4 * {{ side }} * {{ side }})))
            / (1 + {{ z * z }} / {{ side }}) as {{ side }}_high{{ "," if not loop.last }}
        {% endfor %}
    from rates

),

final as (

    select
        campaign_id,
        list_name,
        sent_on,
        cast(priority_group as integer) as priority_group,
        channel,
        cast(window_days as integer) as window_days,
        {{ as_of_date() }} >= sent_on + window_days - 1 as window_closed,
        cast(treated as integer) as treated,
        cast(control as integer) as control,
        cast(not_delivered as integer) as not_delivered,
        cast(treated_buyers as integer) as treated_buyers,
        cast(control_buyers as integer) as control_buyers,
        treated_rate,
        control_rate,
        treated_rate - control_rate as uplift,
        treated_rate - control_rate
            - sqrt(power(treated_rate - treated_low, 2) + power(control_high - control_rate, 2))
            as uplift_ci_low,
        treated_rate - control_rate
            + sqrt(power(treated_high - treated_rate, 2) + power(control_rate - control_low, 2))
            as uplift_ci_high,
        'Newcombe hybrid score (Wilson), 95%' as ci_method,
        2.801585 * sqrt(
            greatest(coalesce(control_rate, treated_rate), 1e-9)
            * (1 - greatest(coalesce(control_rate, treated_rate), 1e-9))
            * (1.0 / nullif(treated, 0) + 1.0 / nullif(control, 0))
        ) as min_detectable_uplift,
        (treated_rate - control_rate) * treated as incremental_buyers,
        cast(treated_revenue as double) as treated_revenue,
        cast(control_revenue / nullif(control, 0) as double) as control_revenue_per_member,
        cast(treated_revenue - control_revenue / nullif(control, 0) * treated as double)
            as incremental_revenue,
        cast(coupons_issued as integer) as coupons_issued,
        cast(coupons_redeemed as integer) as coupons_redeemed,
        coupons_redeemed / nullif(coupons_issued, 0) as redemption_rate,
        cast(subsidy as double) as subsidy,
        cast(message_cost as double) as message_cost,
        cast((treated_revenue - control_revenue / nullif(control, 0) * treated
                - message_cost - subsidy)
            / nullif(message_cost + subsidy, 0) as double) as roi,
        lapsed_buyers / nullif(treated_lapsed, 0) as recall_rate,
        -- opened or clicked, of the sends whose log says (null without such statuses)
        engaged / nullif(engagement_known, 0) as reach_rate,
        {{ as_of_date() }} as computed_as_of
    from wilson

)

select * from final
