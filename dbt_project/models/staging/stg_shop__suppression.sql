-- The do-not-contact list: one row per landed entry, identifiers normalised by the
-- same macros as the members' (macros/identifiers.sql), so matching is plain equality.
-- An entry none of whose identifiers can be used stays here with `invalid_reason`
-- (counted by a WARN test) instead of silently suppressing nobody.
with

source as (

    select * from {{ source('raw', 'suppression') }}

),

final as (

    select
        _source_file as source_file,
        _source_row as source_row,
        {{ normalise_member_id('member_id') }} as member_id,
        {{ member_key('member_id') }} as member_key,
        {{ normalise_phone('phone') }} as phone,
        {{ normalise_email('email') }} as email,
        {{ clean_text('reason') }} as reason,
        {{ is_invalid_phone('phone') }} as phone_is_invalid,
        {{ is_invalid_email('email') }} as email_is_invalid,
        case
            when _reject_reason is not null then _reject_reason
            when {{ normalise_member_id('member_id') }} is null
                and {{ normalise_phone('phone') }} is null
                and {{ normalise_email('email') }} is null
                then case
                    when coalesce({{ clean_text('phone') }}, {{ clean_text('email') }}) is null
                        then 'no identifier'
                    else 'no usable identifier (phone not a number in any accepted form, '
                        || 'or email not an address)'
                end
        end as invalid_reason
    from source

)

select * from final
