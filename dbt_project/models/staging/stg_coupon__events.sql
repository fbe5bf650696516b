-- The coupon system's events: every landed row, typed, with the first reason it cannot
-- be used (`invalid_reason`, listed in campaign_feedback_quarantine). A coupon is
-- linked to its campaign by `campaign_id` when the event carries it, else by the send
-- that carried its code (int_member_coupons).
with

source as (

    select * from {{ source('raw', 'coupon_events') }}

),

typed as (

    select
        {{ clean_text('coupon_code') }} as coupon_code,
        {{ normalise_member_id('member_id') }} as member_id,
        lower({{ clean_text('event') }}) as event_raw,
        {{ parse_timestamp('event_at') }} as event_at,
        {{ clean_text('campaign_id') }} as campaign_id,
        {{ clean_text('channel_code') }} as channel_code,
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('face_value') }} as face_value_text,
        {{ parse_amount('face_value') }} as face_value,
        {{ clean_text('threshold') }} as threshold_text,
        {{ parse_amount('threshold') }} as threshold,
        event_at as event_at_text,
        _source_file as source_file,
        _source_row as source_row,
        _reject_reason as reject_reason
    from source

),

final as (

    select
        coupon_code,
        member_id,
        {{ normalise_coupon_event('event_raw') }} as event,
        event_at,
        cast(event_at as date) as event_on,
        campaign_id,
        channel_code,
        order_id,
        face_value,
        threshold,
        source_file,
        source_row,
        case
            when reject_reason is not null then reject_reason
            when coupon_code is null then 'missing coupon_code'
            when member_id is null then 'missing member_id'
            when event_raw is null then 'missing event'
            when {{ normalise_coupon_event('event_raw') }} is null then 'unknown event: '
                || event_raw || ' (use issued, redeemed, expired or revoked)'
            when event_at_text is null or trim(event_at_text) = '' then 'missing event_at'
            when event_at is null then 'unparseable event_at: ' || event_at_text
            when event_at < cast('{{ var("min_order_date") }}' as timestamp)
                then 'implausible event_at (before {{ var("min_order_date") }}): ' || event_at_text
            when face_value_text is not null and face_value is null
                then 'unparseable face_value: ' || face_value_text
            when face_value < 0 then 'negative face_value: ' || face_value_text
            when threshold_text is not null and threshold is null
                then 'unparseable threshold: ' || threshold_text
        end as invalid_reason
    from typed

)

select * from final
