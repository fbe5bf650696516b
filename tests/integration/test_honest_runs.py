"""Honest runs on a small clean shop with hostile rows mixed in (through the real graph).

The shop is the one that used to fail at random (4,000 members, seed 21, as of
2026-06-30: its retention list's control share is 17.7% of 147, a 1-in-300 draw that
the old 3-sigma test refused). Mixed into its orders.csv: a paid order dated 0001-01-01,
an amount of 9999999999999999.99, a barcode as amount, a stray quote that swallows the
rows after it, and a final row cut short. Into members.csv: a name with a quoted line
break. The run must succeed, quarantine each bad row with its reason and line, account
for every record of the files, and keep the model's figures sane.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import generate_demo_data
from tests.conftest import point_env_at

pytestmark = pytest.mark.integration
AS_OF = "2026-06-30"
BAD_ROWS = [
    "BAD_DATE,M0000003,0001-01-01,120.00,paid,tmall,,",
    "BAD_HUGE,M0000003,2026-05-01,9999999999999999.99,paid,tmall,,",
    "BAD_CODE,M0000012,2026-05-02,6901234567892,paid,tmall,,",
]
AFTER_QUOTE = [f"LOST{i},M0000012,2026-05-0{i},10.00,paid,tmall,," for i in range(1, 4)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("honest")
    landing = root / "landing"
    generate_demo_data(landing, members=4000, seed=21, end=date(2026, 6, 30))
    orders = landing / "orders.csv"
    text = orders.read_text(encoding="utf-8")
    records = text.count("\n") - 1
    text += "\n".join(BAD_ROWS) + "\n"
    text += 'QUOTE,M0000012,2026-05-03,10.00,paid,tmall,,"SAVE10\n'  # never closed
    text += "\n".join(AFTER_QUOTE) + "\n"
    text += "CUT,M0000012,2026-05-04,301"  # cut mid-transfer, no newline
    orders.write_text(text, encoding="utf-8")
    with (landing / "members.csv").open("a", encoding="utf-8") as fh:
        fh.write('MLINE,2024-01-01,"Li\nMing",F,1990-01-01,上海,,,jd,1.00,true\n')
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, as_of=AS_OF)
        from orchestration.runner import run_pipeline

        outcome = run_pipeline()
    assert outcome.success, outcome.failure
    shutil.copyfile(root / "warehouse.duckdb", root / "read.duckdb")  # later runs use the other
    con = duckdb.connect(str(root / "read.duckdb"), read_only=True)
    yield root, con, outcome, records
    con.close()


def test_every_bad_row_is_quarantined_with_its_reason(run) -> None:
    _, con, _, records = run
    reasons = dict(
        con.execute(
            "select coalesce(order_id, row_key), reason from marts.orders_quarantine"
        ).fetchall()
    )
    assert reasons["BAD_DATE"] == "implausible ordered_at (before 2000-01-01): 0001-01-01"
    assert reasons["BAD_HUGE"].startswith("implausible amount (above 1000000)")
    assert reasons["BAD_CODE"] == "implausible amount (above 1000000): 6901234567892"
    quote = [r for r in reasons.values() if r.startswith("unterminated or misplaced quote")]
    first = records + 2 + len(BAD_ROWS)  # header is line 1
    assert quote == [
        f"unterminated or misplaced quote: lines {first}-{first + 4} were read as one value "
        "(5 lines); fix the quote and land the file again"
    ]
    staged = {r[0] for r in con.execute("select order_id from staging.stg_shop__orders").fetchall()}
    assert not staged & {"BAD_DATE", "BAD_HUGE", "BAD_CODE", "QUOTE", "CUT"}


def test_every_record_of_the_files_is_accounted_for(run) -> None:
    _, con, _, records = run
    landed, staged, quarantined, dups, balanced = con.execute(
        "select rows_landed, rows_staged, rows_quarantined, exact_duplicates_removed, balanced "
        "from marts.ingest_reconciliation where source = 'orders'"
    ).fetchall()[0]
    # the original records, three bad rows, one record holding the stray quote and the
    # rows it swallowed (quarantined), and the row cut short (quarantined)
    assert landed == records + len(BAD_ROWS) + 1
    assert quarantined == len(BAD_ROWS) + 1 and balanced
    assert staged + quarantined + dups == landed
    names = con.execute("select name from staging.stg_shop__members where member_id = 'MLINE'")
    assert names.fetchall() == [("Li Ming",)]  # the quoted line break loaded


def test_model_figures_are_sane_and_the_run_is_tagged(run) -> None:
    root, con, outcome, _ = run
    worst = con.execute("select max(predicted_clv_12m) from model.customer_scores").fetchall()
    assert worst[0][0] < 1e6
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        tags = instance.get_run_by_id(outcome.run_id).tags
    assert tags["crm/as_of"] == AS_OF
    assert tags["crm/warehouse"] == str(root / "warehouse.duckdb")
    assert tags["crm/landing"] == str(root / "landing")
    assert tags["crm/trigger"] == "cli"
    cfg = (root / "dagster_home" / "dagster.yaml").read_text(encoding="utf-8")
    assert "QueuedRunCoordinator" in cfg and "crm/warehouse" in cfg


def test_a_killed_run_is_marked_failed_at_the_next_start(run) -> None:
    root, *_ = run
    warehouse = str(root / "warehouse.duckdb")
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        killed = dg.DagsterRun(
            job_name="crm_job",
            run_id="0badc0de-0000-4000-8000-000000000000",
            status=dg.DagsterRunStatus.STARTED,
            tags={"crm/warehouse": warehouse},
        )
        instance.add_run(killed)
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, as_of=AS_OF)
        from orchestration.runner import run_pipeline

        assert run_pipeline(groups=["ingest"]).success
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        status = instance.get_run_by_id(killed.run_id).status
    assert status == dg.DagsterRunStatus.FAILURE


def test_a_missing_landing_folder_says_so_without_an_old_summary(run, tmp_path: Path) -> None:
    import subprocess
    import sys

    root, *_ = run
    env = {
        "PATH": "/usr/bin:/bin",
        "CRM_WAREHOUSE": str(root / "warehouse.duckdb"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "CRM_EXPORT_DIR": str(root / "exports"),
        "CRM_MODELS_DIR": str(root / "models"),
    }
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("crm")), "run", "--landing", str(tmp_path / "nope")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "landing folder" in proc.stderr and "does not exist" in proc.stderr
    assert "campaign lists" not in proc.stdout and "lifecycle stages" not in proc.stdout


def test_shrunk_or_stale_input_holds_the_lists_back_until_accepted(run) -> None:
    root, *_ = run
    orders = root / "landing" / "orders.csv"
    full = orders.read_text(encoding="utf-8")
    lines = full.splitlines(keepends=True)
    latest = root / "exports" / "latest"
    before = {p.name: p.read_bytes() for p in latest.iterdir()}
    try:
        orders.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")  # half written
        with pytest.MonkeyPatch.context() as mp:
            point_env_at(mp, root, as_of=AS_OF)
            from orchestration.runner import run_pipeline

            held = run_pipeline()
            assert not held.success
            assert held.failure.startswith("campaign_exports: check input_is_fresh failed")
            assert {p.name: p.read_bytes() for p in latest.iterdir()} == before
            mp.setenv("CRM_ACCEPT_INPUT_CHANGE", "true")
            accepted = run_pipeline()
        assert accepted.success, accepted.failure
        manifest = json.loads((latest / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["run_id"] == accepted.run_id
    finally:
        orders.write_text(full, encoding="utf-8")
