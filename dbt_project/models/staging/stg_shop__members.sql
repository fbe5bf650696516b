-- Usable members: one row per member_id. Rows that disagree are merged:
-- consent is the conservative value (any explicit "false" wins, unknown stays
-- unknown), registered_at the earliest, other attributes the last landed value
-- (file name, then row; an empty value does not replace an earlier one).
-- A member landed once (nearly all) is its own row; only the others are merged
-- (merging every member holds nine values per member in memory at once).
-- CTEs read more than once are `not materialized`: DuckDB would otherwise copy them
-- whole to read them again (re-reading the table is cheaper).
with

base as not materialized (

    select * from {{ ref('base_shop__members') }}

),

files as (

    -- the landed files in name order (a handful): numbering them orders every row
    select source_file, row_number() over (order by source_file) as file_number
    from (select distinct source_file from base)

),

valid as not materialized (

    select
        base.*,
        -- the order rows landed in (file name, then row): what "the last landed" means
        (files.file_number << 40) + base.source_row as landed_order
    from base
    inner join files on base.source_file = files.source_file
    where base.invalid_reason is null

),

repeated as (

    select member_id from valid group by member_id having count(*) > 1

),

merged as (

    select
        member_id,
        min(registered_at) as registered_at,
        arg_max(name, landed_order) as name,
        arg_max(gender, landed_order) as gender,
        arg_max(birthday, landed_order) as birthday,
        arg_max(city, landed_order) as city,
        arg_max(phone, landed_order) as phone,
        arg_max(email, landed_order) as email,
        arg_max(acquisition_channel, landed_order) as acquisition_channel,
        arg_max(acquisition_cost, landed_order) as acquisition_cost,
        bool_and(marketing_consent) as marketing_consent,
        count(*) as source_rows
    from valid
    where exists (select 1 from repeated as r where r.member_id = valid.member_id)
    group by member_id

),

single as (

    select
        member_id,
        registered_at,
        name,
        gender,
        birthday,
        city,
        phone,
        email,
        acquisition_channel,
        acquisition_cost,
        marketing_consent,
        cast(1 as bigint) as source_rows
    from valid
    where not exists (select 1 from repeated as r where r.member_id = valid.member_id)

),

final as (

    select * from single
    union all
    select * from merged

)

select * from final
