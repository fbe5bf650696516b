-- Usable orders: one row per order_id. Exact duplicate rows are removed; when
-- the same order_id arrives with different contents the last landed version
-- (file name, then row) wins and the others go to orders_quarantine
-- (base_shop__orders marks the kept version). A view: a filter of that table, applied
-- where it is read (writing its rows again costs more than filtering them).
{{ config(materialized="view") }}
select
    order_id,
    member_id,
    ordered_at,
    order_date,
    amount,
    status,
    status = 'paid' as is_purchase,
    channel,
    store_id,
    coupon_code,
    source_file,
    source_row
from {{ ref('base_shop__orders') }}
where invalid_reason is null and is_kept_version
