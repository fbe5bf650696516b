"""The `crm` command line: run the pipeline, make demo data, open the UI.

`crm run` materializes the same Dagster job the UI and the schedule use, in
this process, against the persistent Dagster instance under DAGSTER_HOME (so
CLI runs appear in the UI's run history).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from datetime import date
from pathlib import Path

import click

from orchestration.errors import CrmError

#: Exit codes (docs/runbook.md): 0 published, 1 failed (bad input, failed check, bug),
#: 2 wrong usage, 75 the warehouse is busy (another run, or a program holding the file).
EXIT_BUSY = 75


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


class _Cli(click.Group):
    """Turns user-caused errors into one line and a hint; --debug shows the traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CrmError as exc:
            if ctx.params.get("debug") or os.environ.get("CRM_DEBUG"):
                traceback.print_exc()
            busy = type(exc).__name__ == "WarehouseBusyError"
            _fail(
                str(exc),
                "nothing was changed; run again when it is free"
                if busy
                else "run with --debug for the full traceback",
                EXIT_BUSY if busy else 1,
            )


@click.group(cls=_Cli)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def main(debug: bool) -> None:
    """crm-pipeline: RFM, lifecycle, CLV and campaign lists from orders and members."""
    if debug:
        os.environ["CRM_DEBUG"] = "1"


@main.command()
@click.option("--as-of", "as_of", help="Compute as of this date (YYYY-MM-DD). Default: yesterday.")
@click.option(
    "--landing", type=click.Path(path_type=Path), help="Landing folder (CRM_LANDING_DIR)."
)
@click.option("--warehouse", type=click.Path(path_type=Path), help="DuckDB file (CRM_WAREHOUSE).")
@click.option("--exports", type=click.Path(path_type=Path), help="Export folder (CRM_EXPORT_DIR).")
@click.option("--models", type=click.Path(path_type=Path), help="Model folder (CRM_MODELS_DIR).")
@click.option(
    "--groups",
    help="Only these asset groups, comma-separated (ingest, transform, model, campaigns); "
    "e.g. ingest,transform for RFM and lifecycle without the CLV model.",
)
@click.option("--quiet", is_flag=True, help="Only print the summary.")
@click.option(
    "--accept-input-change",
    is_flag=True,
    help="Publish even if the input looks suspicious (stale, shrunk, parameters jumped).",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Refuse (exit code 75) instead of waiting when another run uses the warehouse.",
)
def run(
    as_of: str | None,
    landing: Path | None,
    warehouse: Path | None,
    exports: Path | None,
    models: Path | None,
    groups: str | None,
    quiet: bool,
    accept_input_change: bool,
    no_wait: bool,
) -> None:
    """Materialize the whole asset graph (ingest → dbt → model → lists) once."""
    from orchestration.settings import load_settings, parse_as_of

    if as_of is not None:
        parse_as_of(as_of, source="--as-of")  # the message names the flag that was typed
    cwd = Path.cwd()  # a relative path typed on the command line is relative to here
    settings = load_settings(
        as_of=as_of,
        landing_dir=cwd / landing if landing else None,
        warehouse=cwd / warehouse if warehouse else None,
        export_dir=cwd / exports if exports else None,
        models_dir=cwd / models if models else None,
        accept_input_change=True if accept_input_change else None,
    )
    from orchestration.runner import run_pipeline  # heavy imports only when running

    selected = [g.strip() for g in groups.split(",") if g.strip()] if groups else None
    outcome = run_pipeline(
        progress=None if quiet else click.echo,
        groups=selected,
        wait=not no_wait,
        settings=settings,
    )
    click.echo(outcome.summary)
    if not outcome.success:
        if os.environ.get("CRM_DEBUG") and outcome.details:
            click.echo(outcome.details, err=True)
        _fail(outcome.failure or "the run failed", outcome.hint, EXIT_BUSY if outcome.busy else 1)


@main.command("demo-data")
@click.option("--members", default=20_000, show_default=True, help="Members to generate.")
@click.option("--seed", default=42, show_default=True, help="Random seed (same seed, same files).")
@click.option("--end", "end", help="Last order date (YYYY-MM-DD). Default: yesterday.")
@click.option("--years", default=2.0, show_default=True, help="Years of history.")
@click.option(
    "--source",
    type=click.Choice(["demo", "cdnow", "cdnow-sample"]),
    default="demo",
    show_default=True,
    help="demo = synthetic shop; cdnow / cdnow-sample = the real CDNOW data shipped in lifetimes.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (CRM_LANDING_DIR).")
@click.option(
    "--no-campaign",
    is_flag=True,
    help="demo: skip the simulated past campaign (campaign_sends.csv, coupon_events.csv).",
)
def demo_data(
    members: int,
    seed: int,
    end: str | None,
    years: float,
    source: str,
    out: Path | None,
    no_campaign: bool,
) -> None:
    """Write a landing folder that follows the data contract.

    demo: orders.csv and members.csv of a simulated shop, and a past win-back campaign with a
    known true uplift (campaign_sends.csv, coupon_events.csv; the truth in
    .crm-demo-campaign.json). cdnow: orders.csv and members.csv.
    """
    from orchestration import demo as gen
    from orchestration.settings import load_settings

    out_dir = (out or load_settings().landing_dir).resolve()
    if members < 1:
        raise CrmError("--members must be at least 1")
    end_date = None
    if end:
        try:
            end_date = date.fromisoformat(end)
        except ValueError as exc:
            raise CrmError(f"--end {end!r} is not a date; use YYYY-MM-DD") from exc
    started = time.monotonic()
    if source == "demo":
        summary = gen.generate_demo_data(
            out_dir,
            members=members,
            seed=seed,
            end=end_date,
            years=years,
            campaign=not no_campaign,
            progress=click.echo,
        )
    else:
        summary = gen.write_cdnow(out_dir, sample=source == "cdnow-sample")
    click.echo(
        f"wrote {summary.orders:,} orders and {summary.members:,} members "
        f"({summary.first_order} .. {summary.last_order}) to {out_dir} "
        f"in {time.monotonic() - started:.1f}s"
    )


@main.command()
@click.option("--port", default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """Start the Dagster UI on the pipeline's definitions (DAGSTER_HOME under data/)."""
    from orchestration.settings import PROJECT_ROOT, load_settings

    s = load_settings()
    s.ensure_dagster_home()
    bin_dir = Path(sys.executable).parent  # dagster and dbt installed beside this Python
    args = [str(bin_dir / "dagster"), "dev", "-m", "orchestration.definitions"]
    args += ["-p", str(port), "-h", host]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(s.dagster_home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    logging.getLogger(__name__).info("starting %s", " ".join(args))
    os.chdir(PROJECT_ROOT)
    os.execve(args[0], args, env)


if __name__ == "__main__":
    main()
