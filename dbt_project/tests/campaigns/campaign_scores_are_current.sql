-- Blocking: campaign lists are ranked on scores of this as-of date. campaign_members
-- only joins scores computed for it; if none were published (model gated or
-- skipped), the lists are not built on stale ones.
select
    count(*) filter (where lifecycle_stage != 'prospect') as customers,
    count(*) filter (where model_version is not null) as customers_with_current_scores
from {{ ref('campaign_members') }}
having count(*) filter (where lifecycle_stage != 'prospect') > 0
   and count(*) filter (where model_version is not null) = 0
