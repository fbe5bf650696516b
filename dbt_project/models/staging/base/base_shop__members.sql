-- Every landed member row, typed, with the first reason it cannot be used (if any).
with

source as (

    select * from {{ source('raw', 'members') }}

),

final as (

    select
        {{ normalise_member_id('member_id') }} as member_id,
        cast({{ parse_timestamp('registered_at') }} as date) as registered_at,
        {{ clean_text('name') }} as name,
        case
            when lower({{ clean_text('gender') }}) in ('f', 'female', 'w', '女') then 'F'
            when lower({{ clean_text('gender') }}) in ('m', 'male', '男') then 'M'
        end as gender,
        cast({{ parse_timestamp('birthday') }} as date) as birthday,
        {{ clean_text('city') }} as city,
        {{ normalise_phone('phone') }} as phone,
        {{ normalise_email('email') }} as email,
        {{ is_invalid_phone('phone') }} as phone_is_invalid,
        {{ is_invalid_email('email') }} as email_is_invalid,
        lower({{ clean_text('acquisition_channel') }}) as acquisition_channel,
        {{ parse_amount('acquisition_cost') }} as acquisition_cost,
        {{ parse_bool('marketing_consent') }} as marketing_consent,
        _source_file as source_file,
        _source_row as source_row,
        case
            when _reject_reason is not null then _reject_reason
            when {{ normalise_member_id('member_id') }} is null then 'missing member_id'
            when {{ clean_text('registered_at') }} is null then 'missing registered_at'
            when {{ parse_timestamp('registered_at') }} is null
                then 'unparseable registered_at: ' || registered_at
            when {{ parse_timestamp('registered_at') }} < cast('{{ var("min_order_date") }}' as timestamp)
                then 'implausible registered_at (before {{ var("min_order_date") }}): ' || registered_at
        end as invalid_reason
    from source

)

select * from final
