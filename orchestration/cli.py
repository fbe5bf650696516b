"""The `crm` command line: run the pipeline, make demo data, open the UI, serve the portal.

`crm run` materializes the same Dagster job the UI and the schedule use, in
this process, against the persistent Dagster instance under DAGSTER_HOME (so
CLI runs appear in the UI's run history).
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
import time
import traceback
from datetime import date, datetime
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
    "--rebuild-results",
    is_flag=True,
    help="Recompute every campaign's results from the whole contact record (after landing "
    "an old send log or changing a results window); normally only campaigns whose windows "
    "were still open are.",
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
    rebuild_results: bool,
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
        rebuild_campaign_results=True if rebuild_results else None,
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


@main.command()
@click.option("--host", help="Address to listen on (CRM_PORTAL_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (CRM_PORTAL_PORT, default 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Start the marketing portal (lists, downloads, results, status) with uvicorn."""
    from orchestration.portal.store import Store
    from orchestration.settings import load_settings

    s = load_settings(portal_host=host, portal_port=port)
    store = Store(s.portal_db)  # type: ignore[arg-type]  # filled by Settings
    if store.active_user_count() == 0:
        _fail(
            f"the portal has no users yet ({s.portal_db})",
            "add one, e.g. `crm users add alice --role marketer` (roles: marketer, analyst, "
            "admin; with the same CRM_WAREHOUSE / CRM_PORTAL_DB as here), then `crm serve` again",
        )
    import uvicorn

    from orchestration.portal.app import create_app

    if not s.export_dir.is_dir():
        click.echo(f"note: no export folder {s.export_dir} yet; run `make demo` or `crm run`")
    if s.portal_host not in ("127.0.0.1", "localhost", "::1") and not s.portal_secure_cookie:
        click.echo(
            "warning: listening beyond this machine without CRM_PORTAL_SECURE_COOKIE=true; put "
            "the portal behind HTTPS and set it, or sign-in cookies travel in clear text",
            err=True,
        )
    click.echo(
        f"portal on http://{s.portal_host}:{s.portal_port} (exports {s.export_dir}, warehouse "
        f"{s.warehouse}, users in {s.portal_db}); Ctrl+C stops it"
    )
    uvicorn.run(
        create_app(s),
        host=s.portal_host,
        port=s.portal_port,
        server_header=False,
        log_level="info",
        # the client's address is the connection's: an X-Forwarded-For header from a
        # local client must not choose the address the throttle and the audit log see
        proxy_headers=False,
    )


@main.group()
def users() -> None:
    """Portal accounts (kept in CRM_PORTAL_DB, beside the warehouse by default)."""


def _portal_store():
    from orchestration.portal.store import Store
    from orchestration.settings import load_settings

    s = load_settings()
    return Store(s.portal_db), s  # type: ignore[arg-type]  # filled by Settings


def _read_password() -> str:
    """Typed twice: hidden prompts on a terminal, else two lines from stdin."""
    if sys.stdin.isatty():
        first = click.prompt("Password", hide_input=True, default="", show_default=False)
        second = click.prompt("Repeat it", hide_input=True, default="", show_default=False)
    else:
        lines = sys.stdin.read().splitlines()
        if len(lines) < 2:
            raise CrmError(
                "give the password twice: two lines on stdin (or run the command in a terminal "
                "to be asked)"
            )
        first, second = lines[0], lines[1]
    if first != second:
        raise CrmError("the two passwords differ; nothing was changed, run the command again")
    return first


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["marketer", "analyst", "admin"]),
    help="marketer: lists, results, send files, mark as sent; analyst: also control files, "
    "exclusions and the model card; admin: also users and the audit log.",
)
def users_add(name: str, role: str) -> None:
    """Add a portal user NAME; the password is asked twice (at least 10 characters)."""
    from orchestration.portal.auth import check_name, create_user

    store, _ = _portal_store()
    check_name(name)
    if store.user(name) is not None:
        raise CrmError(f"user {name!r} already exists; `crm users list` shows the users")
    user = create_user(store, name, role, _read_password())
    store.audit("user_added", user=_operator(), address="cli", detail=f"{user.name} as {user.role}")
    click.echo(f"added {user.name} ({user.role}) to {store.path}")


@users.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable user NAME and end their sessions (they can no longer sign in)."""
    store, _ = _portal_store()
    ended = store.disable_user(name)
    store.audit(
        "user_disabled", user=_operator(), address="cli", detail=f"{name}; {ended} session(s) ended"
    )
    click.echo(f"disabled {name}; {ended} session(s) ended")


@users.command("list")
def users_list() -> None:
    """The portal's users: name, role, disabled, created (never password hashes)."""
    store, s = _portal_store()
    rows = store.users()
    if not rows:
        click.echo(f"no users yet in {store.path}; add one: crm users add alice --role marketer")
        return
    width = max(len("name"), *(len(u.name) for u in rows))
    click.echo(f"{'name':<{width}}  {'role':<8}  {'disabled':<8}  created")
    for u in rows:
        created = datetime.fromisoformat(u.created_at).astimezone(s.tz).strftime("%Y-%m-%d %H:%M")
        disabled = "yes" if u.disabled else "no"
        click.echo(f"{u.name:<{width}}  {u.role:<8}  {disabled:<8}  {created}")


def _operator() -> str:
    """Who ran a `crm users` command (the audit log's user): `cli:<OS account>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


if __name__ == "__main__":
    main()
