{# Score 1-5 from the percent rank of `expr` (higher expr = higher score).
   Equal values share a score: deterministic, independent of row order. #}
{% macro quintile_score(expr) -%}
    least(5, 1 + cast(floor(5 * percent_rank() over (order by {{ expr }})) as integer))
{%- endmacro %}
