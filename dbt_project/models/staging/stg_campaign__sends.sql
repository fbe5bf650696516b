-- The send platform's log: every landed row, typed, with the first reason it cannot be
-- used (`invalid_reason`, listed in campaign_feedback_quarantine). Several rows for one
-- campaign and member (status updates: sent, delivered, opened) are kept here and
-- combined in int_campaign_contacts. Control rows (is_control true) record members
-- held out of the campaign; a missing is_control means the row is a send.
with

source as (

    select * from {{ source('raw', 'campaign_sends') }}

),

typed as (

    select
        {{ clean_text('campaign_id') }} as campaign_id,
        {{ normalise_member_id('member_id') }} as member_id,
        lower({{ clean_text('channel') }}) as channel_raw,
        {{ parse_timestamp('sent_at') }} as sent_at,
        lower({{ clean_text('status') }}) as status_raw,
        {{ clean_text('is_control') }} as is_control_text,
        {{ parse_bool('is_control') }} as is_control_parsed,
        {{ clean_text('coupon_code') }} as coupon_code,
        lower({{ clean_text('list_name') }}) as list_name,
        {{ clean_text('priority_group') }} as priority_group_text,
        try_cast({{ clean_text('priority_group') }} as integer) as priority_group,
        {{ clean_text('cost') }} as cost_text,
        {{ parse_amount('cost') }} as cost,
        sent_at as sent_at_text,
        _source_file as source_file,
        _source_row as source_row,
        _reject_reason as reject_reason
    from source

),

normalised as (

    select
        *,
        {{ normalise_channel('channel_raw') }} as channel,
        {{ normalise_send_status('status_raw') }} as status,
        coalesce(is_control_parsed, false) as is_control
    from typed

),

final as (

    select
        campaign_id,
        member_id,
        channel,
        sent_at,
        cast(sent_at as date) as sent_on,
        case when is_control then null else status end as status,
        is_control,
        coupon_code,
        list_name,
        priority_group,
        cost,
        source_file,
        source_row,
        case
            when reject_reason is not null then reject_reason
            when campaign_id is null then 'missing campaign_id'
            when member_id is null then 'missing member_id'
            when channel_raw is null then 'missing channel'
            when channel is null then 'unknown channel: ' || channel_raw
                || ' (use sms, email or push)'
            when sent_at_text is null or trim(sent_at_text) = '' then 'missing sent_at'
            when sent_at is null then 'unparseable sent_at: ' || sent_at_text
            when sent_at < cast('{{ var("min_order_date") }}' as timestamp)
                then 'implausible sent_at (before {{ var("min_order_date") }}): ' || sent_at_text
            when status is null and not is_control then 'unknown status: ' || status_raw
                || ' (use sent, delivered, failed, bounced, opened or clicked)'
            when is_control_text is not null and is_control_parsed is null
                then 'unreadable is_control: ' || is_control_text || ' (use true or false)'
            when priority_group_text is not null and (priority_group is null or priority_group < 1)
                then 'unreadable priority_group: ' || priority_group_text
                    || ' (a whole number from 1)'
            when cost_text is not null and cost is null then 'unparseable cost: ' || cost_text
            when cost < 0 then 'negative cost: ' || cost_text
        end as invalid_reason
    from normalised

)

select * from final
