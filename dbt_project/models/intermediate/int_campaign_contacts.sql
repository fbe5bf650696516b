-- Who each campaign reached and who it held out: one row per campaign x member, from
-- the best record there is.
--   * A landed send log (stg_campaign__sends) is the record of every campaign it
--     names. Several rows of one member (sent, delivered, opened) are combined; a
--     member whose every row failed or bounced was not contacted (`delivered` false):
--     not a treated member in campaign_results, no cool-down, no contact-cap count.
--     Control members come from the log when it lists them, else from the list we
--     published for the campaign.
--   * Otherwise the list we published (campaigns.contact_history) is the record: sent
--     on the day a marketer marked it as sent in the portal (per channel: a send whose
--     channel no mark covers did not go out), or without a mark the day after its
--     export; every send row counts as delivered.
-- Only campaigns sent up to the as-of date (a published list is sent the day after
-- its as-of date), so re-running a day reproduces its lists. `was_lapsed`: silent or
-- churned when the list was made (the published lifecycle stage), or for a campaign
-- known only from a send log, no purchase in the silent_after_days before the send.
-- Which campaigns a run reads (the cost of a run must not grow with years of
-- history): decided per campaign on a few rows per list and day, then only those
-- campaigns' rows are read. A campaign is read when it has a contact in the playbook's
-- longest look-back before the as-of date (contact_lookback_days: the cool-down,
-- contact cap, coupon rules and results windows need it), or when campaign_results
-- holds no final readout of it: one computed at least the look-back after its last
-- contact (new campaigns, provisional readouts, a send log still growing, rows a
-- re-run of an earlier day dropped). campaign_results keeps the final readouts of the
-- others. Everything is read when campaign_results is built from scratch
-- (contact_results() is none).
{%- set pb = var('playbook') %}
{%- set results = contact_results() %}
with

marks as (

    -- the portal's "mark as sent" records up to the as-of date (channel null = every channel)
    select as_of_date, list_name, channel, min(sent_on) as sent_on
    from {{ ref('stg_portal__sent_marks') }}
    where invalid_reason is null
      and not revoked
      and sent_on <= {{ as_of_date() }}
    group by all

),

marked_lists as (

    select as_of_date, list_name, min(sent_on) as sent_on
    from marks
    group by all

),

history as not materialized (

    -- read twice, never materialised: a copy of years of history (50M rows) cost more
    -- than the two scans, and the second, joined to the live lists, reads only their
    -- days (DuckDB skips the row groups outside the join's as_of_date range)
    select * from {{ source('campaigns', 'contact_history') }}
    where as_of_date < {{ as_of_date() }}

),

published_lists as (

    -- one row per published list, channel and recorded campaign id: a list marked as
    -- sent went out on its marked day(s), per channel (a send whose channel no mark
    -- covers did not go out); an unmarked list the day after its export
    select
        coalesce(l.campaign_id, l.list_name || '-' || strftime(l.as_of_date + 1, '%Y%m%d'))
            as campaign_id,
        l.as_of_date,
        l.list_name,
        l.channel,
        l.campaign_id as recorded_campaign_id,
        cast(coalesce(ml.sent_on, l.as_of_date + 1) as date) as sent_on,
        ml.list_name is not null as is_marked,
        cast(ml.sent_on as date) as marked_on,
        cast(case
            when ml.list_name is null then l.as_of_date + 1
            else least(every_channel.sent_on, this_channel.sent_on)
        end as date) as sends_contacted_on
    from (select distinct as_of_date, list_name, channel, campaign_id from history) as l
    left join marked_lists as ml
        on l.as_of_date = ml.as_of_date and l.list_name = ml.list_name
    left join marks as every_channel
        on l.as_of_date = every_channel.as_of_date and l.list_name = every_channel.list_name
        and every_channel.channel is null
    left join marks as this_channel
        on l.as_of_date = this_channel.as_of_date and l.list_name = this_channel.list_name
        and l.channel = this_channel.channel

),

log_rows as (

    select
        *,
        case status
            when 'clicked' then 5 when 'opened' then 4 when 'delivered' then 3
            when 'sent' then 2 when 'bounced' then 1 when 'failed' then 0
        end as status_rank
    from {{ ref('stg_campaign__sends') }}
    where invalid_reason is null
      and sent_on <= {{ as_of_date() }}

),

logged as (

    select
        campaign_id,
        member_id,
        bool_or(is_control) as is_control,
        min(sent_on) as contacted_on,
        arg_max(channel, coalesce(status_rank, -1)) as channel,
        max(status_rank) as best_status_rank,
        max(coupon_code) as coupon_code,
        max(list_name) as list_name,
        max(priority_group) as priority_group,
        sum(cost) as cost
    from log_rows
    group by campaign_id, member_id

),

logged_campaigns as (

    select
        campaign_id,
        min(contacted_on) as sent_on,
        max(contacted_on) as last_contacted_on,
        bool_or(is_control) as logs_control,
        bool_or(best_status_rank >= 4) as logs_engagement
    from logged
    group by campaign_id

),

last_contacts as (

    -- each campaign's last contact, over both records
    select campaign_id, max(last_on) as last_on
    from (
        select campaign_id, greatest(sent_on, coalesce(sends_contacted_on, sent_on)) as last_on
        from published_lists
        union all
        select campaign_id, last_contacted_on from logged_campaigns
    )
    group by campaign_id

),

live_campaigns as (

    -- the campaigns this run reads (see the top)
    select c.campaign_id
    from last_contacts as c
    {%- if results is not none %}
    {%- set lookback = contact_lookback_days() %}
    left join (
        select campaign_id, min(computed_as_of) as computed_as_of
        from {{ results }}
        group by campaign_id
    ) as r on c.campaign_id = r.campaign_id
    where c.last_on > {{ as_of_date() }} - {{ lookback }}
       or r.computed_as_of is null
       or r.computed_as_of < c.last_on + {{ lookback }}
    {%- endif %}

),

published as (

    select
        l.campaign_id,
        h.list_name,
        l.sent_on,
        case
            when not l.is_marked then l.sends_contacted_on
            when h.is_control then l.marked_on
            else l.sends_contacted_on
        end as contacted_on,
        l.is_marked,
        h.member_id,
        h.channel,
        h.is_control,
        h.priority_group,
        h.lifecycle_stage
    from history as h
    inner join published_lists as l
        on h.as_of_date = l.as_of_date
        and h.list_name = l.list_name
        and h.channel is not distinct from l.channel
        and h.campaign_id is not distinct from l.recorded_campaign_id
    where l.campaign_id in (select campaign_id from live_campaigns)

),

from_log as (

    select
        l.campaign_id,
        coalesce(l.list_name, p.list_name,
            {{ list_of_campaign('l.campaign_id') }}) as list_name,
        c.sent_on,
        l.contacted_on,
        l.member_id,
        l.is_control,
        case when l.is_control then null else l.best_status_rank >= 2 end as delivered,
        -- opened or clicked; unknown when the log reports no opens or clicks at all
        case when not l.is_control and c.logs_engagement then l.best_status_rank >= 4 end
            as engaged,
        l.channel,
        coalesce(l.priority_group, p.priority_group) as priority_group,
        p.lifecycle_stage,
        -- our own campaign's code when the log does not carry one
        coalesce(l.coupon_code, case when p.member_id is not null
            then {{ coupon_code('l.campaign_id', 'l.member_id') }} end) as coupon_code,
        l.coupon_code is not null as code_in_log,
        l.cost,
        'send_log' as recorded_by
    from logged as l
    inner join logged_campaigns as c on l.campaign_id = c.campaign_id
    left join published as p on l.campaign_id = p.campaign_id and l.member_id = p.member_id
    where l.campaign_id in (select campaign_id from live_campaigns)

),

from_published as (

    select
        p.campaign_id,
        p.list_name,
        p.sent_on,
        p.contacted_on,
        p.member_id,
        p.is_control,
        case when not p.is_control then p.contacted_on is not null end as delivered,
        cast(null as boolean) as engaged,
        p.channel,
        p.priority_group,
        p.lifecycle_stage,
        {{ coupon_code('p.campaign_id', 'p.member_id') }} as coupon_code,
        false as code_in_log,
        cast(null as decimal(18, 2)) as cost,
        case when p.is_marked then 'marked_sent' else 'published_list' end as recorded_by
    from published as p
    left join logged_campaigns as c on p.campaign_id = c.campaign_id
    where c.campaign_id is null
       -- the log names the campaign but not its held-out members: ours are the control
       or (p.is_control and not c.logs_control and not exists (
           select 1 from logged as l
           where l.campaign_id = p.campaign_id and l.member_id = p.member_id
       ))

),

contacts as (

    select * from from_log
    union all
    select * from from_published

),

offers as (

    select list_name, offer_type from {{ playbook_lists() }}

),

cycle as (

    select silent_after_days from {{ ref('int_purchase_cycle_derived') }}

),

lapsed_at_send as (

    -- for campaigns without a published lifecycle stage: the last purchase before the send
    select c.campaign_id, c.member_id, max(o.occasion_date) as last_before
    from contacts as c
    inner join {{ ref('int_purchase_occasions') }} as o
        on o.member_id = c.member_id and o.occasion_date < c.sent_on
    where c.lifecycle_stage is null
    group by 1, 2

),

final as (

    select
        c.campaign_id,
        c.list_name,
        c.sent_on,
        c.contacted_on,
        c.member_id,
        c.is_control,
        c.delivered,
        c.engaged,
        c.channel,
        c.priority_group,
        c.lifecycle_stage,
        case
            when c.lifecycle_stage is not null then c.lifecycle_stage in ('silent', 'churned')
            when b.last_before is null then false
            else {{ dbt.datediff('b.last_before', 'c.sent_on', 'day') }} > cy.silent_after_days
        end as was_lapsed,
        -- the code the log names, else ours (derived as in the send file) for a coupon offer
        case
            when not c.is_control and (c.code_in_log or o.offer_type = 'coupon')
                then c.coupon_code
        end as coupon_code,
        case when c.is_control then 0 else coalesce(c.cost, case
            when c.channel is null then 0
            {%- for ch, cost in pb.cost_per_contact.items() %}
            when c.channel = '{{ ch }}' then {{ cost }}
            {%- endfor %}
            else 0
        end) end as message_cost,
        c.recorded_by
    from contacts as c
    cross join cycle as cy
    left join lapsed_at_send as b on c.campaign_id = b.campaign_id and c.member_id = b.member_id
    left join offers as o on c.list_name = o.list_name

)

select * from final
