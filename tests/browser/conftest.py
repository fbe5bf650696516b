"""Fixtures of the browser tests: the portal on REAL published data, driven by Playwright.

- `published`: demo data (3,000 members, seed 5, up to 2026-06-30) run through the whole
  pipeline (`run_pipeline()`, about a minute) in a temp folder, and one portal user per role
  (helpers.USERS) added with `crm users add` (password on stdin); built once per session.
- `portal`: the app served by uvicorn on a free local port in a background thread.
- `browser`: Chromium launched by Playwright (sync API). Playwright cannot download its own
  browsers here: it drives Debian's `chromium` package (`make test` installs it with
  apt-get, see scripts/ensure_chromium.sh) or the executable named by CHROMIUM_PATH.
  Without one the tests FAIL (they do not skip).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import AS_OF, ROLE_USER, USERS, VIEWPORT, Published, sign_in
from tests.conftest import point_env_at


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the portal in Chromium with Playwright (needs chromium)"
    )


def find_chromium() -> str | None:
    """CHROMIUM_PATH, else Debian's chromium (its real binary, not the launcher script)."""
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        return named if os.access(named, os.X_OK) else None
    launcher = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if launcher is None:
        return None
    real = Path("/usr/lib/chromium/chromium")  # what Debian's /usr/bin/chromium script runs
    if Path(launcher).resolve() == Path("/usr/bin/chromium") and os.access(real, os.X_OK):
        return str(real)
    return launcher


@pytest.fixture(scope="session", autouse=True)
def chromium_executable() -> str:
    """First of all (before the minute of pipeline): fail, loudly, without a Chromium."""
    path = find_chromium()
    if path is None:
        where = os.environ.get("CHROMIUM_PATH")
        pytest.fail(
            (f"CHROMIUM_PATH={where} is not an executable. " if where else "")
            + "The browser tests need Chromium and none was found (no `chromium` command). "
            "Run `make test`, which installs Debian's chromium with apt-get "
            "(scripts/ensure_chromium.sh), or `apt-get install chromium`, or set CHROMIUM_PATH "
            "to a Chromium/Chrome executable.",
            pytrace=False,
        )
    return path


def _phone_digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    for prefix in ("0086", "86"):
        if len(digits) > 11 and digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, chromium_executable: str) -> Published:
    """Demo data run through the real pipeline as of 2026-06-30 (exports published), and a
    user per role. The CRM_* variables point at the temp folder only while building."""
    from click.testing import CliRunner

    from orchestration.cli import main
    from orchestration.demo import generate_demo_data
    from orchestration.runner import run_pipeline
    from orchestration.settings import load_settings

    root = tmp_path_factory.mktemp("browser")
    generate_demo_data(root / "landing", members=3000, seed=5, end=date(2026, 6, 30))
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root, as_of=AS_OF)
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        for name in ("CRM_PORTAL_DB", "CRM_SILENT_AFTER_DAYS", "CRM_CHURN_AFTER_DAYS"):
            mp.delenv(name, raising=False)
        outcome = run_pipeline()
        assert outcome.success, outcome.failure
        runner = CliRunner()
        for name, (role, password) in USERS.items():
            result = runner.invoke(
                main, ["users", "add", name, "--role", role], input=f"{password}\n{password}\n"
            )
            assert result.exit_code == 0, (result.output, result.exception)
        settings = load_settings()
    manifest = json.loads((settings.export_dir / AS_OF / "manifest.json").read_text("utf-8"))
    phones, emails = [], []
    with open(root / "landing" / "members.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if (row.get("phone") or "").strip():
                phones.append(_phone_digits(row["phone"]))
            if (row.get("email") or "").strip():
                emails.append(row["email"].strip().lower())
    assert len(phones) > 1000 and len(emails) > 500, "members file without phones or emails?"
    return Published(root, settings, AS_OF, manifest, phones, emails)


@pytest.fixture(scope="session")
def portal(published: Published) -> Iterator[str]:
    """The portal (create_app on the published settings) served by uvicorn in a thread;
    yields its base URL once it answers."""
    import uvicorn

    from orchestration.portal.app import create_app

    app = create_app(published.settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn serves on it (no race)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="portal", daemon=True
    )
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/login", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert thread.is_alive(), "uvicorn stopped before serving the portal"
        assert time.monotonic() < deadline, f"the portal did not answer on {base} in 30 s"
        time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, portal: str) -> Iterator[Callable[..., Any]]:
    """new_page(locale="en-US") -> a page in a fresh context (no cookies), fixed viewport,
    downloads accepted, base URL set to the portal."""
    contexts = []

    def make(locale: str = "en-US") -> Any:
        context = browser.new_context(
            base_url=portal, viewport=VIEWPORT, accept_downloads=True, locale=locale
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def signed_in(new_page: Callable[..., Any]) -> Callable[[str], Any]:
    """signed_in(role) -> a page signed in as that role's user, on the lists page."""

    def sign_in_as(role: str) -> Any:
        page = new_page()
        sign_in(page, ROLE_USER[role])
        page.wait_for_selector("#lists")
        return page

    return sign_in_as
