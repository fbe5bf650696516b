"""Benchmark `crm run` against the plain lifetimes script; results in docs/benchmarks.json.

For each size (default 100k, 1m and 10m orders) the harness generates (or reuses) a demo
dataset under ``data/bench/<size>/landing``, runs the whole pipeline once in a fresh
subprocess (``bench/_drive.py``) and then ``bench/plain_script.py`` on the same files,
measuring wall time, per-stage time and peak RSS of each child. A tiny dataset measures
the fixed overhead (Python, Dagster and dbt start-up).

The figures live in ``docs/benchmarks.json`` (beside the Markdown); ``docs/benchmarks.md``
is rendered from it (``--render-only`` re-renders without running anything). Sizes not run
this time are kept from the JSON, each with its own date. The model figures of a run are
read from what the pipeline wrote: its rows in ``model.clv_model_runs`` of the published
warehouse (final fits: parameters, selected model, customers), and the run's
``models/<as-of>_<run>/params.json``.

Peak RSS: the child is reaped with ``os.wait4``, whose ``ru_maxrss`` is the largest single
process of the tree (the pipeline process or its dbt subprocess; the same figure as
``/usr/bin/time -v``). A sampler also sums RSS over the whole process tree every 0.1 s,
which catches the pipeline and dbt holding memory at the same time. The reported peak is
the larger of the two.

Usage::

    make bench                                 # all sizes
    make bench BENCH_ARGS="--sizes 100k"       # one size
    .venv/bin/python bench/run_bench.py --sizes 1m --skip-plain
    .venv/bin/python bench/run_bench.py --sizes 5k --skip-overhead \\
        --data-dir /tmp/bench --output /tmp/bench/benchmarks.md   # a quick check elsewhere
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DATA_DIR = ROOT / "data" / "bench"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
#: Where the pipeline records every fit (orchestration/lib/model_store.py, RUNS_TABLE).
RUNS_TABLE = "model.clv_model_runs"
PYTHON = sys.executable

#: Orders per member of the demo generator (all statuses): 21,200 -> 99.9k, 212,000 -> 986k.
ORDERS_PER_MEMBER = 4.65
#: Named sizes -> members to generate (measured to land close to 100k / 1M / 10M orders).
SIZES: dict[str, int] = {"100k": 21_200, "1m": 215_000, "10m": 2_150_000}
#: Sizes run only when asked for (``--sizes 100m``): the 100M-order target of issue #15.
LARGE_SIZES: dict[str, int] = {"100m": 21_500_000}
#: The fixed-overhead dataset (enough customers for the model steps' minimums).
TINY = ("tiny", 1_000)
DEFAULT_SEED = 42
DEFAULT_END = date(2026, 6, 30)

STAGES: tuple[str, ...] = ("ingest", "dbt", "fits", "backtest", "scoring", "lists", "exports")
#: Plain-script phases -> stage rows (features is the plain script's "dbt").
PLAIN_STAGES: dict[str, str] = {
    "read": "ingest",
    "features": "dbt",
    "fit_bgnbd": "fits",
    "fit_gamma_gamma": "fits",
    "score": "scoring",
    "write": "exports",
}
BGNBD_PARAMS: tuple[str, ...] = ("r", "alpha", "a", "b")
#: Parameters count as identical within this relative difference (optimizer tolerance).
PARAM_RTOL = 1e-3

#: The targets of issue #15, for a 2-core, 24 GiB machine.
TARGET_RATIO = 1.0  # crm run / plain script at 10M orders
TARGET_10M_RSS_GIB = 3.0
TARGET_OVERHEAD_SECONDS = 10.0
TARGET_100M_SECONDS = 20 * 60.0  # end to end, from CSV and from Parquet
TARGET_100M_RSS_GIB = 8.0
#: The generator's true BG/NBD parameters are recovered within this relative difference.
TARGET_TRUTH_RTOL = 0.02
#: Orders from which a size counts as "10M" / "100M" for the targets.
TEN_M, HUNDRED_M = 9_000_000, 90_000_000
#: ``--contacts``: a do-not-contact list of one entry per this many orders and a contact
#: history of this many rows per order (10M orders: 1M entries, 50M rows), and the most
#: they may add to the run's wall time.
DNC_ORDERS_PER_ENTRY = 10
HISTORY_ROWS_PER_ORDER = 5
HISTORY_DAYS = 730
TARGET_CONTACTS_EXTRA = 0.10
#: The landing folder and the run folder of each variant of a size's crm run.
VARIANTS: dict[str, tuple[str, str]] = {
    "csv": ("landing", ""),
    "parquet": ("landing-parquet", "parquet"),
    "contacts": ("landing-contacts", "contacts"),
}
#: What the fixed-overhead section keeps of the cold run (the warm one is the measure).
COLD_FIELDS = ("success", "wall_seconds", "import_seconds", "definitions_seconds", "step_seconds")
#: "About linear": cost exponent (after subtracting the fixed overhead) at most this.
TARGET_LINEAR_EXPONENT = 1.15

PROFILE_MARKER = "<!-- profile: everything below this line is kept by bench/run_bench.py -->"
PACKAGES = (
    "dagster",
    "dagster-dbt",
    "dbt-core",
    "dbt-duckdb",
    "duckdb",
    "pandas",
    "numpy",
    "scipy",
    "pyarrow",
    "lifetimes",
)


# --------------------------------------------------------------------------- measurement


@dataclass
class Measured:
    """Outcome of one measured child process."""

    returncode: int | None
    wall_seconds: float
    maxrss_kib: int
    tree_peak_kib: int
    timed_out: bool
    stdout: Path
    stderr: Path
    #: (wall clock, process-tree RSS in KiB) every 0.1 s
    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def peak_kib(self) -> int:
        return max(self.maxrss_kib, self.tree_peak_kib)


def _process_tree_rss_kib(root: int) -> int:
    """Sum the RSS of ``root`` and all its descendants from /proc (0 if it is gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                total += int(fh.read().split()[1]) * page_kib
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], env: dict[str, str], log_stem: Path, timeout: float) -> Measured:
    """Run ``cmd`` in its own session; measure wall time and peak RSS; kill it on timeout."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    peak = [0]
    samples: list[tuple[float, int]] = []
    timed_out = [False]
    done = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )

        def watch() -> None:
            while not done.is_set():
                rss = _process_tree_rss_kib(proc.pid)
                samples.append((time.time(), rss))
                peak[0] = max(peak[0], rss)
                if time.perf_counter() - started > timeout and not timed_out[0]:
                    timed_out[0] = True
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                done.wait(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=proc.returncode,
        wall_seconds=wall,
        maxrss_kib=int(usage.ru_maxrss),
        tree_peak_kib=peak[0],
        timed_out=timed_out[0],
        stdout=out_path,
        stderr=err_path,
        samples=samples,
    )


def step_peaks(stdout: Path, samples: list[tuple[float, int]]) -> dict[str, int]:
    """Peak process-tree RSS (KiB) while each step ran, from the driver's progress lines
    (`BENCH_PROGRESS <time> ▶ step`, `... ✓ step (n s)`) and the 0.1 s samples. Steps
    that ran at the same time share the samples of their overlap."""
    started: dict[str, float] = {}
    windows: list[tuple[str, float, float]] = []
    try:
        lines = stdout.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        if not line.startswith("BENCH_PROGRESS "):
            continue
        parts = line.split()
        if len(parts) < 4:
            continue
        try:
            when = float(parts[1])
        except ValueError:
            continue
        mark, step = parts[2], parts[3]
        if mark == "▶":
            started[step] = when
        elif mark in {"✓", "✗"} and step in started:
            windows.append((step, started.pop(step), when))
    end = samples[-1][0] if samples else 0.0
    windows += [(step, t0, end) for step, t0 in started.items()]  # killed mid-step
    peaks: dict[str, int] = {}
    for step, t0, t1 in windows:
        inside = [rss for t, rss in samples if t0 <= t <= t1]
        if inside:
            peaks[step] = max(peaks.get(step, 0), *inside)
    return peaks


def _result_line(path: Path, prefix: str) -> dict[str, Any] | None:
    """The JSON after ``prefix`` on the last matching stdout line, if any."""
    found = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(prefix):
            found = line[len(prefix) :]
    return json.loads(found) if found else None


def _exit_text(returncode: int | None) -> str:
    """``exit N``, naming a kill signal (SIGKILL is what the kernel's out-of-memory killer
    sends)."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exit {returncode}"


def _stderr_tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


# --------------------------------------------------------------------------- datasets


def parse_size(label: str) -> tuple[str, int]:
    """Map ``100k`` / ``1m`` / ``250k`` to (label, members to generate)."""
    label = label.strip().lower()
    named = {**SIZES, **LARGE_SIZES}
    if label in named:
        return label, named[label]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", label)
    if not m:
        raise argparse.ArgumentTypeError(f"size {label!r}: use e.g. 100k, 1m, 10m, 100m")
    orders = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2)]
    return label, max(100, int(round(orders / ORDERS_PER_MEMBER, -2)))


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (as recorded in the JSON)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def ensure_dataset(
    label: str,
    members: int,
    seed: int,
    end: date,
    reuse: bool,
    say: Callable[[str], None],
    data_dir: Path = DATA_DIR,
) -> dict[str, Any]:
    """Generate ``<data_dir>/<label>/landing`` unless a matching dataset is already there."""
    landing = data_dir / label / "landing"
    stamp = landing / "bench-dataset.json"
    wanted = {"members": members, "seed": seed, "end": end.isoformat()}
    if reuse and stamp.exists() and (landing / "orders.csv").exists():
        info = json.loads(stamp.read_text(encoding="utf-8"))
        if all(info.get(k) == v for k, v in wanted.items()):
            say(f"[{label}] reusing {landing} ({info['orders']:,} orders)")
            return info
    from orchestration.demo import generate_demo_data

    say(f"[{label}] generating {members:,} members (seed {seed}, end {end}) into {landing}")
    started = time.perf_counter()
    summary = generate_demo_data(landing, members=members, seed=seed, end=end)
    info = {
        **wanted,
        "orders": summary.orders,
        "generated_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(info), encoding="utf-8")
    say(f"[{label}] {summary.orders:,} orders in {info['generated_seconds']} s")
    return info


def ensure_parquet(label: str, say: Callable[[str], None], data_dir: Path = DATA_DIR) -> dict:
    """Parquet copies of the dataset's landing files in ``<label>/landing-parquet``.

    Typed as DuckDB's CSV sniffer reads them (timestamps, numbers, booleans), as a
    warehouse export would be; the pipeline reads Parquet columns as text like CSV
    fields. Cached while the CSV dataset's stamp is unchanged."""
    import duckdb

    src, dst = data_dir / label / "landing", data_dir / label / "landing-parquet"
    source = json.loads((src / "bench-dataset.json").read_text(encoding="utf-8"))
    stamp = dst / "bench-dataset.json"
    if stamp.exists():
        info = json.loads(stamp.read_text(encoding="utf-8"))
        if info.get("source") == source:
            say(f"[{label}] reusing {dst}")
            return info
    _rm(dst)
    dst.mkdir(parents=True)
    say(f"[{label}] converting {src} to Parquet in {dst}")
    started = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute(f"SET temp_directory = '{data_dir / label / 'duckdb_tmp'}'")
        for path in sorted(src.iterdir()):
            if path.suffix.lower() == ".csv":
                target = dst / f"{path.stem}.parquet"
                con.execute(
                    f"COPY (SELECT * FROM read_csv('{path}', header = true)) TO '{target}' "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
            elif path.name != stamp.name and path.is_file():
                shutil.copy2(path, dst / path.name)
    finally:
        con.close()
    _rm(data_dir / label / "duckdb_tmp")
    size = sum(p.stat().st_size for p in dst.iterdir())
    info = {
        "source": source,
        "converted_seconds": round(time.perf_counter() - started, 1),
        "bytes": size,
        "csv_bytes": sum(p.stat().st_size for p in src.glob("*.csv")),
    }
    stamp.write_text(json.dumps(info), encoding="utf-8")
    say(f"[{label}] Parquet: {size / 1024**3:.2f} GiB in {info['converted_seconds']} s")
    return info


HISTORY_SEED = "contacts-seed/warehouse.duckdb"


def ensure_contacts(
    label: str,
    say: Callable[[str], None],
    data_dir: Path = DATA_DIR,
    timeout: float = 3600,
    yesterday: bool = True,
) -> dict:
    """The ``--contacts`` variant's inputs, cached with the CSV dataset.

    * ``<label>/landing-contacts``: the landing files (hard links) plus ``suppression.csv``,
      one entry per DNC_ORDERS_PER_ENTRY orders, drawn from the members: a third each by
      member id, phone and email (the member id where the member has no phone or email).
    * ``<label>/contacts-seed/warehouse.duckdb``: ``campaigns.contact_history`` with
      HISTORY_ROWS_PER_ORDER rows per order (one list per playbook list and day over the
      HISTORY_DAYS days before the as-of date, each of distinct members, 10% held out),
      then yesterday's run (a crm run as of the day before, not measured): each measured
      run starts from a copy of it, as a nightly run finds its predecessor's warehouse
      (campaign results already read out, contact history one day longer)."""
    import duckdb

    from orchestration.lib.playbook import load_playbook

    base = data_dir / label
    src, dst, seed = base / "landing", base / "landing-contacts", base / HISTORY_SEED
    source = json.loads((src / "bench-dataset.json").read_text(encoding="utf-8"))
    stamp = dst / "bench-dataset.json"
    if stamp.exists() and seed.exists():
        info = json.loads(stamp.read_text(encoding="utf-8"))
        if info.get("source") == source:
            say(f"[{label}] reusing {dst} and {seed.name}")
            return info
    _rm(dst)
    _rm(seed.parent)
    dst.mkdir(parents=True)
    seed.parent.mkdir(parents=True)
    started = time.perf_counter()
    for path in src.iterdir():
        if path.is_file() and path.name != stamp.name:
            os.link(path, dst / path.name)
    entries = max(3, source["orders"] // DNC_ORDERS_PER_ENTRY)
    rows = source["orders"] * HISTORY_ROWS_PER_ORDER
    lists = [x.name for x in load_playbook(ROOT / "campaigns.yml").lists]
    end = date.fromisoformat(source["end"])
    members = source["members"]
    say(f"[{label}] {entries:,} do-not-contact entries and {rows:,} contact-history rows")
    con = duckdb.connect(str(seed))
    try:
        con.execute(f"SET temp_directory = '{base / 'duckdb_tmp'}'")
        con.execute(
            f"""
            COPY (
                SELECT
                    CASE WHEN k % 3 = 0 OR (k % 3 = 1 AND phone IS NULL)
                        OR (k % 3 = 2 AND email IS NULL) THEN member_id END AS member_id,
                    CASE WHEN k % 3 = 1 THEN phone END AS phone,
                    CASE WHEN k % 3 = 2 THEN email END AS email,
                    'bench' AS reason
                FROM (
                    SELECT member_id, phone, email, row_number() OVER () AS k
                    FROM read_csv('{src / "members.csv"}', all_varchar = true)
                    WHERE hash(member_id) % {members} < {entries}
                )
            ) TO '{dst / "suppression.csv"}' (HEADER)
            """
        )
        width = con.execute(
            f"SELECT max(length(member_id)) - 1 FROM read_csv('{src / 'members.csv'}', "
            "all_varchar = true)"
        ).fetchall()[0][0]
        per_list = -(-rows // (HISTORY_DAYS * len(lists)))
        con.execute("CREATE SCHEMA campaigns")
        con.execute(
            f"""
            CREATE TABLE campaigns.contact_history AS
            WITH lists AS (
                SELECT unnest({lists!r}) AS list_name, generate_subscripts({lists!r}, 1) AS li
            ),
            days AS (
                SELECT DATE '{end.isoformat()}' - 1 - CAST(d AS INTEGER) AS as_of_date, d
                FROM range({HISTORY_DAYS}) t(d)
            ),
            picks AS (
                SELECT as_of_date, list_name, j,
                       (hash(d, li) + j) % {members} + 1 AS m
                FROM days, lists, range({per_list}) t(j)
            )
            SELECT
                as_of_date,
                list_name,
                'M' || lpad(CAST(m AS VARCHAR), {width}, '0') AS member_id,
                ['sms', 'email', 'push'][CAST(1 + hash(m) % 3 AS BIGINT)] AS channel,
                hash(m, as_of_date) % 10 = 0 AS is_control,
                CAST(1 + hash(m) % 10 AS INTEGER) AS priority_group,
                ['silent', 'churned', 'mature', 'declining'][CAST(1 + hash(j) % 4 AS BIGINT)]
                    AS lifecycle_stage,
                CAST(NULL AS VARCHAR) AS campaign_id
            FROM picks
            LIMIT {rows}
            """
        )
    finally:
        con.close()
    _rm(base / "duckdb_tmp")
    with (dst / "suppression.csv").open(encoding="utf-8") as fh:
        entries = sum(1 for _ in fh) - 1
    yesterday_seconds = None
    if yesterday:
        say(f"[{label}] yesterday's run on the history (as of {end - timedelta(days=1)}) ...")
        env = _run_env(dst, seed.parent, end - timedelta(days=1))
        m = run_measured([PYTHON, str(BENCH_DIR / "_drive.py")], env, seed.parent / "run", timeout)
        res = _result_line(m.stdout, "BENCH_RESULT ") or {}
        if not res.get("success"):
            raise RuntimeError(
                f"[{label}] yesterday's run failed ("
                f"{res.get('failure') or _exit_text(m.returncode)}); see {m.stderr}"
            )
        yesterday_seconds = round(m.wall_seconds, 1)
    info = {
        "source": source,
        "suppression_entries": entries,
        "history_rows": rows,
        "prepared_seconds": round(time.perf_counter() - started, 1),
        "yesterday_seconds": yesterday_seconds,
    }
    stamp.write_text(json.dumps(info), encoding="utf-8")
    say(f"[{label}] prepared in {info['prepared_seconds']} s")
    return info


# --------------------------------------------------------------------------- runs


def stage_of(step: str) -> str:
    """Map a Dagster step key to a stage column by name."""
    s = step.lower()
    rules = (
        ("ingest", ("raw_", "ingest")),
        ("dbt", ("dbt",)),
        ("backtest", ("backtest",)),
        ("scoring", ("score",)),
        ("exports", ("export",)),
        ("lists", ("campaign", "list", "target")),
        ("fits", ("fit", "model", "clv")),
    )
    for stage, needles in rules:
        if any(n in s for n in needles):
            return stage
    return "other"


#: How many of a run's slowest dbt models and tests the page lists.
SLOWEST_DBT_NODES = 12


def dbt_node_seconds(dagster_home: Path, run_id: str | None) -> dict[str, float]:
    """Seconds per dbt model and test of a run, slowest first: the "Execution Duration"
    dagster-dbt records on each materialization and asset check of the run's event log."""
    if not run_id or not (dagster_home / "dagster.yaml").exists():
        return {}
    from dagster import DagsterEventType, DagsterInstance

    kinds = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}
    seconds: dict[str, float] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.all_logs(run_id, of_type=kinds):
            event = record.dagster_event
            data = event.event_specific_data
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = data.materialization
                name = materialization.asset_key.to_user_string()
                metadata = materialization.metadata
            else:
                name = f"{data.asset_key.to_user_string()}:{data.check_name}"
                metadata = data.metadata
            duration = metadata.get("Execution Duration")
            if duration is not None:
                seconds[name] = float(duration.value)
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def _rm(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _run_env(landing: Path, base: Path, as_of: date) -> dict[str, str]:
    """The environment of a crm run on ``landing`` with its warehouse, models, exports and
    Dagster home in ``base``."""
    return {
        **os.environ,
        "CRM_LANDING_DIR": str(landing),
        "CRM_WAREHOUSE": str(base / "warehouse.duckdb"),
        "CRM_EXPORT_DIR": str(base / "exports"),
        "CRM_MODELS_DIR": str(base / "models"),
        "DAGSTER_HOME": str(base / "dagster_home"),
        "CRM_AS_OF": as_of.isoformat(),
        "CRM_TIME_UNIT": "week",  # the plain script's unit: parameters compare as they are
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_ours(
    label: str, end: date, timeout: float, data_dir: Path = DATA_DIR, fmt: str = "csv"
) -> dict[str, Any]:
    """Run the whole pipeline on the dataset in a fresh process and collect the figures.

    ``fmt="parquet"`` reads the Parquet copies (``ensure_parquet``) and keeps its
    warehouse, models, exports and logs in ``<label>/parquet``; ``fmt="contacts"`` adds a
    do-not-contact list and starts from a warehouse holding a contact history
    (``ensure_contacts``), in ``<label>/contacts``."""
    landing_name, sub = VARIANTS[fmt]
    landing = data_dir / label / landing_name
    base = data_dir / label / sub if sub else data_dir / label
    warehouse = base / "warehouse.duckdb"
    models_dir, export_dir = base / "models", base / "exports"
    for stale in (warehouse, base / "warehouse.duckdb.wal", models_dir, export_dir):
        _rm(stale)
    if fmt == "contacts":
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data_dir / label / HISTORY_SEED, warehouse)
    env = _run_env(landing, base, end)
    load = os.getloadavg()[0]
    m = run_measured([PYTHON, str(BENCH_DIR / "_drive.py")], env, base / "logs" / "ours", timeout)
    res = _result_line(m.stdout, "BENCH_RESULT ") or {}
    steps: dict[str, float] = res.get("step_seconds", {})
    stages: dict[str, float] = {}
    for step, seconds in steps.items():
        stages[stage_of(step)] = stages.get(stage_of(step), 0.0) + seconds
    failure = res.get("failure")
    if m.timed_out:
        failure = f"timed out after {timeout:.0f} s"
    elif not res:
        failure = f"{_exit_text(m.returncode)}: {_stderr_tail(m.stderr)}"
    model_run = read_model_run(warehouse, models_dir, res.get("run_id"))
    try:
        nodes = dbt_node_seconds(base / "dagster_home", res.get("run_id"))
    except Exception as exc:  # noqa: BLE001 - a profile detail, never the run's result
        nodes = {f"(not read: {type(exc).__name__})": 0.0}
    return {
        "success": bool(res.get("success")) and not m.timed_out,
        "failure": failure,
        "timed_out": m.timed_out,
        "loadavg_before": load,
        "wall_seconds": m.wall_seconds,
        "import_seconds": res.get("import_seconds"),
        "definitions_seconds": res.get("definitions_seconds"),
        "run_seconds": res.get("run_seconds"),
        "driver_seconds": res.get("driver_seconds"),
        "step_seconds": steps,
        "stages": stages,
        "maxrss_kib": m.maxrss_kib,
        "tree_peak_kib": m.tree_peak_kib,
        "peak_kib": m.peak_kib,
        "step_peak_kib": step_peaks(m.stdout, m.samples),
        "run_id": res.get("run_id"),
        "bgnbd": _bgnbd_of(model_run),
        "model_run": model_run,
        "dbt_nodes": dict(list(nodes.items())[:SLOWEST_DBT_NODES]),
        "dbt_nodes_total": round(sum(nodes.values()), 1),
        "dbt_nodes_count": len(nodes),
        "logs": _rel(m.stdout),
    }


def run_plain(label: str, end: date, timeout: float, data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """Run ``bench/plain_script.py`` on the same landing files and collect the figures."""
    base = data_dir / label
    cmd = [
        PYTHON,
        str(BENCH_DIR / "plain_script.py"),
        "--landing",
        str(base / "landing"),
        "--as-of",
        end.isoformat(),
        "--out",
        str(base / "plain" / "scores.csv"),
        "--timeout",
        str(int(timeout)),
    ]
    load = os.getloadavg()[0]
    m = run_measured(cmd, dict(os.environ), base / "logs" / "plain", timeout + 60)
    res = _result_line(m.stdout, "PLAIN_RESULT ") or {}
    timed_out = m.timed_out or bool(res.get("timed_out"))
    failure = res.get("failure")
    if timed_out:
        failure = f"timed out after {timeout:.0f} s"
    elif not res:
        failure = f"{_exit_text(m.returncode)}: {_stderr_tail(m.stderr)}"
    stages: dict[str, float] = {}
    for phase, seconds in res.get("phases", {}).items():
        stage = PLAIN_STAGES.get(phase, "other")
        stages[stage] = stages.get(stage, 0.0) + seconds
    return {
        "success": bool(res.get("success")) and not timed_out,
        "failure": failure,
        "timed_out": timed_out,
        "loadavg_before": load,
        "timeout_seconds": timeout,
        "wall_seconds": m.wall_seconds,
        "phases": res.get("phases", {}),
        "stages": stages,
        "customers": res.get("customers"),
        "maxrss_kib": m.maxrss_kib,
        "tree_peak_kib": m.tree_peak_kib,
        "peak_kib": m.peak_kib,
        "bgnbd": res.get("bgnbd"),
        "gamma_gamma": res.get("gamma_gamma"),
    }


def _in_weeks(params: dict[str, float], time_unit: str) -> dict[str, float]:
    """Purchase-model parameters in weeks: ``alpha`` is in time units (``alpha_week =
    alpha_day / 7``); the other BG/NBD parameters have none."""
    days = {"week": 7.0, "day": 1.0}[time_unit]
    return {k: v * days / 7.0 if k == "alpha" else v for k, v in params.items()}


def _run_from_table(warehouse: Path, run_id: str) -> dict[str, Any] | None:
    """The run's final fits in ``model.clv_model_runs`` of the (published) warehouse."""
    import duckdb

    if not warehouse.exists():
        return None
    columns = (
        "model",
        "params",
        "selected",
        "status",
        "time_unit",
        "model_version",
        "customers",
        "repeat_customers",
        "histogram_rows",
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        try:
            rows = con.execute(
                f"select {', '.join(columns)} from {RUNS_TABLE} "
                "where run_id = ? and stage = 'final' order by model",
                [run_id],
            ).fetchall()
        except duckdb.CatalogException:  # no model step ever finished in this warehouse
            return None
    if not rows:
        return None
    fits = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    purchase = [fit for model, fit in fits.items() if model != "gamma_gamma"]
    chosen = next((f for f in purchase if f["selected"]), purchase[0] if purchase else {})
    first = rows[0]
    unit = str(first[columns.index("time_unit")])
    bgnbd = json.loads(fits["bgnbd"]["params"]) if "bgnbd" in fits else None
    return {
        "source": RUNS_TABLE,
        "model_version": first[columns.index("model_version")] or None,
        "status": first[columns.index("status")],
        "selected": chosen.get("model"),
        "time_unit": unit,
        "customers": chosen.get("customers"),
        "repeat_customers": chosen.get("repeat_customers"),
        "histogram_rows": chosen.get("histogram_rows"),
        "bgnbd": _in_weeks(bgnbd, unit) if bgnbd else None,
        "gamma_gamma": json.loads(fits["gamma_gamma"]["params"]) if "gamma_gamma" in fits else None,
    }


def _run_from_params_json(path: Path) -> dict[str, Any]:
    """The same figures from the run's ``params.json`` (written before the model gates)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    unit = doc["time_unit"]
    models = doc.get("purchase_models", {})
    chosen = models.get(doc.get("selected"), {})
    bgnbd = models.get("bgnbd")
    return {
        "source": _rel(path),
        "model_version": doc.get("model_version"),
        "status": doc.get("status"),
        "selected": doc.get("selected"),
        "time_unit": unit,
        "customers": chosen.get("customers"),
        "repeat_customers": None,
        "histogram_rows": None,
        "bgnbd": _in_weeks(bgnbd["params"], unit) if bgnbd else None,
        "gamma_gamma": doc.get("spend_model", {}).get("params"),
    }


def read_model_run(warehouse: Path, models_dir: Path, run_id: str | None) -> dict[str, Any] | None:
    """This run's model figures as the pipeline recorded them.

    From ``model.clv_model_runs`` in the published warehouse; when the run failed after the
    fit (its working copy of the warehouse is then discarded), from its
    ``models/<as-of>_<run>/params.json``. ``None`` without a run id or either record.
    Parameters are converted to weeks, the plain script's unit.
    """
    if not run_id:
        return None
    run = _run_from_table(warehouse, run_id)
    folders = sorted(models_dir.glob(f"*_{run_id[:8]}")) if models_dir.is_dir() else []
    params_json = next((f / "params.json" for f in folders if (f / "params.json").exists()), None)
    if run is None and params_json is not None:
        run = _run_from_params_json(params_json)
    if run is None:
        return None
    return {"run_id": run_id, **run, "params_json": _rel(params_json) if params_json else None}


def _bgnbd_of(model_run: dict[str, Any] | None) -> dict[str, Any] | None:
    """Our BG/NBD parameters (weeks) with where they were read from, for the report."""
    if not model_run or not model_run.get("bgnbd"):
        return None
    params = {p: float(model_run["bgnbd"][p]) for p in BGNBD_PARAMS}
    return {**params, "source": f"{model_run['source']}, run {model_run['run_id'][:8]}"}


def compare_params(ours: dict[str, Any] | None, plain: dict[str, Any] | None) -> float | None:
    """Largest relative difference over r, alpha, a, b (None if either side is missing)."""
    if not ours or not plain:
        return None
    diffs = [
        abs(ours[p] - plain[p]) / max(abs(plain[p]), 1e-12)
        for p in BGNBD_PARAMS
        if p in ours and p in plain
    ]
    return max(diffs) if diffs else None


def true_bgnbd() -> dict[str, float]:
    """The demo generator's BG/NBD parameters in weeks (orchestration/demo/shop.py draws
    purchase rates per operational day, so ``alpha_week = alpha_day / 7``)."""
    from orchestration.demo import shop

    per_day = {"r": shop.BTYD_R, "alpha": shop.BTYD_ALPHA, "a": shop.BTYD_A, "b": shop.BTYD_B}
    return _in_weeks(per_day, "day")


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS, Python and key package versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1) if ram_gib else None,
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
    }


def _machine_line(m: dict[str, Any]) -> str:
    return f"{m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, {m.get('cpu')}"


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    """Everything docs/benchmarks.md is rendered from (persisted inside the file)."""

    written: str
    machine: dict[str, Any]
    seed: int
    end: str
    sizes: dict[str, dict[str, Any]] = field(default_factory=dict)
    overhead: dict[str, Any] | None = None


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:,.1f}"


def _gib(kib: int | None) -> str:
    return "—" if not kib else f"{kib / 1024**2:.2f} GiB"


def _load(*runs: dict[str, Any] | None) -> str:
    vals = [f"{r['loadavg_before']:.2f}" for r in runs if r and r.get("loadavg_before") is not None]
    return " / ".join(vals) or "n/a"


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


def _orders_of(label: str) -> float:
    size = label.lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", size)
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2)] if m else math.nan


def _plain_total(plain: dict[str, Any] | None) -> str:
    if not plain:
        return "skipped"
    if plain.get("timed_out"):
        return f"timed out after {plain.get('timeout_seconds', 0):.0f} s"
    if not plain.get("success"):
        return f"failed: {plain.get('failure')}"
    return _s(plain["wall_seconds"])


def _verdict(ok: bool, success: bool) -> bool | None:
    """A failed run can miss a target but cannot meet it."""
    return ok if success else (False if not ok else None)


def crm_runs(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The size's crm runs by input format: CSV, and Parquet when it was measured."""
    runs = [("CSV", entry["ours"])]
    if entry.get("ours_parquet"):
        runs.append(("Parquet", entry["ours_parquet"]))
    return runs


def hundred_m_verdicts(run: dict[str, Any]) -> dict[str, bool | None]:
    """The 100M targets for one crm run: time, peak RSS, the generator's truth."""
    diff = compare_params(run.get("bgnbd"), true_bgnbd())
    return {
        "time": _verdict(run["wall_seconds"] <= TARGET_100M_SECONDS, run["success"]),
        "rss": _verdict(run["peak_kib"] <= TARGET_100M_RSS_GIB * 1024**2, run["success"]),
        "truth": None if diff is None else diff <= TARGET_TRUTH_RTOL,
    }


def contacts_extra(entry: dict[str, Any]) -> float | None:
    """How much longer the run with the do-not-contact list and the contact history took
    than the plain CSV run of the same size (0.1 = 10% more)."""
    loaded, ours = entry.get("ours_contacts"), entry["ours"]
    if not loaded or ours["timed_out"] or loaded["timed_out"]:
        return None
    return loaded["wall_seconds"] / ours["wall_seconds"] - 1


def _contacts_line(entry: dict[str, Any]) -> str:
    """One paragraph on the run with the do-not-contact list and the contact history."""
    info, run, ours = entry.get("contacts") or {}, entry["ours_contacts"], entry["ours"]
    extra = contacts_extra(entry)
    grew = sorted(
        (
            (run["step_seconds"].get(k, 0.0) - v, k)
            for k, v in ours["step_seconds"].items()
            if run["step_seconds"].get(k, 0.0) - v >= 1.0
        ),
        reverse=True,
    )
    grown = ", ".join(
        f"`{k}` {ours['step_seconds'][k]:.1f} → {run['step_seconds'][k]:.1f} s" for _, k in grew
    )
    failed = "" if run["success"] else f" **The run failed:** {run.get('failure')}."
    return (
        f"**With a do-not-contact list and a contact history** "
        f"({info.get('suppression_entries', 0):,} entries, a third each by member id, phone "
        f"and email; {info.get('history_rows', 0):,} rows of `campaigns.contact_history` over "
        f"{HISTORY_DAYS} days; the run starts from yesterday's warehouse): total wall "
        f"**{_s(run['wall_seconds'])} s**"
        f"{'' if extra is None else f' ({extra:+.0%} against the run above)'}, peak RSS "
        f"{_gib(run['peak_kib'])}; load average before {_load(run)}. Steps that took a second "
        f"or more longer: {grown or 'none'}.{failed}"
    )


def size_verdicts(entry: dict[str, Any]) -> dict[str, bool | None]:
    """Target checks for one size (None = not applicable / not measurable)."""
    ours, plain = entry["ours"], entry.get("plain")
    orders = entry["dataset"]["orders"]
    out: dict[str, bool | None] = {
        "ratio": None,
        "params": None,
        "10m_rss": None,
        "contacts": None,
    }
    if orders >= 900_000 and plain:
        diff = compare_params(ours.get("bgnbd"), plain.get("bgnbd"))
        out["params"] = None if diff is None else diff <= PARAM_RTOL
    if TEN_M <= orders < HUNDRED_M:
        wall = ours["wall_seconds"]
        if plain and plain.get("success"):
            out["ratio"] = _verdict(wall <= TARGET_RATIO * plain["wall_seconds"], ours["success"])
        elif plain and plain.get("timed_out"):
            out["ratio"] = _verdict(wall <= plain.get("timeout_seconds", 0), ours["success"])
        out["10m_rss"] = _verdict(ours["peak_kib"] <= TARGET_10M_RSS_GIB * 1024**2, ours["success"])
        extra = contacts_extra(entry)
        if extra is not None:
            loaded = entry["ours_contacts"]
            out["contacts"] = _verdict(
                extra <= TARGET_CONTACTS_EXTRA, ours["success"] and loaded["success"]
            )
    return out


def linear_exponent(report: Report) -> tuple[float | None, str]:
    """Cost exponent between the smallest and largest size, fixed overhead removed."""
    runs = sorted(
        (e["dataset"]["orders"], e["ours"]["wall_seconds"], e["ours"]["success"])
        for e in report.sizes.values()
        if not e["ours"]["timed_out"]
    )
    if len(runs) < 2:
        return None, "needs two sizes"
    (n1, t1, ok1), (n2, t2, ok2) = runs[0], runs[-1]
    oh = report.overhead
    fixed = oh["wall_seconds"] if oh and not oh["timed_out"] and oh["wall_seconds"] < t1 else 0.0
    v1, v2 = max(t1 - fixed, 1e-3), max(t2 - fixed, 1e-3)
    exp = math.log(v2 / v1) / math.log(n2 / n1)
    less = f"minus the {fixed:.1f} s fixed overhead" if fixed else "no overhead subtracted"
    failed = "" if ok1 and ok2 else "; from runs that failed at a late step"
    return exp, (
        f"{n1:,} → {n2:,} orders: {t1:.1f} s → {t2:.1f} s; {less}, cost ∝ orders^{exp:.2f}{failed}"
    )


def outside_parts(ours: dict[str, Any]) -> dict[str, float]:
    """Wall time of a crm run spent outside Dagster steps, split where the driver allows."""
    steps = sum(ours["step_seconds"].values())
    if ours.get("driver_seconds") is None or ours.get("run_seconds") is None:
        return {"outside steps (start-up, imports, Dagster, summary)": ours["wall_seconds"] - steps}
    return {
        "outside steps: interpreter start-up (plain: start-up + imports)": ours["wall_seconds"]
        - ours["driver_seconds"],
        "outside steps: imports + definitions (dbt parse if stale)": (
            ours.get("import_seconds") or 0.0
        )
        + (ours.get("definitions_seconds") or 0.0),
        "outside steps: Dagster run set-up + summary": ours["run_seconds"] - steps,
    }


def render_size(label: str, entry: dict[str, Any]) -> list[str]:
    """The markdown section of one size."""
    ds, ours, plain = entry["dataset"], entry["ours"], entry.get("plain")
    lines = [
        f"### {label} orders",
        "",
        f"{ds['orders']:,} orders from {ds['members']:,} members (seed {ds['seed']}, "
        f"as of {ds['end']}); measured {entry['measured']} on {_machine_line(entry['machine'])}; "
        f"1-min load average before the runs: {_load(ours, plain)}.",
        "",
    ]
    if not ours["success"]:
        lines += [f"**crm run failed:** {ours.get('failure')}", ""]
    lines += ["| stage | crm run (s) | plain script (s) |", "|---|--:|--:|"]
    pst = (plain or {}).get("stages", {})
    for stage in (*STAGES, "other"):
        if stage == "other" and "other" not in ours["stages"] and "other" not in pst:
            continue
        lines.append(f"| {stage} | {_s(ours['stages'].get(stage))} | {_s(pst.get(stage))} |")
    plain_outside = None
    if plain and plain.get("success"):
        plain_outside = plain["wall_seconds"] - sum(plain["phases"].values())
    parts = outside_parts(ours)
    for i, (name, seconds) in enumerate(parts.items()):
        lines.append(f"| {name} | {_s(seconds)} | {_s(plain_outside) if i == 0 else ''} |")
    lines += [
        f"| **total wall** | **{_s(ours['wall_seconds'])}** | **{_plain_total(plain)}** |",
        f"| peak RSS | {_gib(ours['peak_kib'])} | {_gib((plain or {}).get('peak_kib'))} |",
    ]
    ratio = "—"
    if plain and plain.get("success") and not ours["timed_out"]:
        ratio = f"{ours['wall_seconds'] / plain['wall_seconds']:.2f}×"
    elif plain and plain.get("timed_out") and not ours["timed_out"]:
        ratio = f"< {ours['wall_seconds'] / plain['timeout_seconds']:.2f}×"
    if ratio != "—" and not ours["success"]:
        ratio += " (crm run failed)"
    lines += [f"| **ours / plain** | **{ratio}** | |", ""]
    rss = (
        f"Peak RSS detail — crm run: largest process {_gib(ours['maxrss_kib'])}, "
        f"process-tree sum {_gib(ours['tree_peak_kib'])}"
    )
    if plain:
        rss += (
            f"; plain: largest process {_gib(plain['maxrss_kib'])}, "
            f"tree sum {_gib(plain['tree_peak_kib'])}"
        )
    steps = ", ".join(f"`{k}` {v:.1f}" for k, v in ours["step_seconds"].items()) or "none"
    lines += [rss + ".", "", f"Dagster steps (s): {steps}.", ""]
    if ours.get("step_peak_kib"):
        top = sorted(ours["step_peak_kib"].items(), key=lambda kv: -kv[1])[:6]
        peaks = ", ".join(f"`{k}` {_gib(v)}" for k, v in top)
        lines += [f"Peak RSS of the process tree while a step ran (largest): {peaks}.", ""]
    if ours.get("dbt_nodes"):
        nodes = ", ".join(f"`{k}` {v:.1f}" for k, v in ours["dbt_nodes"].items())
        lines += [
            f"Slowest dbt models and tests (s, of {ours['dbt_nodes_count']} nodes taking "
            f"{ours['dbt_nodes_total']:.1f} s in all): {nodes}.",
            "",
        ]
    if plain and plain.get("phases"):
        phases = ", ".join(f"{k} {v:.1f}" for k, v in plain["phases"].items())
        lines += [f"Plain script phases (s): {phases}.", ""]
    pq_run = entry.get("ours_parquet")
    if pq_run:
        lines += [_parquet_line(entry, pq_run), ""]
    if entry.get("ours_contacts"):
        lines += [_contacts_line(entry), ""]
    ob, pb = ours.get("bgnbd"), (plain or {}).get("bgnbd")
    truth = true_bgnbd()
    lines += [
        "| BG/NBD (weeks) | crm run | plain script | generator's truth |",
        "|---|--:|--:|--:|",
    ]
    for p in BGNBD_PARAMS:
        o = f"{ob[p]:.6g}" if ob and p in ob else "n/a"
        q = f"{pb[p]:.6g}" if pb and p in pb else "n/a"
        lines.append(f"| {p} | {o} | {q} | {truth[p]:.6g} |")
    run = ours.get("model_run") or {}
    ogg, pgg = run.get("gamma_gamma"), (plain or {}).get("gamma_gamma")
    if ogg:
        for p in ("p", "q", "v"):
            q = f"{pgg[p]:.6g}" if pgg and p in pgg else "n/a"
            lines.append(f"| Gamma-Gamma {p} | {ogg[p]:.6g} | {q} | |")
    diff, off = compare_params(ob, pb), compare_params(ob, truth)
    src = f" (ours from {ob['source']})" if ob else ""
    diff_txt = "n/a" if diff is None else f"{diff:.2e}"
    off_txt = "n/a" if off is None else f"{off:.1%}"
    lines += [
        "",
        f"Largest relative parameter difference: {diff_txt}{src}; from the generator's "
        f"truth: {off_txt}.",
        "",
    ]
    if run:
        lines += [_model_run_line(run, plain), ""]
    v = size_verdicts(entry)
    checks = [
        (f"crm run ≤ {TARGET_RATIO:g}× plain (10M orders)", v["ratio"]),
        (f"identical BG/NBD parameters (rel. diff ≤ {PARAM_RTOL:g}, ≥ 1M orders)", v["params"]),
        (f"peak RSS ≤ {TARGET_10M_RSS_GIB:g} GiB (10M orders)", v["10m_rss"]),
        (
            f"do-not-contact list + contact history ≤ {TARGET_CONTACTS_EXTRA:.0%} more "
            "(10M orders)",
            v["contacts"],
        ),
    ]
    if ds["orders"] >= HUNDRED_M:
        for fmt, one in crm_runs(entry):
            h = hundred_m_verdicts(one)
            checks += [
                (f"{fmt}: ≤ {TARGET_100M_SECONDS / 60:g} min", h["time"]),
                (f"{fmt}: peak RSS ≤ {TARGET_100M_RSS_GIB:g} GiB", h["rss"]),
                (f"{fmt}: true parameters within {TARGET_TRUTH_RTOL:.0%}", h["truth"]),
            ]
    lines += ["Targets: " + "; ".join(f"{name}: {_yes(ok)}" for name, ok in checks) + ".", ""]
    return lines


def _parquet_line(entry: dict[str, Any], run: dict[str, Any]) -> str:
    """One paragraph on the crm run from the Parquet copies of the same files."""
    conv = entry.get("parquet") or {}
    size = (
        f": {conv['bytes'] / 1024**3:.2f} GiB against {conv['csv_bytes'] / 1024**3:.2f} GiB of "
        f"CSV, converted in {conv['converted_seconds']:.0f} s"
        if conv.get("bytes")
        else ""
    )
    stages = ", ".join(f"{k} {v:.1f}" for k, v in run["stages"].items())
    failed = "" if run["success"] else f" **The run failed:** {run.get('failure')}."
    diff = compare_params(run.get("bgnbd"), entry["ours"].get("bgnbd"))
    same = "" if diff is None else f"; BG/NBD parameters differ from the CSV run's by {diff:.1e}"
    return (
        f"**From Parquet** (typed copies of the same files{size}): total wall "
        f"**{_s(run['wall_seconds'])} s**, peak RSS {_gib(run['peak_kib'])} (largest process "
        f"{_gib(run['maxrss_kib'])}); stages (s): {stages}; load average before "
        f"{_load(run)}{same}.{failed}"
    )


def _model_run_line(run: dict[str, Any], plain: dict[str, Any] | None) -> str:
    """One sentence on the run's model, from its record (model.clv_model_runs)."""

    def n(value: Any) -> str:
        return "n/a" if value is None else f"{value:,}"

    plain_customers = (plain or {}).get("customers")
    vs = f" (plain script: {n(plain_customers)})" if plain_customers is not None else ""
    return (
        f"Model run `{run['run_id'][:8]}` (from {run['source']}): selected "
        f"{run.get('selected') or 'none'}, status {run.get('status')}, fitted on "
        f"{n(run.get('customers'))} customers{vs}, {n(run.get('repeat_customers'))} repeat, "
        f"{n(run.get('histogram_rows'))} histogram rows; artifacts "
        f"`{run.get('params_json') or 'none'}`."
    )


def _contacts_row(entry: dict[str, Any] | None) -> str:
    """The targets-table row of the do-not-contact list and the contact history at 10M."""
    name = (
        "| 1M-entry do-not-contact list + 50M-row contact history: ≤ "
        f"{TARGET_CONTACTS_EXTRA:.0%} more at 10M |"
    )
    extra = None if entry is None else contacts_extra(entry)
    if extra is None:
        return f"{name} not measured (`--sizes 10m --contacts`) |"
    loaded = entry["ours_contacts"]
    return (
        f"{name} {_yes(size_verdicts(entry)['contacts'])} ({extra:+.0%}: "
        f"{_s(loaded['wall_seconds'])} s against {_s(entry['ours']['wall_seconds'])} s) |"
    )


def _hundred_m_row(report: Report) -> str:
    """The targets-table row of the 100M size, per input format."""
    name = (
        f"| 100M orders / 20M members, CSV and Parquet: ≤ {TARGET_100M_SECONDS / 60:g} min, "
        f"peak ≤ {TARGET_100M_RSS_GIB:g} GiB, true parameters within {TARGET_TRUTH_RTOL:.0%} |"
    )
    big = [e for e in report.sizes.values() if e["dataset"]["orders"] >= HUNDRED_M]
    if not big:
        return f"{name} not measured (`--sizes 100m --parquet`) |"
    parts = []
    for fmt, run in crm_runs(big[0]):
        v = hundred_m_verdicts(run)
        off = compare_params(run.get("bgnbd"), true_bgnbd())
        failed = "" if run["success"] else ", failed"
        parts.append(
            f"{fmt}: {_yes(v['time'] and v['rss'] and v['truth'])} "
            f"({run['wall_seconds'] / 60:.1f} min, {_gib(run['peak_kib'])}, "
            f"{'n/a' if off is None else f'{off:.1%}'} off{failed})"
        )
    if len(parts) == 1:
        parts.append("Parquet: not measured")
    return f"{name} {'; '.join(parts)} |"


def render(report: Report, wanted: Iterable[str], previous_tail: str | None) -> str:
    """The whole docs/benchmarks.md text."""
    m = report.machine
    missing = [s for s in wanted if s not in report.sizes]
    status = (
        f"**Partial:** not measured yet: {', '.join(missing)}."
        if missing
        else "All default sizes measured."
    )
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    lines = [
        "# Benchmarks",
        "",
        f"_Written by `make bench` (bench/run_bench.py) on {report.written}. {status} "
        "Each size keeps the date it was measured on._",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores (os.cpu_count)",
        f"- RAM: {m['ram_gib']} GiB",
        f"- OS: {m['os']}; Python {m['python']}",
        f"- Packages: {pkgs}",
        "",
        "## Targets",
        "",
        "Issue #15's targets, for a 2-core, 24 GiB machine.",
        "",
        "| target | result |",
        "|---|---|",
    ]
    oh = report.overhead
    if oh:
        ok = oh["wall_seconds"] <= TARGET_OVERHEAD_SECONDS
        note = "" if oh["success"] else "; the run failed, see below"
        lines.append(
            f"| fixed overhead (tiny shop, every step on) ≤ {TARGET_OVERHEAD_SECONDS:g} s | "
            f"{_yes(ok)} ({_s(oh['wall_seconds'])} s{note}) |"
        )
    else:
        lines.append(f"| fixed overhead ≤ {TARGET_OVERHEAD_SECONDS:g} s | not measured |")
    ten = [e for e in report.sizes.values() if TEN_M <= e["dataset"]["orders"] < HUNDRED_M]
    if ten:
        v, ours, plain = size_verdicts(ten[0]), ten[0]["ours"], ten[0].get("plain")
        ratio = (
            f"{ours['wall_seconds'] / plain['wall_seconds']:.2f}×: "
            f"{_s(ours['wall_seconds'])} s against {_s(plain['wall_seconds'])} s"
            if plain and plain.get("success")
            else _plain_total(plain)
        )
        lines.append(
            f"| 10M orders: crm run ≤ {TARGET_RATIO:g}× the plain script | {_yes(v['ratio'])} "
            f"({ratio}) |"
        )
        lines.append(
            f"| 10M orders: peak RSS ≤ {TARGET_10M_RSS_GIB:g} GiB | {_yes(v['10m_rss'])} "
            f"({_gib(ours['peak_kib'])}) |"
        )
    else:
        lines.append(f"| 10M orders: crm run ≤ {TARGET_RATIO:g}× the plain script | not measured |")
        lines.append(f"| 10M orders: peak RSS ≤ {TARGET_10M_RSS_GIB:g} GiB | not measured |")
    big = [e for e in report.sizes.values() if e["dataset"]["orders"] >= 900_000]
    # sizes without a plain run (100M: it does not fit) have no verdict
    verdicts = [v for v in (size_verdicts(e)["params"] for e in big) if v is not None]
    params = all(verdicts) if verdicts else None
    lines.append(
        f"| identical BG/NBD parameters at ≥ 1M orders (correctness) | "
        f"{_yes(params) if big else 'not measured'} |"
    )
    lines.append(_hundred_m_row(report))
    lines += [
        _contacts_row(ten[0] if ten else None),
    ]
    exp, how = linear_exponent(report)
    lin = "n/a" if exp is None else _yes(exp <= TARGET_LINEAR_EXPONENT)
    lines += [f"| cost grows about linearly with orders | {lin} ({how}) |", ""]

    lines += ["## Fixed overhead", ""]
    if oh:
        steps = ", ".join(f"`{k}` {v:.1f}" for k, v in oh["step_seconds"].items()) or "none"
        failed = "" if oh["success"] else f" **The run failed:** {oh['failure']}."
        parts = "; ".join(
            f"{k.split(': ', 1)[-1].split(' (plain')[0]} {v:.1f} s"
            for k, v in outside_parts(oh).items()
        )
        lines += [
            f"`crm run` on a tiny dataset ({oh['orders']:,} orders, {oh['members']:,} members; "
            f"measured {oh['measured']}): **{_s(oh['wall_seconds'])} s** wall, peak RSS "
            f"{_gib(oh['peak_kib'])}; load average before {_load(oh)}. Steps (s): {steps}. "
            f"Outside steps: {parts}.{failed}",
            "",
        ]
        if cold := oh.get("cold"):
            dbt = sum(v for k, v in cold["step_seconds"].items() if stage_of(k) == "dbt")
            lines += [
                "This is the second of two runs, started as every nightly run starts: with "
                "the dbt manifest and dbt's parse kept from the run before. The first "
                f"took {_s(cold['wall_seconds'])} s wall, of which definitions "
                f"{cold['definitions_seconds'] or 0:.1f} s and the dbt steps {dbt:.1f} s"
                f"{'' if cold['success'] else ' (it failed)'}; it is a cold start when the "
                "dbt project changed since the last run (an install, an upgrade or an edit: "
                "dbt parses it again).",
                "",
            ]
    else:
        lines += ["Not measured.", ""]

    lines += [
        "## Results per size",
        "",
        "Stages are Dagster steps grouped by name (`raw_*` → ingest, `*dbt*` → dbt, "
        "fit/model/clv → fits, backtest, score → scoring, campaign/list/target → lists, "
        "export → exports, anything else → other). The plain script's phases map onto the same "
        "rows (read → ingest, lifetimes' summary helper → dbt, BG/NBD + Gamma-Gamma fits → "
        "fits, predictions → scoring, CSV → exports). Total wall is measured around the child "
        "process, so it includes interpreter start-up and imports. Peak RSS is the larger of "
        "the biggest single process (`os.wait4` `ru_maxrss`, as `/usr/bin/time -v` reports) "
        "and the sampled sum over the process tree (pipeline + dbt subprocess).",
        "",
    ]
    order = sorted(report.sizes, key=lambda k: report.sizes[k]["dataset"]["orders"])
    for label in order:
        lines += render_size(label, report.sizes[label])
    if not report.sizes:
        lines += ["No size measured yet.", ""]

    lines += [
        "## How to reproduce",
        "",
        "```bash",
        "make bench                                        # 100k, 1m and 10m orders",
        'make bench BENCH_ARGS="--sizes 100m --parquet --skip-overhead --timeout 7200"',
        'make bench BENCH_ARGS="--sizes 100k"              # one size (others are kept)',
        'make bench BENCH_ARGS="--sizes 1m --skip-plain"   # pipeline only',
        "# a variant alone, joined to the size's CSV run already in the JSON:",
        'make bench BENCH_ARGS="--sizes 100m --parquet --variants-only --skip-overhead"',
        ".venv/bin/python bench/run_bench.py --help",
        "```",
        "",
        f"Datasets: `orchestration.demo.generate_demo_data` with seed {report.seed} "
        f"and end {report.end} (the run's as-of date), cached in `data/bench/<size>/landing` "
        "and reused while members, seed and end match (`--parquet`: typed Parquet copies in "
        "`data/bench/<size>/landing-parquet`, run in `data/bench/<size>/parquet/`). Each "
        "`crm run` gets a fresh warehouse, models and exports folder under "
        "`data/bench/<size>/`; logs are in `data/bench/<size>/logs/`. The generator's truth is "
        "`orchestration/demo/shop.py`'s BG/NBD parameters in weeks. Run nothing else on the "
        "machine meanwhile.",
        "",
        "The figures are kept in [benchmarks.json](benchmarks.json) (this page is rendered from "
        "it: `bench/run_bench.py --render-only`); the model figures of a run come from its rows "
        "in `model.clv_model_runs` and its `models/<as-of>_<run>/params.json`.",
        "",
    ]
    tail = (
        previous_tail
        if previous_tail is not None
        else (
            "## Profile\n\n_Hand-written notes on where the time goes (e.g. py-spy or "
            "`dbt --log-level debug` timings) go here; the harness keeps this section._\n"
        )
    )
    lines += [PROFILE_MARKER, tail.lstrip("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"


def data_path(output: Path) -> Path:
    """The JSON the Markdown at ``output`` is rendered from (same name, ``.json``)."""
    return output.with_suffix(".json")


def load_previous(output: Path) -> tuple[Report | None, str | None]:
    """The saved report (``<output>.json``) and the hand-written tail of the Markdown."""
    report = None
    data = data_path(output)
    if data.exists():
        report = Report(**json.loads(data.read_text(encoding="utf-8")))
    tail = None
    if output.exists():
        text = output.read_text(encoding="utf-8")
        tail = text.split(PROFILE_MARKER, 1)[1] if PROFILE_MARKER in text else None
    return report, tail


def save(report: Report, output: Path, tail: str | None, wanted: Iterable[str]) -> None:
    """Write the JSON, then the Markdown rendered from it (each replaced atomically).

    The hand-written part below PROFILE_MARKER is read again now: it may have been
    edited while the runs went on (``tail`` is used only when the page has none)."""
    from orchestration.lib.files import atomic_writer

    if output.exists():
        text = output.read_text(encoding="utf-8")
        if PROFILE_MARKER in text:
            tail = text.split(PROFILE_MARKER, 1)[1]
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(data_path(output)) as fh:
        fh.write(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    with atomic_writer(output) as fh:
        fh.write(render(report, wanted, tail))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        default="100k,1m,10m",
        help="comma-separated sizes in orders (100k, 1m, 10m, 100m or e.g. 250k); default "
        "100k,1m,10m",
    )
    p.add_argument(
        "--parquet",
        action="store_true",
        help="also run the pipeline on Parquet copies of each size's landing files",
    )
    p.add_argument(
        "--contacts",
        action="store_true",
        help="also run the pipeline with a do-not-contact list (1 entry per 10 orders) and a "
        "contact history (5 rows per order) already in the warehouse",
    )
    p.add_argument("--skip-plain", action="store_true", help="do not run the plain script")
    p.add_argument(
        "--variants-only",
        action="store_true",
        help="run only the --parquet / --contacts variants, keeping each size's CSV and plain "
        "figures from the JSON (a long size's variants can then run on another day)",
    )
    p.add_argument(
        "--skip-overhead", action="store_true", help="do not run the tiny fixed-overhead dataset"
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing; re-render the Markdown from the JSON beside it",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the Markdown to write; the figures go to the same name with .json",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="datasets, warehouses, models and logs of the runs (default data/bench)",
    )
    p.add_argument(
        "--reuse-data",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse cached datasets under data/bench/ (default on)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END, help="as-of date")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed per crm run")
    p.add_argument(
        "--plain-timeout", type=float, default=1800, help="seconds allowed per plain script run"
    )
    return p.parse_args(argv)


def run_variants(
    args: argparse.Namespace,
    label: str,
    entry: dict[str, Any],
    report: Report,
    output: Path,
    tail: str | None,
    say: Callable[[str], None],
    data_dir: Path,
) -> None:
    """Run the wanted variants of one size (Parquet, contacts) into its entry, saving after each."""
    variants = (
        (
            args.parquet,
            "parquet",
            "from Parquet",
            partial(ensure_parquet, label, say, data_dir),
        ),
        (
            args.contacts,
            "contacts",
            "with the do-not-contact list and the contact history",
            partial(ensure_contacts, label, say, data_dir, args.timeout),
        ),
    )
    for wanted, fmt, what, prepare in variants:
        if not wanted:
            continue
        entry[fmt] = prepare()
        say(f"[{label}] crm run {what} ...")
        run = run_ours(label, args.end, args.timeout, data_dir, fmt=fmt)
        say(
            f"[{label}] crm run {what} {run['wall_seconds']:.1f} s, peak "
            f"{_gib(run['peak_kib'])}, success={run['success']} {run['failure'] or ''}"
        )
        entry[f"ours_{fmt}"] = {**run, "measured": date.today().isoformat()}
        save(report, output, tail, SIZES)


def main(argv: list[str] | None = None) -> int:
    """Run the requested sizes and (re)write the benchmark report."""
    args = parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]

    def say(msg: str) -> None:
        print(msg, flush=True)

    machine = machine_info()
    output = args.output if args.output.is_absolute() else ROOT / args.output
    data_dir = args.data_dir.resolve()
    previous, tail = load_previous(output)
    report = Report(
        written=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine,
        seed=args.seed,
        end=args.end.isoformat(),
    )
    if previous and previous.seed == args.seed and previous.end == report.end:
        report.sizes = dict(previous.sizes)
        report.overhead = previous.overhead
    say(f"machine: {_machine_line(machine)}")
    today = date.today().isoformat()

    if args.variants_only and not (args.parquet or args.contacts):
        say("--variants-only needs --parquet or --contacts")
        return 2
    if args.variants_only and (missing := [lbl for lbl, _ in sizes if lbl not in report.sizes]):
        say(
            f"--variants-only: {data_path(output)} has no CSV run of {', '.join(missing)}; "
            "run the size without --variants-only first"
        )
        return 2

    if args.render_only:
        if previous is None:
            say(f"no {data_path(output)}; nothing to render")
            return 1
        save(previous, output, tail, SIZES)
        say(f"re-rendered {output} from {data_path(output)}")
        return 0

    if not args.skip_overhead:
        label, members = TINY
        ds = ensure_dataset(label, members, args.seed, args.end, args.reuse_data, say, data_dir)
        # twice: the first run after an install or an edit of the dbt project parses it
        # (cold); the next, like every nightly run, starts from the kept parse (warm)
        runs = {}
        for kind in ("cold", "warm"):
            say(f"[{label}] crm run (fixed overhead, {kind}) ...")
            runs[kind] = run_ours(label, args.end, args.timeout, data_dir)
            r = runs[kind]
            say(f"[{label}] {kind}: {r['wall_seconds']:.1f} s, success={r['success']}")
            if r["failure"]:
                say(f"[{label}] {r['failure']}")
        report.overhead = {
            **runs["warm"],
            "cold": {k: runs["cold"].get(k) for k in COLD_FIELDS},
            "orders": ds["orders"],
            "members": members,
            "measured": today,
        }

    for label, members in sizes:
        ds = ensure_dataset(label, members, args.seed, args.end, args.reuse_data, say, data_dir)
        if args.variants_only:
            entry = report.sizes.get(label)
            same = ("members", "seed", "end", "orders")
            if not entry or any(entry["dataset"].get(k) != ds.get(k) for k in same):
                say(
                    f"[{label}] --variants-only: {data_path(output)} has no CSV run of this "
                    "dataset; run the size without --variants-only first"
                )
                return 2
            run_variants(args, label, entry, report, output, tail, say, data_dir)
            continue
        say(f"[{label}] crm run ...")
        ours = run_ours(label, args.end, args.timeout, data_dir)
        say(
            f"[{label}] crm run {ours['wall_seconds']:.1f} s, peak {_gib(ours['peak_kib'])}, "
            f"success={ours['success']} {ours['failure'] or ''}"
        )
        entry: dict[str, Any] = {
            "dataset": ds,
            "ours": ours,
            "plain": None,
            "measured": today,
            "machine": machine,
        }
        # Written after every run so a long benchmark leaves its partial results behind.
        report.sizes[label] = entry
        save(report, output, tail, SIZES)
        if not args.skip_plain:
            say(f"[{label}] plain script ...")
            plain = run_plain(label, args.end, args.plain_timeout, data_dir)
            say(
                f"[{label}] plain {plain['wall_seconds']:.1f} s, peak {_gib(plain['peak_kib'])}, "
                f"success={plain['success']} {plain['failure'] or ''}"
            )
            entry["plain"] = plain
            save(report, output, tail, SIZES)
        run_variants(args, label, entry, report, output, tail, say, data_dir)

    save(report, output, tail, SIZES)
    say(f"wrote {_rel(data_path(output))} and {_rel(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
