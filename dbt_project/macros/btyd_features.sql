{#
  The buy-till-you-die model inputs per customer, observed up to `end_date` (a SQL date
  expression), with exactly lifetimes' definitions (summary_data_from_transaction_data,
  freq='D'), from purchase occasions (one row per member and day with an amount):
    frequency       repeat purchase occasions (occasions - 1)
    recency         days from the first to the last occasion
    T               days from the first occasion to end_date
    monetary_value  mean value of the repeat occasions (0 when there are none)
  plus first/last purchase dates. The one definition of the features: the published
  features (end = as-of date) and the backtest's calibration (end = each cut-off) use it.
  With `by` (a column of `occasions`, e.g. cutoff_date), one row per member and value
  of `by`, and `end_date` may be that column.
#}
{% macro btyd_features(occasions, end_date, by=none) %}
    {%- set key = (by ~ ', ') if by else '' %}
    select
        {{ key }}member_id,
        cast(count(*) - 1 as integer) as frequency,
        cast({{ dbt.datediff('min(occasion_date)', 'max(occasion_date)', 'day') }} as integer)
            as recency,
        cast({{ dbt.datediff('min(occasion_date)', end_date, 'day') }} as integer) as "T",
        -- the repeat occasions' amounts: all but the first occasion's (one occasion per
        -- member and day, so the first is unique; exact in decimals, and no window
        -- sorted over every occasion)
        cast(coalesce(
            (sum(occasion_amount) - arg_min(occasion_amount, occasion_date))
                / nullif(count(*) - 1, 0),
            0
        ) as double) as monetary_value,
        min(occasion_date) as first_purchase_date,
        max(occasion_date) as last_purchase_date
    from {{ occasions }}
    where occasion_date <= {{ end_date }}
    group by {{ key }}member_id
{% endmacro %}
