{# The backtest's customer sample (int_backtest_sample_derived): a member is in it when
   the hash of its id falls below the sample's bucket limit, out of backtest_buckets().
   The one definition: the sample's limit and every backtest table use it. #}
{% macro backtest_buckets() -%}
    1000000
{%- endmacro %}

{% macro in_backtest_sample(member_id) -%}
    hash({{ member_id }}) % {{ backtest_buckets() }}
        < (select bucket_limit from {{ ref('int_backtest_sample_derived') }})
{%- endmacro %}
