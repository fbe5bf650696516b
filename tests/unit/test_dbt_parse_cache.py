"""dbt keeps its parse between runs: a run with the same vars as an earlier one starts
from that run's parse (dbt itself re-checks every file); other vars parse afresh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace


def _parse(target: Path, dbt_vars_json: str) -> int:
    """`dbt parse` into `target`; returns how many files dbt parsed (0 = all reused)."""
    from orchestration.defs.project import dbt_cli

    invocation = dbt_cli().cli(
        ["parse", "--vars", dbt_vars_json], target_path=target, raise_on_error=False
    )
    list(invocation.stream_raw_events())
    assert invocation.is_successful()
    return json.loads((target / "perf_info.json").read_text())["parsed_path_count"]


def test_a_run_reuses_the_parse_of_an_earlier_run_with_the_same_vars(tmp_path: Path) -> None:
    from orchestration.defs.transform import _keep_parse, _parse_cache, _run_target

    same = json.dumps({"warehouse": str(tmp_path / "w.duckdb"), "as_of_date": "2026-06-30"})
    other = json.dumps({"warehouse": str(tmp_path / "w.duckdb"), "as_of_date": "2026-07-01"})
    runs = [SimpleNamespace(run_id=f"test-parse-cache-{i}-{tmp_path.name}") for i in range(3)]
    targets = []
    try:
        first = _run_target(runs[0], same)
        targets.append(first)
        assert _parse(first, same) > 0  # nothing to start from
        _keep_parse(first, same)
        second = _run_target(runs[1], same)
        targets.append(second)
        assert (second / "partial_parse.msgpack").exists()
        assert _parse(second, same) == 0  # every file reused
        third = _run_target(runs[2], other)
        targets.append(third)
        assert not (third / "partial_parse.msgpack").exists()  # another day: parse afresh
        assert _parse(third, other) > 0
    finally:
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)
        if targets:
            _parse_cache(targets[0].parent, same).unlink(missing_ok=True)


def test_a_dbt_step_starts_without_dbt_version_or_an_in_process_adapter(
    tmp_path: Path, monkeypatch
) -> None:
    """dagster-dbt would run `dbt --version` (which asks PyPI for dbt's latest release) and
    build a dbt adapter in this process before every dbt command: ~4-7 s of each dbt step.
    The project's resource knows the version and needs no adapter; dbt itself still runs."""
    from importlib.metadata import version

    import dagster_dbt.core.resource as dagster_dbt_resource

    from orchestration.defs.project import dbt_cli

    def refuse(*args, **kwargs):
        raise AssertionError(f"dagster-dbt started a subprocess before dbt: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", refuse)
    resource = dbt_cli()
    assert str(resource._cli_version) == version("dbt-core")
    dbt_vars_json = json.dumps({"warehouse": str(tmp_path / "w.duckdb")})
    invocation = resource.cli(
        ["parse", "--vars", dbt_vars_json], target_path=tmp_path / "target", raise_on_error=False
    )
    list(invocation.stream_raw_events())
    assert invocation.is_successful() and invocation.adapter is None
    assert (tmp_path / "target" / "manifest.json").exists()
