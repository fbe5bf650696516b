-- Member rows that were set aside, with the reason and where they came from.
select
    source_file || ':' || cast(source_row as varchar) as row_key,
    source_file,
    source_row,
    member_id,
    invalid_reason as reason
from {{ ref('base_shop__members') }}
where invalid_reason is not null
