"""The Dagster definitions: load with `dagster dev -m orchestration.definitions` or `crm ui`."""

from __future__ import annotations

import dagster as dg

from orchestration.defs import checks, ingest, model, transform
from orchestration.defs.automation import build_schedule, crm_job, new_landing_files
from orchestration.defs.resources import make_resources
from orchestration.settings import load_settings

load_settings().export_env()

defs = dg.Definitions(
    assets=[
        ingest.raw_orders,
        ingest.raw_members,
        transform.crm_dbt_models,
        model.clv_model,
        model.customer_scores,
    ],
    asset_checks=[checks.orders_are_fresh],
    jobs=[crm_job],
    schedules=[build_schedule()],
    sensors=[new_landing_files],
    resources=make_resources(),
    executor=dg.in_process_executor,
)
