-- The portal's "mark as sent" records, typed: the list (its export day and name), the
-- day it went out, the channel (empty = every channel of the list) and the send
-- platform's campaign id. `revoked` marks are withdrawn; `invalid_reason` says why a
-- mark cannot be used (the portal validates its form, so this is a safety net).
with

source as (

    select * from {{ source('raw', 'sent_marks') }}

),

typed as (

    select
        try_cast(id as bigint) as mark_id,
        try_cast({{ clean_text('as_of') }} as date) as as_of_date,
        lower({{ clean_text('list_name') }}) as list_name,
        {{ clean_text('campaign_id') }} as campaign_id,
        try_cast({{ clean_text('sent_on') }} as date) as sent_on,
        lower({{ clean_text('channel') }}) as channel_raw,
        {{ clean_text('platform_campaign_id') }} as platform_campaign_id,
        {{ clean_text('marked_by') }} as marked_by,
        coalesce(try_cast(revoked as integer), 0) <> 0 as revoked,
        as_of as as_of_text,
        sent_on as sent_on_text
    from source

)

select
    mark_id,
    as_of_date,
    list_name,
    campaign_id,
    sent_on,
    {{ normalise_channel('channel_raw') }} as channel,
    platform_campaign_id,
    marked_by,
    revoked,
    case
        when as_of_date is null then 'unreadable as_of: ' || coalesce(as_of_text, '')
        when list_name is null then 'missing list_name'
        when sent_on is null then 'unreadable sent_on: ' || coalesce(sent_on_text, '')
        when sent_on < as_of_date then 'sent before the list was made'
        when channel_raw is not null and {{ normalise_channel('channel_raw') }} is null
            then 'unknown channel: ' || channel_raw
    end as invalid_reason
from typed
