-- Every landed order row, typed, with the first reason it cannot be used (if any),
-- and for a usable row the version of its order_id that is kept: the last landed
-- (file name, then row). Typed once, here (a table): staging, the quarantine and the
-- reconciliation read these columns instead of parsing the raw text again.
-- The CTEs read more than once are `not materialized`: DuckDB would otherwise copy every
-- typed row to memory (spilling at 100M orders) to read it twice.
with

source as not materialized (

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

typed_rows as not materialized (

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

),

usable as (

    select * from typed_rows where invalid_reason is null

),

repeated as (

    -- order_ids landed more than once (rare): only their rows need ranking. Counted by a
    -- hash of the cleaned id over every landed row: a set of 8-byte keys rather than of
    -- texts, and a superset of the ids repeated among usable rows. An id repeated only
    -- among unusable rows, or sharing a hash by chance, ranks one usable row: its own
    -- kept version, the same result as not ranking it.
    select hash({{ clean_text('order_id') }}) as order_key
    from source
    group by order_key
    having count(*) > 1

),

repeated_rows as (

    select
        source_file,
        source_row,
        order_id,
        {
            'member_id': member_id, 'ordered_at': ordered_at, 'amount': amount,
            'status': status, 'channel': channel, 'store_id': store_id,
            'coupon_code': coupon_code
        } as contents
    from usable
    where hash(order_id) in (select order_key from repeated)

),

versions as (

    select
        source_file,
        source_row,
        contents,
        first_value({
            'source_file': source_file, 'source_row': source_row, 'contents': contents
        }) over (
            partition by order_id order by source_file desc, source_row desc
        ) as kept
    from repeated_rows

),

final as (

    -- an order_id landed once is its own kept version
    select
        t.*,
        case when t.invalid_reason is null
            then coalesce(v.kept.source_file, t.source_file) end as kept_source_file,
        case when t.invalid_reason is null
            then coalesce(v.kept.source_row, t.source_row) end as kept_source_row,
        case when t.invalid_reason is null
            then v.kept is null
                or (t.source_file, t.source_row) = (v.kept.source_file, v.kept.source_row)
        end as is_kept_version,
        case when t.invalid_reason is null
            then v.kept is null or v.contents is not distinct from v.kept.contents
        end as same_as_kept
    from typed_rows as t
    left join versions as v
        on t.source_file = v.source_file and t.source_row = v.source_row

)

select * from final
