"""Sign-in, sessions, CSRF, throttling, cookies, headers and the language switch."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from orchestration.portal.auth import THROTTLE_FAILURES
from tests.portal.world import DAY, PASSWORDS, World, audit_rows, csrf_of, sign_in


def _sessions(world: World, user: str) -> int:
    con = sqlite3.connect(world.settings.portal_db)
    try:
        return con.execute("select count(*) from sessions where user = ?", [user]).fetchone()[0]
    finally:
        con.close()


def test_login_page_has_the_contract_ids(world: World) -> None:
    page = world.make_client().get("/login")
    assert page.status_code == 200
    for fragment in (
        'id="login-form"',
        'name="username" id="username"',
        'name="password" id="password"',
        'type="hidden" name="csrf_token"',
        'id="sign-in"',
    ):
        assert fragment in page.text
    assert 'id="login-error"' not in page.text


@pytest.mark.parametrize(
    "path", ["/", "/days", f"/days/{DAY}", "/results", "/status", "/admin/audit", "/model"]
)
def test_every_page_needs_a_session(world: World, path: str) -> None:
    response = world.make_client().get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={quote(path, safe='')}"


def test_download_without_session_redirects_and_serves_nothing(world: World) -> None:
    response = world.make_client().get(f"/download/{DAY}/win_back.csv")
    assert response.status_code == 303
    assert "member_id" not in response.text


def test_static_files_need_no_session(world: World) -> None:
    response = world.make_client().get("/static/portal.css")
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]


def test_sign_in_sets_a_strict_httponly_session_cookie_and_audits(world: World) -> None:
    client = world.make_client()
    response = sign_in(client, "mia")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("crm_session=")
    )
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/" in lowered
    assert "secure" not in lowered.replace("crm_session=", "")  # plain HTTP by default
    token = cookie.split(";")[0].split("=", 1)[1]
    # only the token's hash is stored
    con = sqlite3.connect(world.settings.portal_db)
    stored = [r[0] for r in con.execute("select token_hash from sessions").fetchall()]
    con.close()
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64
    assert client.get("/").status_code == 200
    (row,) = audit_rows(world, "sign_in")
    assert row["user"] == "mia" and row["address"] == "testclient" and row["at"]


def test_every_cookie_is_httponly_and_strict(world: World) -> None:
    client = world.make_client()
    cookies = client.get("/login?lang=zh").headers.get_list("set-cookie")
    cookies += sign_in(client, "mia").headers.get_list("set-cookie")
    assert {c.split("=", 1)[0] for c in cookies} >= {"crm_login_csrf", "lang", "crm_session"}
    for cookie in cookies:
        assert "httponly" in cookie.lower(), cookie
        assert "samesite=strict" in cookie.lower(), cookie


def test_secure_cookie_setting_marks_cookies_secure(world: World) -> None:
    client = world.make_client(portal_secure_cookie=True)
    client.base_url = client.base_url.copy_with(scheme="https")
    page = client.get("/login")
    assert all("secure" in c.lower() for c in page.headers.get_list("set-cookie"))
    response = sign_in(client, "mia")
    session_cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("crm_session=")
    )
    assert "; secure" in session_cookie.lower()
    assert "strict-transport-security" in response.headers


def test_failed_sign_ins_look_the_same_and_are_audited(world: World) -> None:
    world.store.disable_user("ann")
    texts = []
    for name, password in (("nobody", "whatever-1234"), ("mia", "wrong-password"), ("ann", None)):
        client = world.make_client()
        response = sign_in(client, name, password)
        assert response.status_code == 200
        assert 'id="login-error"' in response.text
        assert "crm_session" not in response.headers.get("set-cookie", "")
        start = response.text.index('id="login-error"')
        texts.append(response.text[start : response.text.index("</p>", start)])
    assert len(set(texts)) == 1  # same message for unknown user, wrong password, disabled
    rows = audit_rows(world, "sign_in_failed")
    # an unknown name is not written down (it may be a password typed in the wrong box)
    assert [(r["user"], r["detail"]) for r in rows] == [
        (None, "unknown user"),
        ("mia", "password"),
        ("ann", "disabled"),
    ]


def test_sixth_attempt_is_throttled_even_with_the_right_password(world: World) -> None:
    client = world.make_client()
    for _ in range(THROTTLE_FAILURES):
        assert sign_in(client, "mia", "not-the-password").status_code == 200
    response = sign_in(client, "mia")  # right password, but too late
    assert response.status_code == 429
    assert 'id="login-error"' in response.text
    assert "Wait" in response.text
    assert int(response.headers["retry-after"]) > 0
    assert "crm_session" not in response.headers.get("set-cookie", "")
    (row,) = audit_rows(world, "sign_in_throttled")
    assert row["user"] == "mia" and row["address"] == "testclient"
    assert len(audit_rows(world, "sign_in_failed")) == THROTTLE_FAILURES


def test_throttling_per_address_covers_other_user_names(world: World) -> None:
    client = world.make_client()
    for i in range(THROTTLE_FAILURES):
        sign_in(client, f"guess{i}", "not-the-password")
    response = sign_in(client, "ada")
    assert response.status_code == 429
    assert "this address" in audit_rows(world, "sign_in_throttled")[0]["detail"]


def test_throttle_window_passes(world: World) -> None:
    client = world.make_client()
    for _ in range(THROTTLE_FAILURES):
        sign_in(client, "mia", "not-the-password")
    con = sqlite3.connect(world.settings.portal_db)
    with con:
        con.execute("update sign_in_failures set at = '2000-01-01T00:00:00+00:00'")
    con.close()
    assert sign_in(client, "mia").status_code == 303


def test_login_csrf_missing_or_wrong_is_refused(world: World) -> None:
    client = world.make_client()
    client.get("/login")
    form = {"username": "mia", "password": PASSWORDS["mia"]}
    assert client.post("/login", data=form).status_code == 403
    assert client.post("/login", data={**form, "csrf_token": "forged"}).status_code == 403
    # a token from another browser's cookie does not help either
    other = world.make_client()
    other_token = csrf_of(other.get("/login").text)
    assert client.post("/login", data={**form, "csrf_token": other_token}).status_code == 403
    assert not audit_rows(world, "sign_in")


def test_next_is_followed_only_when_local(world: World) -> None:
    client = world.make_client()
    assert sign_in(client, "mia", next=f"/days/{DAY}").headers["location"] == f"/days/{DAY}"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        client = world.make_client()
        assert sign_in(client, "mia", next=bad).headers["location"] == "/"


def test_sign_out_ends_the_session_and_audits(world: World, as_user) -> None:
    client = as_user("mia")
    token = csrf_of(client.get("/").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert _sessions(world, "mia") == 0
    assert client.get("/").status_code == 303
    (row,) = audit_rows(world, "sign_out")
    assert row["user"] == "mia" and row["address"] == "testclient"


def _post_routes(client) -> list[tuple[str, dict[str, str]]]:
    """Every POST route with a valid form except for the CSRF token."""
    page = client.get(f"/days/{DAY}/lists/win_back")
    token = csrf_of(page.text)
    client.post(
        f"/days/{DAY}/lists/win_back/sent",
        data={"csrf_token": token, "sent_on": "2026-07-01", "channel": "sms"},
    )
    return [
        ("/logout", {}),
        (f"/days/{DAY}/lists/win_back/sent", {"sent_on": "2026-07-01", "channel": "sms"}),
        (f"/days/{DAY}/lists/win_back/sent/1/revoke", {}),
    ]


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_csrf_missing_or_wrong_on_every_post_route_is_403(
    world: World, as_user, token: str | None
) -> None:
    client = as_user("ada")
    for path, form in _post_routes(client):
        data = form if token is None else {**form, "csrf_token": token}
        response = client.post(path, data=data)
        assert response.status_code == 403, path
        assert 'id="error-message"' in response.text
    # nothing happened: still signed in, the mark made by the valid post is still live
    assert client.get("/").status_code == 200
    con = sqlite3.connect(world.settings.portal_db)
    assert con.execute("select count(*), sum(revoked) from sent_marks").fetchone() == (1, 0)
    con.close()


def test_another_sessions_csrf_token_is_refused(world: World, as_user) -> None:
    mia, ada = as_user("mia"), as_user("ada")
    ada_token = csrf_of(ada.get("/").text)
    assert mia.post("/logout", data={"csrf_token": ada_token}).status_code == 403


def test_expired_session_needs_a_new_sign_in(world: World, as_user) -> None:
    client = as_user("mia")
    assert client.get("/").status_code == 200
    con = sqlite3.connect(world.settings.portal_db)
    with con:
        con.execute("update sessions set expires_at = '2000-01-01T00:00:00+00:00'")
    con.close()
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert _sessions(world, "mia") == 0  # the expired session is gone


def test_session_lifetime_follows_the_setting(world: World) -> None:
    client = world.make_client(portal_session_hours=3)
    cookie = next(
        c
        for c in sign_in(client, "mia").headers.get_list("set-cookie")
        if c.startswith("crm_session=")
    )
    assert "max-age=10800" in cookie.lower()
    con = sqlite3.connect(world.settings.portal_db)
    created, expires = con.execute("select created_at, expires_at from sessions").fetchone()
    con.close()
    from datetime import datetime

    hours = (datetime.fromisoformat(expires) - datetime.fromisoformat(created)).total_seconds()
    assert hours == 3 * 3600


def test_disabled_user_loses_sessions_and_cannot_sign_in(world: World, as_user) -> None:
    client = as_user("mia")
    assert client.get("/").status_code == 200
    world.store.disable_user("mia")
    assert client.get("/").status_code == 303
    response = sign_in(world.make_client(), "mia")
    assert response.status_code == 200 and 'id="login-error"' in response.text


def test_disabled_user_whose_session_row_survived_is_still_refused(world: World, as_user) -> None:
    client = as_user("mia")
    con = sqlite3.connect(world.settings.portal_db)
    with con:  # disabled without ending sessions (e.g. an edit by hand)
        con.execute("update users set disabled = 1 where name = 'mia'")
    con.close()
    assert client.get("/").status_code == 303
    assert _sessions(world, "mia") == 0


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/",
        f"/days/{DAY}/lists/win_back",
        f"/download/{DAY}/win_back.csv",
        "/static/portal.css",
        "/no-such-page",
        f"/days/{DAY}/lists/win_back/chart.png",
    ],
)
def test_security_headers_on_every_response(world: World, as_user, path: str) -> None:
    client = as_user("ada")
    response = client.get(path)
    assert response.status_code in (200, 303, 404)  # /login when signed in: 303 to /
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    if not path.startswith("/static/"):
        assert response.headers["cache-control"] == "no-store"


def test_pages_load_nothing_from_elsewhere_and_have_no_inline_script(world, as_user) -> None:
    client = as_user("ada")
    for path in ("/login", "/", f"/days/{DAY}/lists/win_back", "/results", "/admin/audit"):
        html = client.get(path).text
        assert "http://" not in html and "https://" not in html, path
        assert "<script" not in html, path
        assert "style=" not in html, path  # CSP blocks inline styles


def test_nav_shows_user_language_links_and_sign_out(world: World, as_user) -> None:
    html = as_user("mia").get("/").text
    nav = html[html.index('id="nav"') : html.index("</nav>")]
    assert "mia" in nav
    assert 'href="?lang=zh"' in nav and 'href="?lang=en"' in nav
    assert 'id="sign-out"' in nav
    assert "/admin/audit" not in nav and "/exclusions" not in nav  # not for marketers


def test_language_switch_is_remembered(world: World, as_user) -> None:
    client = as_user("mia")
    assert "Campaign lists" in client.get("/").text
    zh = client.get("/?lang=zh")
    assert "营销名单" in zh.text and '<html lang="zh-CN">' in zh.text
    assert "lang=zh" in zh.headers["set-cookie"]
    assert "营销名单" in client.get("/days").text or "已发布的日期" in client.get("/days").text
    assert "营销名单" in client.get("/").text  # the cookie keeps it
    en = client.get("/?lang=en")
    assert "Campaign lists" in en.text and '<html lang="en">' in en.text
    assert "Campaign lists" in client.get("/").text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh-TW", "zh"),
        ("de-DE,de;q=0.9", "en"),
        ("en;q=0.5,zh;q=0.8", "zh"),
        ("", "en"),
    ],
)
def test_default_language_follows_accept_language(world: World, header: str, expected: str) -> None:
    page = world.make_client().get("/login", headers={"Accept-Language": header})
    assert ("登录" in page.text) == (expected == "zh")


def test_a_post_without_session_goes_to_sign_in_without_next(world: World) -> None:
    response = world.make_client().post(
        f"/days/{DAY}/lists/win_back/sent", data={"sent_on": "2026-07-01"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2F"


def test_an_over_long_password_never_matches(world: World) -> None:
    world.store.users()
    response = sign_in(world.make_client(), "mia", PASSWORDS["mia"] + "x" * 2000)
    assert response.status_code == 200 and 'id="login-error"' in response.text


def test_parallel_wrong_passwords_cannot_outrun_the_throttle(world: World) -> None:
    """Twenty sign-ins at once for one user: only the first five are checked."""
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_: int) -> int:
        return sign_in(world.make_client(), "mia", "not-the-password").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(attempt, range(20)))
    assert codes.count(200) == THROTTLE_FAILURES
    assert codes.count(429) == 20 - THROTTLE_FAILURES
    assert len(audit_rows(world, "sign_in_failed")) == THROTTLE_FAILURES
