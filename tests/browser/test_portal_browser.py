"""The portal in a real browser (Chromium via Playwright) on real published data: signing in,
browsing a list, downloading its files (checked against the manifest), what each role may
see, the audit log, Chinese labels, no personal data on any page, marking a list as sent,
and the screenshots in docs/portal/ (linked from docs/portal.md).

The fixtures (conftest.py) run the pipeline once on demo data as of 2026-06-30, add a user
per role with `crm users add`, and serve the portal with uvicorn on a free local port."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from orchestration.portal.i18n import translate
from tests.browser.helpers import AS_OF, SCREENSHOTS, USERS, VIEWPORT, Published, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LIST = "win_back"
CHART_LOADED = """sel => {
    const img = document.querySelector(sel);
    return img !== null && img.complete && img.naturalWidth > 0;
}"""


def list_url(name: str = LIST) -> str:
    return f"/days/{AS_OF}/lists/{name}"


def open_list(page: Any, name: str = LIST) -> None:
    """From the lists page, follow the list's link."""
    with page.expect_navigation():
        page.click(f'#lists tr[data-list="{name}"] a.list-link')
    page.wait_for_selector("#list-title")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(page: Any, selector: str) -> Any:
    with page.expect_download() as info:
        page.click(selector)
    return info.value


def audit_rows(page: Any) -> list[dict[str, str]]:
    """The audit table as dicts (action from data-action, the cells by column)."""
    return page.eval_on_selector_all(
        "#audit tbody tr[data-action]",
        """rows => rows.map(r => {
            const c = [...r.querySelectorAll('td')].map(td => td.innerText.trim());
            return {action: r.dataset.action, user: c[1], detail: c[3], file: c[4], rows: c[5]};
        })""",
    )


def test_published_data_has_the_list_the_tests_use(published: Published) -> None:
    names = [item["list"] for item in published.manifest["lists"]]
    assert LIST in names, names
    assert published.list_entry(LIST)["send"] > 0 and published.list_entry(LIST)["control"] > 0
    for file in (f"{LIST}.xlsx", f"{LIST}.csv", f"{LIST}_control.csv"):
        assert file in published.manifest["files"], file


def test_sign_in_lands_on_the_lists_page(
    new_page: Callable[..., Any], portal: str, published: Published
) -> None:
    page = new_page()
    page.goto("/")
    assert page.url.startswith(f"{portal}/login"), "no session: sent to the sign-in page"
    sign_in(page, "mia")
    assert page.url == f"{portal}/"
    page.wait_for_selector("#lists")
    for item in published.manifest["lists"]:
        row = page.locator(f'#lists tr[data-list="{item["list"]}"]')
        assert row.count() == 1, item["list"]
        assert row.locator("a.list-link").get_attribute("href") == list_url(item["list"])
    assert page.inner_text("#nav-user") == "mia"
    assert page.locator("#sign-out").count() == 1
    assert any(c["name"] == "crm_session" and c["httpOnly"] for c in page.context.cookies())


def test_wrong_password_shows_an_error_and_no_session(
    new_page: Callable[..., Any], portal: str
) -> None:
    page = new_page()
    sign_in(page, "mia", password="not-the-password-1")
    error = page.locator("#login-error")
    assert error.is_visible()
    assert error.inner_text().strip() == translate("login.error", "en")
    assert not any(c["name"] == "crm_session" for c in page.context.cookies())
    page.goto("/")
    assert page.url.startswith(f"{portal}/login")


def test_browsing_a_list_shows_its_groups_and_chart(
    signed_in: Callable[[str], Any], published: Published
) -> None:
    page = signed_in("marketer")
    open_list(page)
    assert LIST in page.inner_text("#list-title")
    assert AS_OF in page.inner_text("#list-title")
    groups = page.locator("#groups tbody tr[data-group]")
    forecast = published.list_entry(LIST).get("forecast") or {}
    assert groups.count() >= 1
    if forecast.get("groups"):
        assert groups.count() == len(forecast["groups"])
    page.wait_for_function(CHART_LOADED, arg="#group-chart")
    assert page.eval_on_selector("#group-chart", "img => img.naturalWidth") > 0


def test_downloading_the_xlsx_matches_the_manifest(
    signed_in: Callable[[str], Any], published: Published, tmp_path: Path
) -> None:
    page = signed_in("marketer")
    open_list(page)
    got = download(page, 'a.download[data-file$=".xlsx"]')
    assert got.suggested_filename == f"{LIST}.xlsx"
    saved = tmp_path / got.suggested_filename
    got.save_as(saved)
    assert sha256(saved) == published.manifest["files"][f"{LIST}.xlsx"]["sha256"]
    workbook = openpyxl.load_workbook(saved, read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    assert "member_id" in rows[0]
    assert len(rows) - 1 == published.list_entry(LIST)["send"]


def test_a_marketer_gets_no_control_file(
    signed_in: Callable[[str], Any], published: Published
) -> None:
    page = signed_in("marketer")
    open_list(page)
    assert page.locator("a.download").count() >= 2  # the send files are there
    assert page.locator('a.download[data-file$="_control.csv"]').count() == 0
    assert page.locator('[data-file$="_control.csv"]').count() == 0
    response = page.request.get(f"/download/{AS_OF}/{LIST}_control.csv")
    assert response.status == 403
    assert "attachment" not in (response.headers.get("content-disposition") or "")


def test_an_analyst_downloads_the_control_file(
    signed_in: Callable[[str], Any], published: Published, tmp_path: Path
) -> None:
    page = signed_in("analyst")
    open_list(page)
    link = f'a.download[data-file="{LIST}_control.csv"]'
    assert page.locator(link).count() == 1
    got = download(page, link)
    saved = tmp_path / got.suggested_filename
    got.save_as(saved)
    assert saved.name == f"{LIST}_control.csv"
    assert sha256(saved) == published.manifest["files"][saved.name]["sha256"]
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert "member_id" in rows[0]
    assert len(rows) - 1 == published.list_entry(LIST)["control"]


def test_an_admin_sees_sign_ins_and_downloads_in_the_audit_log(
    signed_in: Callable[[str], Any], published: Published
) -> None:
    marketer = signed_in("marketer")
    open_list(marketer)
    download(marketer, f'a.download[data-file="{LIST}.xlsx"]')
    # a marketer may not open the audit log
    assert marketer.request.get("/admin/audit").status == 403

    admin = signed_in("admin")
    admin.click('#nav a[href="/admin/audit"]')
    admin.wait_for_selector("#audit")
    rows = audit_rows(admin)
    assert rows, "empty audit log"
    signed = {r["user"] for r in rows if r["action"] == "sign_in"}
    assert {"mia", "ada"} <= signed
    send = f"{published.list_entry(LIST)['send']:,}"
    assert any(
        r["action"] == "download"
        and r["user"] == "mia"
        and r["file"] == f"{AS_OF}/{LIST}.xlsx"
        and r["rows"] == send
        for r in rows
    ), [r for r in rows if r["action"] == "download"]
    ids = admin.eval_on_selector_all("#audit tbody tr[data-id]", "rs => rs.map(r => +r.dataset.id)")
    assert ids == sorted(ids, reverse=True), "newest first"


def test_the_chinese_pages_show_chinese_labels(
    signed_in: Callable[[str], Any], new_page: Callable[..., Any]
) -> None:
    page = signed_in("marketer")
    page.goto("/?lang=zh")
    assert page.get_attribute("html", "lang") == "zh-CN"
    nav = page.inner_text("#nav")
    for key in ("nav.lists", "nav.results", "nav.sign_out"):
        assert translate(key, "zh") in nav, key
    assert translate("day.title", "zh", as_of=AS_OF) in page.inner_text("main")
    # the choice sticks (cookie) on the next page, a list page
    page.goto(list_url())
    assert translate("list.groups", "zh") in page.inner_text("main")
    page.goto("/?lang=en")
    assert translate("nav.lists", "en") in page.inner_text("#nav")

    # a browser that prefers Chinese gets the Chinese sign-in page
    chinese = new_page(locale="zh-CN")
    chinese.goto("/login")
    assert translate("login.title", "zh") in chinese.inner_text("main")
    assert chinese.inner_text("#sign-in").strip() == translate("login.submit", "zh")


PAGES = {
    "marketer": ["/", "/days", f"/days/{AS_OF}", "/results", "/status"],
    "analyst": ["/exclusions", "/model"],
    "admin": ["/admin/users", "/admin/audit"],
}
EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
DIGITS = re.compile(r"\d[\d ()+.\-]{9,}\d")


def personal_data_in(html: str, published: Published) -> list[str]:
    """Phones (any separators, with or without +86) and emails of the members file."""
    found = sorted({e.lower() for e in EMAIL.findall(html)} & set(published.emails))
    phones = set(published.phones)
    for run in DIGITS.findall(html):
        digits = re.sub(r"\D", "", run)
        found += [
            digits[i : i + 11] for i in range(len(digits) - 10) if digits[i : i + 11] in phones
        ]
    return found


def test_no_page_shows_a_phone_or_email(
    signed_in: Callable[[str], Any], published: Published
) -> None:
    lists = [list_url(item["list"]) for item in published.manifest["lists"]]
    seen: list[str] = []
    allowed: list[str] = []
    for role in ("marketer", "analyst", "admin"):
        page = signed_in(role)
        allowed += PAGES[role]
        for url in [*allowed, *lists]:
            for lang in ("en", "zh"):
                response = page.goto(f"{url}?lang={lang}")
                assert response is not None and response.ok, (role, url, response.status)
                html = page.content()
                assert personal_data_in(html, published) == [], (role, url, lang)
                seen.append(url)
        # the masked preview is there, and masked
        page.goto(list_url())
        if page.locator("#preview").count():
            assert personal_data_in(page.inner_text("#preview"), published) == []
    assert len(seen) >= 2 * (len(lists) + 9)
    # the scan does find them: a send file holds phones and emails
    send = (published.folder / f"{LIST}.csv").read_text(encoding="utf-8-sig")
    assert personal_data_in(send, published)


def test_mark_as_sent_shows_in_the_marks(signed_in: Callable[[str], Any]) -> None:
    page = signed_in("marketer")
    open_list(page)
    form = page.locator("#mark-sent")
    assert form.locator('input[name="csrf_token"]').count() == 1
    channel = form.locator("#channel option").first.get_attribute("value")
    form.locator("#sent_on").fill("2026-07-01")
    form.locator("#channel").select_option(channel)
    form.locator("#platform_campaign_id").fill("SMS-PLATFORM-4711")
    with page.expect_navigation():
        form.locator('[type="submit"]').click()
    assert page.url.split("#")[0].endswith(list_url())
    assert page.locator("#mark-error").count() == 0
    mark = page.locator("#marks tbody tr[data-mark]", has_text="SMS-PLATFORM-4711")
    assert mark.count() == 1
    text = mark.inner_text()
    assert "2026-07-01" in text and "mia" in text


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_screenshots_of_the_main_pages(new_page: Callable[..., Any], published: Published) -> None:
    """docs/portal/*.png (linked from docs/portal.md), overwritten on each run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page()
    shots = []

    def shoot(name: str) -> None:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    page.goto("/login")
    page.fill("#username", "ada")
    shoot("sign-in")
    page.fill("#password", USERS["ada"][1])
    with page.expect_navigation():
        page.click("#sign-in")
    page.wait_for_selector("#lists")
    shoot("lists")
    open_list(page)
    page.wait_for_function(CHART_LOADED, arg="#group-chart")
    shoot("list")
    page.goto("/results")
    page.wait_for_selector("#results")
    page.wait_for_function(CHART_LOADED, arg="#where-to-stop")
    shoot("results")
    page.goto("/admin/audit")
    page.wait_for_selector("#audit")
    shoot("audit")
    for path in shots:
        assert png_size(path) == (VIEWPORT["width"], VIEWPORT["height"]), path
