-- Usable members: one row per member_id. Rows that disagree are merged:
-- consent is the conservative value (any explicit "false" wins, unknown stays
-- unknown), registered_at the earliest, other attributes the last landed row.
with

valid as (

    select * from {{ ref('base_shop__members') }}
    where invalid_reason is null

),

final as (

    select
        member_id,
        min(registered_at) as registered_at,
        arg_max(name, source_file || lpad(cast(source_row as varchar), 12, '0')) as name,
        arg_max(gender, source_file || lpad(cast(source_row as varchar), 12, '0')) as gender,
        arg_max(birthday, source_file || lpad(cast(source_row as varchar), 12, '0')) as birthday,
        arg_max(city, source_file || lpad(cast(source_row as varchar), 12, '0')) as city,
        arg_max(phone, source_file || lpad(cast(source_row as varchar), 12, '0')) as phone,
        arg_max(email, source_file || lpad(cast(source_row as varchar), 12, '0')) as email,
        arg_max(acquisition_channel, source_file || lpad(cast(source_row as varchar), 12, '0')) as acquisition_channel,
        arg_max(acquisition_cost, source_file || lpad(cast(source_row as varchar), 12, '0')) as acquisition_cost,
        bool_and(marketing_consent) as marketing_consent,
        count(*) as source_rows
    from valid
    group by member_id

)

select * from final
