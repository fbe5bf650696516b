{# Score 1-5 from the percent rank of a value (higher value = higher score):
   1 + floor(5 x percent_rank), at most 5, where percent_rank is the share of the
   other rows with a smaller value, (rank - 1) / (rows - 1), as percent_rank()
   computes it. Equal values share a score: deterministic, independent of row order.

   quintile_ranks(relation, expr) is a CTE body: one row per distinct value `v` of
   `expr` with the number of rows below it (`below`) and all rows (`total`). Counting
   the distinct values instead of ranking every row (a window sorted by the value)
   keeps the sort to the distinct values; quintile_score(ranks) turns a joined row
   into the score. #}
{% macro quintile_ranks(relation, expr) -%}
    select
        v,
        cast(sum(n) over (order by v nulls last) - n as double) as below,
        cast(sum(n) over () as double) as total
    from (select {{ expr }} as v, count(*) as n from {{ relation }} group by 1)
{%- endmacro %}

{% macro quintile_score(ranks) -%}
    least(5, 1 + cast(floor(
        5 * case when {{ ranks }}.total > 1 then {{ ranks }}.below / ({{ ranks }}.total - 1) else 0 end
    ) as integer))
{%- endmacro %}
