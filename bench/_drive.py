"""Benchmark driver: run the pipeline once in this process and print one JSON result line.

Started by ``bench/run_bench.py`` in a fresh subprocess per dataset, with the ``CRM_*`` and
``DAGSTER_HOME`` environment variables pointing at the dataset's folders. The last stdout
line is ``BENCH_RESULT {json}``.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
import traceback
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
#: the run's progress lines (a step's start ▶ and end ✓ / ✗) with the wall clock, for the
#: harness's memory profile per step
PROGRESS_PREFIX = "BENCH_PROGRESS "


class _Timestamped(io.TextIOBase):
    """stdout for the run: each line the runner prints gets the prefix and the time."""

    def __init__(self, out: Any) -> None:
        self._out, self._pending = out, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._out.write(f"{PROGRESS_PREFIX}{time.time():.3f} {line}\n")
        self._out.flush()
        return len(text)


def main() -> int:
    """Run ``run_pipeline()`` and print success, failure, step timings and own resource use."""
    started = time.perf_counter()
    real_stdout = sys.stdout
    result: dict[str, Any] = {"success": False, "failure": None, "step_seconds": {}}
    try:
        from orchestration.runner import run_pipeline

        result["import_seconds"] = time.perf_counter() - started
        loaded = time.perf_counter()
        from orchestration.defs.project import prepare_if_stale

        prepare_if_stale()  # a fresh checkout has no manifest; the definitions need one
        import orchestration.definitions  # noqa: F401 - timed here; run_pipeline reuses it

        result["definitions_seconds"] = time.perf_counter() - loaded
        ran = time.perf_counter()
        sys.stdout = _Timestamped(real_stdout)
        try:
            outcome = run_pipeline(progress=print)
        finally:
            sys.stdout = real_stdout
        result["run_seconds"] = time.perf_counter() - ran
        result["run_id"] = outcome.run_id  # its rows in model.clv_model_runs
        result["success"] = bool(outcome.success)
        result["failure"] = outcome.failure
        result["step_seconds"] = {k: float(v) for k, v in outcome.step_seconds.items()}
    except Exception as exc:  # noqa: BLE001 - reported to the harness, not raised
        traceback.print_exc()
        result["failure"] = f"{type(exc).__name__}: {exc}"
    # ru_maxrss is in KiB on Linux; children = the largest reaped descendant (dbt).
    result["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["driver_seconds"] = time.perf_counter() - started
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0 if result["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
