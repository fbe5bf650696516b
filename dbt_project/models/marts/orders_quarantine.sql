-- Order rows that were set aside, with the reason and where they came from.
-- Exact duplicate rows are not here (they are removed and counted in
-- ingest_reconciliation); a different row with an already-used order_id is.
with

base as (

    select * from {{ ref('base_shop__orders') }}

),

kept as (

    select * from {{ ref('stg_shop__orders') }}

),

invalid as (

    select source_file, source_row, order_id, member_id, invalid_reason as reason
    from base
    where invalid_reason is not null

),

superseded as (

    select
        b.source_file,
        b.source_row,
        b.order_id,
        b.member_id,
        'order_id ' || b.order_id || ' again with different contents; kept '
            || k.source_file || ' row ' || cast(k.source_row as varchar) as reason
    from base as b
    inner join kept as k on b.order_id = k.order_id
    where b.invalid_reason is null
      and (b.source_file, b.source_row) != (k.source_file, k.source_row)
      and (
          b.member_id is distinct from k.member_id
          or b.ordered_at is distinct from k.ordered_at
          or b.amount is distinct from k.amount
          or b.status is distinct from k.status
          or b.channel is distinct from k.channel
          or b.store_id is distinct from k.store_id
          or b.coupon_code is distinct from k.coupon_code
      )

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
