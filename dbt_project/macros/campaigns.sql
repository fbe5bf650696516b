{# SQL for the campaign playbook (var `playbook`, validated in Python). #}

{% macro sql_literal(value) -%}
    {%- if value is none -%}null
    {%- elif value is string -%}'{{ value | replace("'", "''") }}'
    {%- elif value is sameas true -%}true
    {%- elif value is sameas false -%}false
    {%- else -%}{{ value }}
    {%- endif -%}
{%- endmacro %}

{# One audience (a mapping of filters, ANDed; `any_of` ORs sub-audiences) as a SQL condition. #}
{% macro audience_condition(audience) -%}
    {%- set parts = [] -%}
    {%- for key, value in audience.items() -%}
        {%- if key == 'min' -%}
            {%- for col, bound in value.items() -%}{%- do parts.append(col ~ ' >= ' ~ bound) -%}{%- endfor -%}
        {%- elif key == 'max' -%}
            {%- for col, bound in value.items() -%}{%- do parts.append(col ~ ' <= ' ~ bound) -%}{%- endfor -%}
        {%- elif key == 'birthday_in_campaign_month' -%}
            {%- do parts.append(('' if value else 'not ') ~ 'coalesce(birthday_in_campaign_month, false)') -%}
        {%- elif key == 'any_of' -%}
            {%- set alts = [] -%}
            {%- for sub in value -%}{%- do alts.append('(' ~ audience_condition(sub) ~ ')') -%}{%- endfor -%}
            {%- do parts.append('(' ~ alts | join(' or ') ~ ')') -%}
        {%- else -%}
            {%- set lits = [] -%}
            {%- for v in value -%}{%- do lits.append(sql_literal(v)) -%}{%- endfor -%}
            {%- do parts.append(key ~ ' in (' ~ lits | join(', ') ~ ')') -%}
        {%- endif -%}
    {%- endfor -%}
    {{ parts | join(' and ') if parts else 'true' }}
{%- endmacro %}

{# The ranking score of a list (higher = contact first). #}
{% macro rank_expression(rank_by) -%}
    {%- set exprs = {
        'winback_value': 'p_purchase_60d * expected_order_value',
        'clv_at_risk': '(1 - p_purchase_90d) * predicted_clv_12m',
        'predicted_clv_12m': 'predicted_clv_12m',
        'p_purchase_90d': 'p_purchase_90d',
        'p_purchase_60d': 'p_purchase_60d',
        'monetary_total': 'cast(monetary_total as double)',
        'recency': '-1.0 * days_since_last_purchase',
    } -%}
    {%- if rank_by not in exprs -%}
        {{ exceptions.raise_compiler_error("unknown rank_by " ~ rank_by) }}
    {%- endif -%}
    cast({{ exprs[rank_by] }} as double)
{%- endmacro %}

{# Stable 0..1 bucket from text: md5, first 32 bits. Same inputs, same split, any engine. #}
{% macro stable_bucket(expr) -%}
    (cast(('0x' || substr(md5({{ expr }}), 1, 8)) as ubigint) / 4294967296.0)
{%- endmacro %}

{# Does a list need model scores (ranked by one, or its audience filters on one)? Without
   current scores such a list is not built (thin data, model skipped). #}
{% macro list_needs_scores(cl) -%}
    {%- set score_ranks = ['winback_value', 'clv_at_risk', 'predicted_clv_12m', 'p_purchase_90d', 'p_purchase_60d'] -%}
    {%- set score_columns = ['p_alive', 'p_purchase_60d', 'p_purchase_90d', 'expected_purchases_90d',
                             'expected_order_value', 'predicted_clv_12m', 'churn_risk', 'value_tier'] -%}
    {%- set audience = cl.audience | string -%}
    {%- set ns = namespace(needs=cl.rank_by in score_ranks) -%}
    {%- for c in score_columns -%}{%- if c in audience -%}{%- set ns.needs = true -%}{%- endif -%}{%- endfor -%}
    {{ return(ns.needs) }}
{%- endmacro %}

{# The coupon code of a campaign's send to a member: unique, deterministic, so a
   redemption traces back to the campaign (campaign_targets, int_campaign_contacts). #}
{% macro coupon_code(campaign_id, member_id) -%}
    ('C' || upper(substr(md5({{ campaign_id }} || '|' || {{ member_id }}), 1, 15)))
{%- endmacro %}

{# The campaign period of a send day (the control draw is stable within it): month or
   ISO week, per the playbook's `period`. #}
{% macro campaign_period(day) -%}
    {%- if var('playbook').period == 'week' -%}strftime({{ day }}, '%G-W%V')
    {%- else -%}strftime({{ day }}, '%Y-%m')
    {%- endif -%}
{%- endmacro %}

{# The playbook's lists as a table: offer type, validity and amount, results window
   (int_campaign_contacts, int_member_coupons, campaign_results). #}
{% macro playbook_lists() -%}
    {%- set lists = var('playbook').lists -%}
    (
        select
            cast(list_name as varchar) as list_name,
            cast(offer_type as varchar) as offer_type,
            cast(validity_days as integer) as validity_days,
            cast(amount as double) as amount,
            cast(window_days as integer) as window_days
        from (values
            {%- for cl in lists %}
            {%- set offer = cl.get('offer') or {} %}
            ({{ sql_literal(cl.name) }}, {{ sql_literal(offer.get('type')) }},
             {{ offer.get('validity_days', 'null') }}, {{ offer.get('amount', 'null') }},
             {{ cl.get('results_window_days', 30) }}){{ "," if not loop.last }}
            {%- endfor %}
            {%- if lists | length == 0 %}(null, null, null, null, 30){%- endif %}
        ) as t(list_name, offer_type, validity_days, amount, window_days)
    )
{%- endmacro %}

{# The list a campaign id names (`win_back-20240701` -> win_back); null otherwise. #}
{% macro list_of_campaign(campaign_id) -%}
    regexp_extract({{ campaign_id }}, '^(.*)-[0-9]{8}$', 1)
{%- endmacro %}

{# How many days before the as-of date the campaign rules and readouts look back: the
   longest of the cool-down, the contact-cap window, the coupon rules (a coupon held
   for its longest validity, then after_redemption_days) and the results windows. A
   campaign sent earlier is past all of them: its results are final. #}
{% macro contact_lookback_days() -%}
    {%- set pb = var('playbook') -%}
    {%- set cr = pb.coupon_rules -%}
    {%- set validity = [cr.default_validity_days] -%}
    {%- set windows = [30] -%}
    {%- for cl in pb.lists -%}
        {%- do validity.append((cl.get('offer') or {}).get('validity_days') or 0) -%}
        {%- do windows.append(cl.get('results_window_days', 30)) -%}
    {%- endfor -%}
    {{ return([pb.cooldown_days, pb.contact_cap.days, cr.same_offer_days,
               cr.after_redemption_days + validity | max, windows | max] | max) }}
{%- endmacro %}

{# campaign_results as this run finds it, when its final readouts may be kept: none when
   campaign_results is built from scratch (its first build, dbt's --full-refresh, the
   var rebuild_campaign_results from `crm run --rebuild-results`) or was written before
   computed_as_of existed (then every campaign is read and all rows are replaced). #}
{% macro contact_results() -%}
    {%- if not execute or flags.FULL_REFRESH or var('rebuild_campaign_results', false) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set results = contact_results_relation() -%}
    {%- if results is none -%}{{ return(none) }}{%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(results) | map(attribute='name') | list -%}
    {{ return(results if 'computed_as_of' in columns else none) }}
{%- endmacro %}

{# campaign_results as the warehouse holds it before this run rebuilds it (none when it
   does not exist yet); read without ref(): it is built from these models. #}
{% macro contact_results_relation() -%}
    {%- set node = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'campaign_results') | first -%}
    {{ return(adapter.get_relation(
        database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}

{# campaign_results' pre-hook: delete the rows this run writes again - the campaigns
   int_campaign_contacts read (see there) and any sent after the as-of date (a re-run of
   an earlier day) - and keep the final readouts of the others; all rows when they
   cannot be kept (contact_results() is none). Nothing on a build from scratch. #}
{% macro keep_final_campaign_results() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        {%- if contact_results() is not none %}
        where campaign_id in (select campaign_id from {{ ref('int_campaign_contacts') }})
           or sent_on > {{ as_of_date() }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}
