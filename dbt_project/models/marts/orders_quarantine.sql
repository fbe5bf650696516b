-- Order rows that were set aside, with the reason and where they came from.
-- Exact duplicate rows are not here (they are removed and counted in
-- ingest_reconciliation); a different row with an already-used order_id is.
with

base as (

    select * from {{ ref('base_shop__orders') }}

),

invalid as (

    select source_file, source_row, order_id, member_id, invalid_reason as reason
    from base
    where invalid_reason is not null

),

superseded as (

    select
        source_file,
        source_row,
        order_id,
        member_id,
        'order_id ' || order_id || ' again with different contents; kept '
            || kept_source_file || ' row ' || cast(kept_source_row as varchar) as reason
    from base
    where invalid_reason is null and not is_kept_version and not same_as_kept

),

final as (

    select * from invalid
    union all
    select * from superseded

)

select
    source_file || ':' || cast(source_row as varchar) as row_key,
    *
from final
