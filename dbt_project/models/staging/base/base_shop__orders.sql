-- Every landed order row, typed, with the first reason it cannot be used (if any).
with

source as (

    select * from {{ source('raw', 'orders') }}

),

typed as (

    select
        {{ clean_text('order_id') }} as order_id,
        {{ normalise_member_id('member_id') }} as member_id,
        {{ parse_timestamp('ordered_at') }} as ordered_at,
        {{ parse_amount('amount') }} as amount,
        lower({{ clean_text('status') }}) as status_raw,
        lower({{ clean_text('channel') }}) as channel,
        {{ clean_text('store_id') }} as store_id,
        {{ clean_text('coupon_code') }} as coupon_code,
        ordered_at as ordered_at_text,
        amount as amount_text,
        _source_file as source_file,
        _source_row as source_row,
        _reject_reason as reject_reason
    from source

),

normalised as (

    select
        *,
        {{ normalise_status('status_raw') }} as status
    from typed

),

final as (

    select
        order_id,
        member_id,
        ordered_at,
        cast(ordered_at as date) as order_date,
        amount,
        status,
        channel,
        store_id,
        coupon_code,
        source_file,
        source_row,
        case
            when reject_reason is not null then reject_reason
            when order_id is null then 'missing order_id'
            when member_id is null then 'missing member_id'
            when ordered_at_text is null or trim(ordered_at_text) = '' then 'missing ordered_at'
            when ordered_at is null then 'unparseable ordered_at: ' || ordered_at_text
            when amount_text is null or trim(amount_text) = '' then 'missing amount'
            when amount is null then 'unparseable amount: ' || amount_text
            when amount < 0 then 'negative amount: ' || amount_text
            when ordered_at < cast('{{ var("min_order_date") }}' as timestamp)
                then 'implausible ordered_at (before {{ var("min_order_date") }}): ' || ordered_at_text
            when amount > {{ var("max_order_amount") }}
                then 'implausible amount (above {{ var("max_order_amount") }}): ' || amount_text
            when status is null then 'unknown status: ' || status_raw
        end as invalid_reason
    from normalised

)

select * from final
