-- The do-not-contact list: one row per landed entry, identifiers normalised the
-- same way as members' (phone digits, lower-case email).
with

source as (

    select * from {{ source('raw', 'suppression') }}

),

final as (

    select distinct
        {{ clean_text('member_id') }} as member_id,
        nullif(regexp_replace(coalesce(phone, ''), '[^0-9+]', '', 'g'), '') as phone,
        lower({{ clean_text('email') }}) as email,
        {{ clean_text('reason') }} as reason
    from source
    where coalesce({{ clean_text('member_id') }}, {{ clean_text('phone') }}, {{ clean_text('email') }}) is not null

)

select * from final
