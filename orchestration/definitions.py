"""The Dagster definitions: load with `dagster dev -m orchestration.definitions` or `crm ui`."""

from __future__ import annotations

import dagster as dg

from orchestration.defs import campaigns, checks, ingest, model, transform, validation
from orchestration.defs.automation import build_schedule, crm_job, new_landing_files
from orchestration.defs.resources import make_resources

defs = dg.Definitions(
    assets=[
        ingest.raw_orders,
        ingest.raw_members,
        ingest.raw_suppression,
        ingest.raw_campaign_sends,
        ingest.raw_coupon_events,
        ingest.raw_sent_marks,
        transform.crm_dbt_models,
        model.clv_model,
        model.customer_scores,
        transform.crm_dbt_campaigns,
        *campaigns.build_campaign_assets(),
    ],
    asset_checks=[checks.orders_are_fresh, *validation.VALIDATION_CHECKS],
    jobs=[crm_job],
    schedules=[build_schedule()],
    sensors=[new_landing_files],
    resources=make_resources(),
    executor=dg.in_process_executor,
)
