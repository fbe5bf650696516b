"""The raw-data checks on the real ingest assets: Data Docs, drift, no personal data.

The small fixture (plus a do-not-contact list) is landed by the real ingest assets and
validated by `VALIDATION_CHECKS` three times: a first run (the reference profile), a
run whose do-not-contact list lost its phones (blocked), and the same run accepted.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from orchestration.lib import expectations as gxv
from tests.conftest import point_env_at

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small"
AS_OF = "2024-06-30"
SUPPRESSION = [
    ("M03", "", "", "complaint"),
    ("", "13900000031", "", "asked by phone"),
    ("", "13900000032", "stop@example.com", "asked"),
    ("M05", "13900000033", "", "asked"),
]
pytestmark = pytest.mark.integration


def _land_suppression(landing: Path, rows: list[tuple[str, ...]]) -> None:
    with (landing / "suppression.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("member_id", "phone", "email", "reason"), *rows])


def _personal_values(landing: Path) -> list[str]:
    """Member ids, names, phones and emails of the landed files (what must not leak)."""
    values: set[str] = set()
    for name, columns in (
        ("members.csv", ("member_id", "name", "phone", "email")),
        ("orders.csv", ("member_id",)),
        ("suppression.csv", ("member_id", "phone", "email")),
    ):
        with (landing / name).open(encoding="utf-8") as fh:
            values |= {row[c] for row in csv.DictReader(fh) for c in columns if row.get(c)}
    return sorted(values)


def _found(values: list[str], text: str) -> list[str]:
    return [v for v in values if re.search(rf"(?<![\w@.+]){re.escape(v)}(?![\w@])", text)]


def _materialize(accept: bool = False) -> dg.ExecuteInProcessResult:
    from orchestration.defs import ingest
    from orchestration.defs.resources import PipelineSettings
    from orchestration.defs.validation import VALIDATION_CHECKS

    return dg.materialize(
        [ingest.raw_orders, ingest.raw_members, ingest.raw_suppression, *VALIDATION_CHECKS],
        resources={"crm": PipelineSettings(accept_input_change=accept)},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("raw_validation")
    shutil.copytree(FIXTURE, root / "landing")
    _land_suppression(root / "landing", SUPPRESSION)
    personal = _personal_values(root / "landing")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, AS_OF)
        first = _materialize()
        _land_suppression(root / "landing", [(m, "", e, r) for m, _, e, r in SUPPRESSION])
        blocked = _materialize()
        accepted = _materialize(accept=True)
    return root, personal, first, blocked, accepted


def _evals(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_first_run_checks_the_landed_fixture(runs) -> None:
    _, _, first, *_ = runs
    assert first.success
    got = _evals(first)
    assert {n: e.passed for n, e in got.items()} == {
        "orders_values_parse": False,  # "abc" amount, "not a date"
        "orders_mostly_readable": True,
        "orders_values_in_range": False,  # -5.00, orders after the as-of date
        "orders_profile_stable": True,  # the first profile is the reference
        "members_values_parse": True,
        "members_values_in_range": False,  # M11 registered after the as-of date
        "members_profile_stable": True,
        "suppression_has_not_shrunk": True,
    }
    parse = got["orders_values_parse"].metadata
    assert "abc" in parse["examples"].value and "not a date" in parse["examples"].value


def test_data_docs_beside_the_warehouse_and_linked(runs) -> None:
    root, _, first, *_ = runs
    docs = root / "gx_docs"
    assert (docs / "index.html").is_file()
    assert {p.name for p in (docs / "profiles").iterdir()} == {
        "raw_orders.json",
        "raw_members.json",
        "raw_suppression.json",
    }
    for e in _evals(first).values():
        url = e.metadata["data_docs"].value
        assert url.startswith(f"file://{docs}/validations/raw_")
    assert not list(root.glob(".gx-*")), "the scratch database is removed"


def test_a_phoneless_do_not_contact_list_blocks_until_accepted(runs) -> None:
    root, _, _, blocked, accepted = runs
    check = _evals(blocked)["suppression_has_not_shrunk"]
    assert not check.passed and check.blocking
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert "rows with phone" in check.description
    assert not blocked.success  # the blocking check fails the step: nothing downstream runs
    ok = _evals(accepted)["suppression_has_not_shrunk"]
    assert ok.passed and ok.description.startswith("accepted by --accept-input-change")
    profile = gxv.profile_path(gxv.docs_dir(root / "warehouse.duckdb"), "suppression").read_text(
        "utf-8"
    )
    assert '"phone": 1.0' in profile  # the accepted list (no phones) is the new reference


def test_no_personal_data_in_docs_profiles_or_dagster(runs) -> None:
    root, personal, first, blocked, accepted = runs
    assert "13800000001" in personal and "wang@example.com" in personal and "M03" in personal
    for f in (root / "gx_docs").rglob("*"):
        if "static" not in f.parts and f.suffix in {".html", ".json"}:
            assert _found(personal, f.read_text(encoding="utf-8")) == [], f
    for result in (first, blocked, accepted):
        text = repr(result.get_asset_check_evaluations())
        text += "\n".join(
            str(e.message) for e in result.all_events if e.step_key == "raw_expectations"
        )
        assert _found(personal, text) == []
