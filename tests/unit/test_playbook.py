# ruff: noqa: E501  (one rule per line reads better than wrapped)
"""The campaign playbook: every rule, and messages that name the file, list and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from orchestration.errors import CrmError
from orchestration.lib.playbook import load_playbook

ROOT = Path(__file__).parents[2]
SHIPPED = yaml.safe_load((ROOT / "campaigns.yml").read_text(encoding="utf-8"))


def _load(tmp_path: Path, change=None):
    raw = copy.deepcopy(SHIPPED)
    if change:
        change(raw)
    path = tmp_path / "campaigns.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return load_playbook(path)


def _first(raw):
    return raw["lists"][0]


def test_the_shipped_playbook_loads_in_priority_order(tmp_path: Path) -> None:
    pb = _load(tmp_path)
    assert [cl.name for cl in pb.lists] == [
        "win_back", "retention", "activation", "upsell_referral", "birthday_care",
    ]  # fmt: skip
    var = pb.to_dbt_var()
    assert var["cost_per_contact"] == {"sms": 0.05, "email": 0.01, "push": 0.0}
    assert var["lists"][0]["budget"] == 250.0 and var["lists"][0]["max_contacts"] is None
    assert var["lists"][0]["control_share"] == 0.10  # from the defaults
    assert json.loads(json.dumps(var)) == var  # JSON-able, as dbt --vars needs


def test_an_empty_defaults_entry_means_the_default(tmp_path: Path) -> None:
    def empty(raw):
        raw["defaults"].update(contact_cap=None, cost_per_contact=None)
        for cl in raw["lists"]:
            cl["cap"] = {"max_contacts": 10}  # budgets need costs

    pb = _load(tmp_path, empty)
    assert pb.contact_cap == {"max_contacts": 0, "days": 30}
    assert pb.cost_per_contact == {"sms": 0.0, "email": 0.0, "push": 0.0}


def test_lists_are_sorted_by_priority(tmp_path: Path) -> None:
    def swap(raw):
        raw["lists"][0]["priority"], raw["lists"][1]["priority"] = 2, 1

    assert [cl.name for cl in _load(tmp_path, swap).lists][:2] == ["retention", "win_back"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: _first(r).update(goal="upsell"), r"list win_back\.goal: Input should be"),
        (lambda r: _first(r).update(rank_by="clv"), r"list win_back\.rank_by: Input should be"),
        (lambda r: _first(r).update(name="Win Back"), r"list Win Back\.name: String should match"),
        (lambda r: _first(r).update(priority=0), r"list win_back\.priority: .*greater than or equal to 1"),
        (lambda r: _first(r).update(cap={}), r"list win_back\.cap: give \{max_contacts: N\}"),
        (lambda r: _first(r).update(cap={"max_contacts": 0}), r"list win_back\.cap\.max_contacts"),
        (lambda r: _first(r)["offer"].update(type="cash"), r"list win_back\.offer\.type"),
        (lambda r: _first(r)["offer"].update(validity_days=0), r"list win_back\.offer\.validity_days"),
        (lambda r: _first(r)["offer"].update(amount=-5), r"list win_back\.offer\.amount"),
        (lambda r: _first(r).update(channels=["fax"]), r"list win_back\.channels\.0"),
        (lambda r: _first(r).update(channels=[]), r"list win_back\.channels: .*at least 1"),
        (lambda r: _first(r).update(channels=["sms", "sms"]), r"each channel at most once"),
        (lambda r: _first(r).update(control_share=0.5), r"list win_back\.control_share: .*less than 0\.5"),
        (lambda r: _first(r).update(colour="red"), r"list win_back\.colour: Extra inputs"),
        (lambda r: _first(r).pop("offer"), r"list win_back\.offer: Field required"),
        (lambda r: _first(r).update(audience={}), r"list win_back\.audience: audience must be a mapping"),
        (lambda r: _first(r).update(audience={"lifecycle_stage": ["asleep"]}), r"lifecycle_stage: unknown value\(s\) \['asleep'\]"),
        (lambda r: _first(r).update(audience={"rf_cell": ["lost_fan", "x_y"]}), r"rf_cell: unknown value\(s\) \['x_y'\]"),
        (lambda r: _first(r).update(audience={"min": {"shoe_size": 3}}), r"min\.shoe_size: unknown column"),
        (lambda r: _first(r).update(audience={"max": {"frequency": "many"}}), r"max\.frequency: 'many' is not a number"),
        (lambda r: _first(r).update(audience={"birthday_in_campaign_month": "yes"}), r"birthday_in_campaign_month: must be true or false"),
        (lambda r: _first(r).update(audience={"any_of": [{"any_of": []}]}), r"any_of: unknown filter"),
        (lambda r: _first(r).update(audience={"star_sign": ["leo"]}), r"star_sign: unknown filter"),
        (lambda r: r["lists"][1].update(name="win_back"), r"list names must be unique"),
        (lambda r: r["lists"][1].update(priority=1), r"priorities must be unique"),
        (lambda r: r["defaults"].update(consent="maybe"), r"defaults\.consent: Input should be 'explicit' or 'opt_out'"),
        (lambda r: r["defaults"].update(period="day"), r"defaults\.period"),
        (lambda r: r["defaults"].update(control_share=0.9), r"defaults\.control_share"),
        (lambda r: r["defaults"]["contact_cap"].update(days=0), r"defaults\.contact_cap\.days"),
        (lambda r: r["defaults"]["cost_per_contact"].update(sms=-1), r"costs must not be negative"),
        (lambda r: r["defaults"]["cost_per_contact"].update(fax=1), r"defaults\.cost_per_contact\.fax"),
        (lambda r: r["defaults"].update(cost_per_contact={}), r"list win_back\.cap\.budget: its channels cost nothing"),
        (lambda r: r.update(lists=[]), r"lists: .*at least 1"),
        (lambda r: _first(r).update(priority=True), r"list win_back\.priority: Input should be a valid integer"),
        (lambda r: _first(r)["offer"].update(amount="10"), r"list win_back\.offer\.amount: Input should be a valid number"),
    ],
)  # fmt: skip
def test_each_rule_names_file_list_and_field(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(CrmError, match=r"^campaigns\.yml: .*" + message):
        _load(tmp_path, change)


def test_unreadable_or_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="campaign playbook .* not found; set CRM_PLAYBOOK"):
        load_playbook(tmp_path / "nope.yml")
    bad = tmp_path / "campaigns.yml"
    bad.write_text("lists: [\n", encoding="utf-8")
    with pytest.raises(CrmError, match=r"campaigns\.yml: not valid YAML"):
        load_playbook(bad)
    bad.write_text("defaults: {}\n", encoding="utf-8")
    with pytest.raises(
        CrmError, match=r"campaigns\.yml: top level: expected 'defaults' and 'lists'"
    ):
        load_playbook(bad)
