{{ config(meta={"dagster": {"ref": {"name": "campaign_targets"}}}) }}
-- Blocking: a list ranked or filtered on model scores is built only when scores of this
-- as-of date exist. campaign_members joins only scores computed for it; without them
-- (model skipped for thin data) such lists are not built (campaign_exclusions says why).
{%- set pb = var('playbook') %}
select t.list_name, count(*) as rows_built_without_current_scores
from {{ ref('campaign_targets') }} as t
where t.list_name in (
    {%- for cl in pb.lists if list_needs_scores(cl) %}{{ sql_literal(cl.name) }}, {% endfor %}null
  )
  and not exists (
    select 1 from {{ ref('campaign_members') }} as m where m.model_version is not null
  )
group by t.list_name
