"""The benchmark harness's own logic: the 100M targets, the generator's truth, the
Parquet copies and how a killed child is reported (bench/run_bench.py)."""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("run_bench", ROOT / "bench" / "run_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_bench"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _run(wall: float, peak_gib: float, bgnbd: dict | None, success: bool = True) -> dict:
    kib = int(peak_gib * 1024**2)
    return {
        "success": success,
        "failure": None if success else "exit 1: boom",
        "timed_out": False,
        "wall_seconds": wall,
        "peak_kib": kib,
        "maxrss_kib": kib,
        "tree_peak_kib": kib,
        "stages": {"ingest": 1.0},
        "step_seconds": {"raw_orders": 1.0},
        "loadavg_before": 0.1,
        "bgnbd": bgnbd,
    }


def test_truth_is_the_generators_parameters_in_weeks(bench) -> None:
    from orchestration.demo import shop

    truth = bench.true_bgnbd()
    assert truth["alpha"] == pytest.approx(shop.BTYD_ALPHA / 7)
    assert (truth["r"], truth["a"], truth["b"]) == (shop.BTYD_R, shop.BTYD_A, shop.BTYD_B)


def test_hundred_m_verdicts_per_format(bench) -> None:
    truth = bench.true_bgnbd()
    close = {k: v * 1.01 for k, v in truth.items()}
    far = {**truth, "alpha": truth["alpha"] * 1.05}
    assert bench.hundred_m_verdicts(_run(1100, 7.5, close)) == {
        "time": True,
        "rss": True,
        "truth": True,
    }
    assert bench.hundred_m_verdicts(_run(1300, 9.0, far)) == {
        "time": False,
        "rss": False,
        "truth": False,
    }
    # A failed run can miss a target but never meet one.
    failed = bench.hundred_m_verdicts(_run(100, 1.0, None, success=False))
    assert failed == {"time": None, "rss": None, "truth": None}


def test_hundred_m_row_names_each_format(bench) -> None:
    truth = bench.true_bgnbd()
    report = bench.Report(written="now", machine={}, seed=42, end="2026-06-30")
    assert "not measured" in bench._hundred_m_row(report)
    entry = {
        "dataset": {"orders": 100_100_000, "members": 21_500_000, "seed": 42, "end": "x"},
        "ours": _run(1500, 6.0, {k: v * 1.03 for k, v in truth.items()}),
        "plain": None,
    }
    report.sizes["100m"] = entry
    row = bench._hundred_m_row(report)
    assert "CSV: **no** (25.0 min, 6.00 GiB, 3.0% off)" in row
    assert "Parquet: not measured" in row
    entry["ours_parquet"] = _run(1000, 5.0, truth)
    assert "Parquet: **yes** (16.7 min, 5.00 GiB, 0.0% off)" in bench._hundred_m_row(report)


def test_a_size_without_a_plain_run_leaves_the_correctness_verdict_alone(bench) -> None:
    truth = bench.true_bgnbd()
    machine = {"cpu": "x", "cores": 2, "ram_gib": 23.5, "os": "Linux", "python": "3.11"}
    report = bench.Report(
        written="now", machine={**machine, "packages": {}}, seed=42, end="2026-06-30"
    )
    same = _run(60, 1.0, truth)
    report.sizes["1m"] = {
        "dataset": {"orders": 1_000_000, "members": 215_000, "seed": 42, "end": "x"},
        "ours": {**same, "bgnbd": {**truth, "source": "model.clv_model_runs"}},
        "plain": {**_run(10, 0.5, truth), "bgnbd": truth, "phases": {"read": 1.0}},
        "measured": "2026-12-02",
        "machine": machine,
    }
    report.sizes["100m"] = {
        "dataset": {"orders": 100_100_000, "members": 21_500_000, "seed": 42, "end": "x"},
        "ours": _run(1500, 6.0, {**truth, "source": "model.clv_model_runs"}),
        "plain": None,  # it does not fit in memory: no comparison, not a failure
        "measured": "2026-12-02",
        "machine": machine,
    }
    text = bench.render(report, ["1m", "100m"], None)
    assert "| identical BG/NBD parameters at ≥ 1M orders (correctness) | **yes** |" in text
    report.sizes["1m"]["plain"]["bgnbd"] = {**truth, "alpha": truth["alpha"] * 1.1}
    text = bench.render(report, ["1m", "100m"], None)
    assert "| identical BG/NBD parameters at ≥ 1M orders (correctness) | **no** |" in text


def test_killed_child_is_named(bench) -> None:
    assert bench._exit_text(-signal.SIGKILL) == "killed by SIGKILL (out of memory?)"
    assert bench._exit_text(-signal.SIGTERM) == "killed by SIGTERM"
    assert bench._exit_text(2) == "exit 2"


def test_parquet_copies_hold_the_same_rows(bench, tmp_path: Path) -> None:
    landing = tmp_path / "5k" / "landing"
    landing.mkdir(parents=True)
    (landing / "orders.csv").write_text(
        "order_id,member_id,ordered_at,amount\nO1,M01,2026-01-02 10:00:00,12.50\n"
        'O2,"M,02",2026-01-03 11:00:00,7\n',
        encoding="utf-8",
    )
    (landing / ".crm-demo").write_text("demo", encoding="utf-8")
    (landing / "bench-dataset.json").write_text(json.dumps({"members": 2}), encoding="utf-8")
    said: list[str] = []
    info = bench.ensure_parquet("5k", said.append, tmp_path)
    out = tmp_path / "5k" / "landing-parquet"
    rows = duckdb.sql(f"select * from read_parquet('{out / 'orders.parquet'}')").fetchall()
    assert [(r[0], r[1], float(r[3])) for r in rows] == [("O1", "M01", 12.5), ("O2", "M,02", 7.0)]
    assert (out / ".crm-demo").exists()
    assert info["source"] == {"members": 2}
    # Cached while the CSV dataset is unchanged; converted again when it changes.
    assert bench.ensure_parquet("5k", said.append, tmp_path) == info
    assert said[-1].endswith("reusing " + str(out))
    (landing / "bench-dataset.json").write_text(json.dumps({"members": 3}), encoding="utf-8")
    assert bench.ensure_parquet("5k", said.append, tmp_path)["source"] == {"members": 3}


def test_contact_load_has_the_promised_shape(bench, tmp_path: Path) -> None:
    from orchestration.lib.playbook import load_playbook

    landing = tmp_path / "5k" / "landing"
    landing.mkdir(parents=True)
    lines = ["member_id,phone,email"] + [
        f"M{i:04d},{'1390000' + f'{i:04d}' if i % 2 else ''},{f'm{i}@x.cn' if i % 5 else ''}"
        for i in range(1, 301)
    ]
    (landing / "members.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stamp = {"members": 300, "orders": 3_000, "end": "2026-06-30"}
    (landing / "bench-dataset.json").write_text(json.dumps(stamp), encoding="utf-8")
    info = bench.ensure_contacts("5k", lambda _: None, tmp_path, yesterday=False)

    dnc = duckdb.sql(
        f"select * from read_csv('{tmp_path / '5k/landing-contacts/suppression.csv'}', "
        "all_varchar = true)"
    ).fetchall()
    assert len(dnc) == info["suppression_entries"] > 0
    # Every entry names exactly one identifier, and a third or so are phones or emails.
    assert all(sum(v is not None for v in row[:3]) == 1 for row in dnc)
    assert {i for row in dnc for i, v in enumerate(row[:3]) if v} == {0, 1, 2}
    assert (tmp_path / "5k/landing-contacts/members.csv").stat().st_nlink == 2  # a hard link

    con = duckdb.connect(str(tmp_path / "5k" / bench.HISTORY_SEED), read_only=True)
    rows, distinct, first, last, lists, unknown = con.execute(
        "select count(*), count(distinct (as_of_date, list_name, member_id)), min(as_of_date), "
        "max(as_of_date), count(distinct list_name), "
        "count(*) filter (where cast(substr(member_id, 2) as int) not between 1 and 300) "
        "from campaigns.contact_history"
    ).fetchall()[0]
    assert rows == distinct == 3_000 * bench.HISTORY_ROWS_PER_ORDER == info["history_rows"]
    assert str(last) == "2026-06-29" and (last - first).days < bench.HISTORY_DAYS
    assert lists == len(load_playbook(ROOT / "campaigns.yml").lists)
    assert unknown == 0


def test_variants_only_adds_a_variant_to_the_existing_entry(bench, tmp_path, monkeypatch) -> None:
    """A long size's Parquet run can follow its CSV run on another day, keeping the CSV
    and plain figures; without a CSV run of the same dataset it refuses and runs nothing."""
    dataset = {"members": 21_500, "seed": 42, "end": "2026-06-30", "orders": 100_000}
    output = tmp_path / "benchmarks.md"
    machine = {"cpu": "x", "cores": 2, "ram_gib": 23.5, "os": "Linux", "python": "3.11"}
    report = bench.Report(
        written="before", machine={**machine, "packages": {}}, seed=42, end="2026-06-30"
    )
    csv_run = _run(1500, 6.0, None)
    report.sizes["100k"] = {
        "dataset": dataset,
        "ours": csv_run,
        "plain": None,
        "measured": "2026-12-01",
        "machine": machine,
    }
    bench.save(report, output, None, ["100k"])

    calls: list[str] = []
    regenerated = {**dataset, "generated_seconds": 9.9}  # a new copy of the same dataset
    parquet = {"bytes": 2**30, "csv_bytes": 2**32, "converted_seconds": 9.0}
    monkeypatch.setattr(bench, "ensure_dataset", lambda *a, **k: regenerated)
    monkeypatch.setattr(bench, "ensure_parquet", lambda *a, **k: parquet)

    def fake_run(label, end, timeout, data_dir, fmt="csv"):
        calls.append(fmt)
        return _run(900, 5.0, None)

    monkeypatch.setattr(bench, "run_ours", fake_run)
    argv = ["--sizes", "100k", "--skip-overhead", "--variants-only", "--output", str(output)]
    assert bench.main([*argv, "--parquet", "--data-dir", str(tmp_path)]) == 0
    assert calls == ["parquet"]
    saved = json.loads(bench.data_path(output).read_text(encoding="utf-8"))["sizes"]["100k"]
    assert saved["ours"]["wall_seconds"] == 1500  # the CSV run is kept
    assert saved["ours_parquet"]["wall_seconds"] == 900
    assert saved["parquet"] == parquet

    # Another dataset under the same label: no CSV run to join, nothing runs.
    monkeypatch.setattr(bench, "ensure_dataset", lambda *a, **k: {**dataset, "orders": 7})
    assert bench.main([*argv, "--parquet", "--data-dir", str(tmp_path)]) == 2
    assert bench.main(argv) == 2  # no variant asked for
    assert calls == ["parquet"]


def test_step_peaks_attribute_memory_to_the_steps_running(bench, tmp_path) -> None:
    out = tmp_path / "ours.out"
    out.write_text(
        "BENCH_PROGRESS 100.000 ▶ raw_orders\n"
        "BENCH_PROGRESS 101.000 ✓ raw_orders (1.0s)\n"
        "BENCH_PROGRESS 101.000 ▶ clv_model\n"
        "BENCH_PROGRESS 101.500 ▶ crm_dbt_campaigns\n"
        "BENCH_PROGRESS 102.000     ! check clv_model:drift WARN\n"
        "BENCH_PROGRESS 103.000 ✓ clv_model (2.0s)\n"
        "BENCH_PROGRESS 103.200 ▶ customer_scores\n"  # killed: no end line
        'BENCH_RESULT {"success": false}\n',
        encoding="utf-8",
    )
    samples = [(99.5, 50), (100.5, 300), (101.2, 900), (101.8, 700), (102.9, 400), (103.5, 2000)]
    assert bench.step_peaks(out, samples) == {
        "raw_orders": 300,
        "clv_model": 900,
        "crm_dbt_campaigns": 2000,  # still running when the samples end
        "customer_scores": 2000,
    }
    assert bench.step_peaks(tmp_path / "missing.out", samples) == {}


def test_fixed_overhead_is_the_warm_run_and_names_the_cold_one(
    bench, tmp_path, monkeypatch
) -> None:
    """The tiny shop runs twice: the figure is the second run (dbt's parse kept, as every
    nightly run starts); the first run's wall time is shown beside it, not dropped."""
    output = tmp_path / "benchmarks.md"
    tiny = {"members": 1_000, "seed": 42, "end": "2026-06-30", "orders": 4_595}
    monkeypatch.setattr(bench, "ensure_dataset", lambda *a, **k: tiny)
    walls = iter([61.5, 23.5, 99.0])  # cold, warm, then the 100k size
    calls: list[str] = []

    def fake_run(label, end, timeout, data_dir, fmt="csv"):
        calls.append(label)
        run = _run(next(walls), 0.7, None)
        run.update(
            definitions_seconds=9.0,
            import_seconds=2.0,
            driver_seconds=run["wall_seconds"] - 1.0,
            run_seconds=run["wall_seconds"] - 12.0,
            step_seconds={"raw_orders": 1.0, "crm_dbt_models": 30.0, "crm_dbt_campaigns": 8.5},
        )
        return run

    monkeypatch.setattr(bench, "run_ours", fake_run)
    argv = ["--sizes", "100k", "--output", str(output), "--data-dir", str(tmp_path)]
    assert bench.main([*argv, "--skip-plain"]) == 0
    assert calls == ["tiny", "tiny", "100k"]
    saved = json.loads(bench.data_path(output).read_text(encoding="utf-8"))["overhead"]
    assert saved["wall_seconds"] == 23.5
    assert saved["cold"]["wall_seconds"] == 61.5
    page = output.read_text(encoding="utf-8")
    assert "**23.5 s** wall" in page
    assert "The first took 61.5 s wall, of which definitions 9.0 s and the dbt steps 38.5 s" in page
