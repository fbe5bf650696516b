"""Roles, downloads (checksums, path traversal, audit) and what pages may show."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.portal import app as portal_app
from tests.portal.world import (
    DAY,
    OLD_DAY,
    PERSONAL,
    SECRET,
    World,
    audit_rows,
    csrf_of,
    sign_in,
)

LIST_PAGE = f"/days/{DAY}/lists/win_back"


def _manifest(world: World, day: str = DAY) -> dict:
    return json.loads((world.export_dir / day / "manifest.json").read_text(encoding="utf-8"))


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["win_back.csv", "win_back.xlsx", "win_back.parquet"])
def test_marketer_downloads_send_files(world: World, as_user, file: str) -> None:
    response = as_user("mia").get(f"/download/{DAY}/{file}")
    assert response.status_code == 200
    assert response.content == (world.export_dir / DAY / file).read_bytes()
    assert response.headers["content-disposition"] == f'attachment; filename="{file}"'
    assert hashlib.sha256(response.content).hexdigest() == _manifest(world)["files"][file]["sha256"]


def test_marketer_is_refused_the_control_file(world: World, as_user) -> None:
    client = as_user("mia")
    response = client.get(f"/download/{DAY}/win_back_control.csv")
    assert response.status_code == 403
    assert "member_id" not in response.text
    (row,) = audit_rows(world, "download_refused")
    assert row["user"] == "mia" and row["file"] == f"{DAY}/win_back_control.csv"
    assert "403" in row["detail"] and "analyst" in row["detail"]
    # and the list page does not offer it
    page = client.get(LIST_PAGE).text
    assert 'data-file="win_back.csv"' in page
    assert 'data-file="win_back_control.csv"' not in page


def test_analyst_gets_the_control_file(world: World, as_user) -> None:
    client = as_user("ann")
    assert 'class="download" data-file="win_back_control.csv"' in client.get(LIST_PAGE).text
    response = client.get(f"/download/{DAY}/win_back_control.csv")
    assert response.status_code == 200
    assert response.content == (world.export_dir / DAY / "win_back_control.csv").read_bytes()


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("mia", "/exclusions", 403),
        ("mia", "/model", 403),
        ("mia", "/model/plots/decile_lift.png", 403),
        ("mia", "/admin/users", 403),
        ("mia", "/admin/audit", 403),
        ("ann", "/exclusions", 200),
        ("ann", "/model", 200),
        ("ann", "/model/plots/decile_lift.png", 200),
        ("ann", "/admin/users", 403),
        ("ann", "/admin/audit", 403),
        ("ada", "/admin/users", 200),
        ("ada", "/admin/audit", 200),
        ("ada", "/exclusions", 200),
    ],
)
def test_page_access_by_role(as_user, user: str, path: str, status: int) -> None:
    response = as_user(user).get(path)
    assert response.status_code == status
    if status == 403:
        assert 'id="error-message"' in response.text


@pytest.mark.parametrize("user", ["mia", "ann", "ada"])
def test_every_role_sees_lists_results_and_status(as_user, user: str) -> None:
    client = as_user(user)
    for path in ("/", "/days", f"/days/{DAY}", LIST_PAGE, "/results", "/status"):
        assert client.get(path).status_code == 200, path


def test_admin_sees_users_without_hashes(world: World, as_user) -> None:
    html = as_user("ada").get("/admin/users").text
    assert 'id="users"' in html
    for name in ("mia", "ann", "ada"):
        assert f'data-user="{name}"' in html
    assert "$argon2" not in html


def test_admin_audit_newest_first(world: World, as_user) -> None:
    client = as_user("ada")
    client.get(f"/download/{DAY}/win_back.csv")
    html = client.get("/admin/audit").text
    assert 'id="audit"' in html
    assert html.index('data-action="download"') < html.index('data-action="sign_in"')


# --- downloads ----------------------------------------------------------------------------


def test_download_is_audited_with_who_when_file_rows_address(world: World, as_user) -> None:
    as_user("mia").get(f"/download/{DAY}/win_back.xlsx")
    (row,) = audit_rows(world, "download")
    sends = next(x["send"] for x in _manifest(world)["lists"] if x["list"] == "win_back")
    assert row["user"] == "mia"
    assert row["file"] == f"{DAY}/win_back.xlsx"
    assert row["rows"] == sends
    assert row["address"] == "testclient"
    assert row["at"].endswith("+00:00")


def test_control_download_audits_the_control_count(world: World, as_user) -> None:
    as_user("ann").get(f"/download/{DAY}/win_back_control.csv")
    (row,) = audit_rows(world, "download")
    control = next(x["control"] for x in _manifest(world)["lists"] if x["list"] == "win_back")
    assert row["rows"] == control


def test_checksum_mismatch_is_409_and_audited(world: World, as_user) -> None:
    client = as_user("mia")
    response = client.get(f"/download/{OLD_DAY}/win_back.csv")
    assert response.status_code == 409
    assert "intruder" not in response.text and "member_id" not in response.text
    (row,) = audit_rows(world, "download_refused")
    assert row["file"] == f"{OLD_DAY}/win_back.csv" and "409" in row["detail"]
    # the list page says so and offers no link
    page = client.get(f"/days/{OLD_DAY}/lists/win_back").text
    assert 'class="download" data-file="win_back.csv"' not in page
    assert 'class="broken" data-file="win_back.csv"' in page
    # the untouched files of that day are still served
    assert client.get(f"/download/{OLD_DAY}/win_back.xlsx").status_code == 200


def test_file_changed_after_the_page_was_rendered_is_refused(world: World, as_user) -> None:
    client = as_user("mia")
    assert client.get(LIST_PAGE).status_code == 200  # caches the checksum for display
    path = world.export_dir / DAY / "retention.csv"
    path.write_bytes(path.read_bytes().replace(b"sms", b"SMS"))
    assert client.get(f"/download/{DAY}/retention.csv").status_code == 409


def test_missing_file_listed_in_the_manifest_is_refused(world: World, as_user) -> None:
    (world.export_dir / DAY / "retention.parquet").unlink()
    response = as_user("mia").get(f"/download/{DAY}/retention.parquet")
    assert response.status_code == 409
    assert "missing" in audit_rows(world, "download_refused")[0]["detail"]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every path the app opens with open() / io.open() / Path.open() while a test runs."""
    seen: list[Path] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, str | bytes | os.PathLike):
            seen.append(Path(os.fsdecode(file)).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    yield seen


TRAVERSALS = [
    f"/download/{DAY}/..%2F..%2Fetc%2Fpasswd",
    f"/download/{DAY}/..%2F..%2Foutside%2Fpasswd",
    f"/download/{DAY}/..%2F..%2Fsecret.txt",
    "/download/..%2F..%2Fetc/passwd",
    "/download/..%2Foutside/passwd",
    f"/download/{DAY}/..%5C..%5Coutside%5Cpasswd",
    f"/download/{DAY}/%2E%2E%5C%2E%2E%5Csecret.txt",
    f"/download/{DAY}/%2Fetc%2Fpasswd",
    f"/download/{DAY}//etc/passwd",
    f"/download/{DAY}/{'%2F'.join(['..'] * 8)}%2Fetc%2Fpasswd",
    f"/download/{DAY}/manifest.json%00.csv",
    f"/download/{DAY}/.%2Fwin_back.csv",
    f"/download/{DAY}/win_back.csv%2F..%2F..%2F..%2Fsecret.txt",
    "/download/not-a-date/passwd",
    "/download/latest/win_back.csv",
    "/download/.published/win_back.csv",
    "/download/2026-13-45/win_back.csv",
    "/download/2026-06-30x/win_back.csv",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused_without_touching_other_files(
    world: World, as_user, opened: list[Path], path: str
) -> None:
    client = as_user("ada")  # the role that may download everything
    opened.clear()
    response = client.get(path)
    assert response.status_code == 404, path
    assert SECRET not in response.text
    assert "root:" not in response.text
    assert "attachment" not in response.headers.get("content-disposition", "")
    portal_files = Path(portal_app.__file__).resolve().parent
    export_dir = world.export_dir.resolve()
    for p in opened:
        assert p.is_relative_to(export_dir) or p.is_relative_to(portal_files), p
        assert not p.name.endswith(("passwd", "secret.txt")), p
    rows = audit_rows(world, "download_refused")
    assert len(rows) == 1 and "404" in rows[0]["detail"]


def test_a_file_in_the_folder_but_not_in_the_manifest_is_refused(world: World, as_user) -> None:
    extra = world.export_dir / DAY / "extra.csv"
    extra.write_text("member_id,phone\nM1,+8613900000000\n", encoding="utf-8")
    response = as_user("ada").get(f"/download/{DAY}/extra.csv")
    assert response.status_code == 404
    assert "+8613900000000" not in response.text
    assert "manifest" in audit_rows(world, "download_refused")[0]["detail"]


def _add_to_manifest(world: World, key: str, path: Path) -> None:
    manifest_path = world.export_dir / DAY / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest["files"][key] = {"bytes": path.stat().st_size, "sha256": digest}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


def test_a_manifest_naming_a_path_outside_its_folder_is_refused(world: World, as_user) -> None:
    secret = world.root / "secret.txt"
    _add_to_manifest(world, "../../secret.txt", secret)
    response = as_user("ada").get(f"/download/{DAY}/..%2F..%2Fsecret.txt")
    assert response.status_code == 404 and SECRET not in response.text


def test_a_symlink_out_of_the_folder_is_refused(world: World, as_user) -> None:
    secret = world.root / "outside" / "passwd"
    link = world.export_dir / DAY / "evil.csv"
    link.symlink_to(secret)
    _add_to_manifest(world, "evil.csv", secret)  # even with the right checksum
    response = as_user("ada").get(f"/download/{DAY}/evil.csv")
    assert response.status_code == 404 and SECRET not in response.text


def test_unknown_day_and_list_pages_are_404(as_user) -> None:
    client = as_user("mia")
    assert client.get("/days/2020-01-01").status_code == 404
    assert client.get(f"/days/{DAY}/lists/no_such_list").status_code == 404
    assert client.get("/days/not-a-date").status_code == 404
    assert client.get("/days/..%2F..%2Fetc").status_code == 404


def test_a_non_date_folder_is_not_a_day(as_user) -> None:
    html = as_user("mia").get("/days").text
    assert 'data-day="not-a-date"' not in html
    assert f'data-day="{DAY}"' in html and f'data-day="{OLD_DAY}"' in html


# --- what pages show ----------------------------------------------------------------------


def _all_pages(world: World, as_user) -> dict[str, str]:
    client = as_user("ada")
    client.get(f"/download/{DAY}/win_back.csv")
    token = csrf_of(client.get(LIST_PAGE).text)
    client.post(
        f"{LIST_PAGE}/sent",
        data={"csrf_token": token, "sent_on": "2026-07-01", "channel": "sms"},
    )
    paths = [
        "/",
        "/days",
        f"/days/{DAY}",
        f"/days/{OLD_DAY}",
        "/results",
        "/status",
        "/exclusions",
        "/model",
        "/admin/users",
        "/admin/audit",
    ]
    for day in (DAY, OLD_DAY):
        for name in ("win_back", "retention"):
            paths.append(f"/days/{day}/lists/{name}")
    pages = {p: client.get(p) for p in paths}
    for lang in ("zh", "en"):
        pages[f"{LIST_PAGE}?lang={lang}"] = client.get(f"{LIST_PAGE}?lang={lang}")
    failed = sign_in(world.make_client(), "mia", "+8613912345671")  # a phone as password
    pages["failed sign-in"] = failed
    assert all(r.status_code == 200 for r in pages.values()), {
        p: r.status_code for p, r in pages.items() if r.status_code != 200
    }
    return {p: r.text for p, r in pages.items()}


def test_no_personal_data_on_any_page(world: World, as_user) -> None:
    pages = _all_pages(world, as_user)
    for path, html in pages.items():
        for value in PERSONAL:
            assert value not in html, f"{value!r} on {path}"
        assert "SECRET" not in html, f"a coupon code on {path}"


def test_the_preview_is_masked(world: World, as_user) -> None:
    html = as_user("mia").get(LIST_PAGE).text
    preview = html[html.index('id="preview"') : html.index("</table>", html.index('id="preview"'))]
    assert "****" in preview  # masked phones
    assert "***@" in preview  # masked emails
    assert preview.count("<tr>") == 11  # header + 10 rows
    assert "coupon_code" not in preview


def test_data_from_files_and_warehouse_is_escaped(world: World, as_user) -> None:
    client = as_user("ada")
    html = client.get("/exclusions").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    card = client.get("/model").text
    assert "<script>alert('card')</script>" not in card
    assert "<table>" in card  # the card's Markdown table is rendered


def test_exclusion_dates_are_folded(as_user) -> None:
    html = as_user("ann").get("/exclusions").text
    assert "2026-06-25" not in html
    assert "contacted on … (cool-down 7 days)" in html


def test_refused_pages_and_forms_are_in_the_audit_log(world: World, as_user) -> None:
    client = as_user("mia")
    assert client.get("/admin/audit").status_code == 403
    response = client.post(f"{LIST_PAGE}/sent", data={"sent_on": DAY, "csrf_token": "forged"})
    assert response.status_code == 403
    details = [(r["user"], r["detail"]) for r in audit_rows(world, "refused")]
    assert ("mia", "GET /admin/audit needs admin") in details
    assert ("mia", f"POST {LIST_PAGE}/sent: missing or wrong CSRF token") in details
