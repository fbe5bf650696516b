{# The run's as-of date as a SQL date literal. #}
{% macro as_of_date() -%}
    {%- set d = var('as_of_date', none) -%}
    {%- if d is none or d == '' -%}
        {#- a bare `dbt build`: yesterday in the business time zone, as the pipeline does -#}
        (cast(timezone('{{ var("timezone") }}', now()) as date) - 1)
    {%- else -%}
        cast('{{ d }}' as date)
    {%- endif -%}
{%- endmacro %}

{# An integer var that may be null (=derive from data): returns the var or the fallback SQL. #}
{% macro var_or(name, fallback_sql) -%}
    {%- set v = var(name, none) -%}
    {%- if v is none or v == '' -%}({{ fallback_sql }}){%- else -%}{{ v }}{%- endif -%}
{%- endmacro %}
