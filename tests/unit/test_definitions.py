"""Snapshot of the asset graph: drift in keys, groups or checks shows up here."""

from __future__ import annotations

import dagster as dg

from orchestration.definitions import defs

EXPECTED_ASSETS = {
    "ingest": {"raw_orders", "raw_members"},
    "transform": {
        "base_shop__orders",
        "base_shop__members",
        "stg_shop__orders",
        "stg_shop__members",
        "int_purchase_occasions",
        "int_purchase_cycle_derived",
        "int_customers_summarised",
        "int_members_unioned",
        "rfm_segment_rules",
        "customer_features",
        "customer_rfm",
        "customer_lifecycle",
        "orders_quarantine",
        "members_quarantine",
        "ingest_reconciliation",
    },
}


def _graph():
    return defs.resolve_asset_graph()


def test_asset_keys_and_groups() -> None:
    graph = _graph()
    by_group: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        by_group.setdefault(node.group_name, set()).add(key.to_user_string())
    for group, names in EXPECTED_ASSETS.items():
        assert names <= by_group.get(group, set()), group


def test_every_asset_has_a_description_and_kinds() -> None:
    graph = _graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            # external tables only referenced as dbt sources (campaigns.contact_history,
            # written by campaign_exports) carry no definition of their own
            continue
        assert node.description, key
        assert node.kinds, key


def test_dbt_tests_are_asset_checks_and_freshness_warns() -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in _graph().asset_check_keys}
    assert ("customer_rfm", "unique_customer_rfm_member_id") in checks
    assert ("stg_shop__orders", "orders_are_fresh") in checks
    # row conservation is a dbt test on ingest_reconciliation.balanced (values: [true])
    assert (
        "ingest_reconciliation",
        "accepted_values_ingest_reconciliation_balanced__False__True",
    ) in checks


def test_safety_checks_are_real_asset_checks() -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in _graph().asset_check_keys}
    for name in (
        "campaign_sends_have_consent_and_are_not_suppressed",
        "campaign_control_share_within_tolerance",
        "campaign_lists_not_unexpectedly_empty",
        "campaign_scores_are_current",
    ):
        assert ("campaign_targets", name) in checks
    assert ("campaign_exports", "send_files_respect_do_not_contact") in checks
    assert ("stg_shop__suppression", "suppression_identifiers_are_usable") in checks


def test_schedule_and_sensor() -> None:
    schedule = defs.resolve_schedule_def("nightly")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
    sensor = defs.resolve_sensor_def("new_landing_files")
    assert sensor.job_name == "crm_job"
    assert isinstance(defs.resolve_job_def("crm_job"), dg.JobDefinition)
