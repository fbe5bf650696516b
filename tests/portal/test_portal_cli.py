"""`crm users add|disable|list` and `crm serve` (CliRunner; passwords on stdin)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from orchestration import cli
from orchestration.portal import auth
from orchestration.portal.store import Store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CRM_* pointing into tmp_path; the portal file beside the warehouse."""
    monkeypatch.setenv("CRM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("CRM_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.delenv("CRM_PORTAL_DB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path / "portal.sqlite3"


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input)


def test_add_hashes_with_argon2id(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_hasher", PasswordHasher())  # the production parameters
    result = _run("users", "add", "alice", "--role", "marketer", input="correct horse 1\n" * 2)
    assert result.exit_code == 0, result.output
    assert "added alice (marketer)" in result.output
    assert "correct horse" not in result.output
    user = Store(env).user("alice")
    assert user is not None and user.role == "marketer" and not user.disabled
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert auth.verify_password(user.password_hash, "correct horse 1")
    con = sqlite3.connect(env)
    (row,) = con.execute("select user, action, detail, address from audit").fetchall()
    con.close()
    assert row[0].startswith("cli") and row[1:] == ("user_added", "alice as marketer", "cli")
    assert oct(env.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("first-password-1\nsecond-password-2\n", "differ"),
        ("short\nshort\n", "too short"),
        ("only-one-line-given\n", "twice"),
    ],
)
def test_add_refuses_bad_passwords(env: Path, stdin: str, message: str) -> None:
    result = _run("users", "add", "bob", "--role", "analyst", input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert Store(env).user("bob") is None


def test_add_refuses_a_duplicate(env: Path) -> None:
    assert (
        _run("users", "add", "carol", "--role", "admin", input="a-long-password\n" * 2).exit_code
        == 0
    )
    result = _run("users", "add", "carol", "--role", "marketer", input="other-password-9\n" * 2)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert Store(env).user("carol").role == "admin"  # type: ignore[union-attr]


def test_add_refuses_an_unknown_role_naming_the_allowed_ones(env: Path) -> None:
    result = _run("users", "add", "dave", "--role", "boss", input="a-long-password\n" * 2)
    assert result.exit_code == 2
    for role in ("marketer", "analyst", "admin"):
        assert role in result.output
    assert "--role" in _run("users", "add", "dave", input="x\n").output  # required


@pytest.mark.parametrize("name", ["with space", "a/b", "", "x" * 65, "semi;colon"])
def test_add_refuses_odd_names(env: Path, name: str) -> None:
    result = _run("users", "add", name, "--role", "marketer", input="a-long-password\n" * 2)
    assert result.exit_code == 1
    assert "not allowed" in result.output


def test_list_shows_users_without_hashes(env: Path) -> None:
    _run("users", "add", "erin", "--role", "analyst", input="a-long-password\n" * 2)
    _run("users", "add", "frank", "--role", "admin", input="b-long-password\n" * 2)
    _run("users", "disable", "frank")
    result = _run("users", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "role", "disabled", "created"]
    assert lines[1].split()[:3] == ["erin", "analyst", "no"]
    assert lines[2].split()[:3] == ["frank", "admin", "yes"]
    assert "$argon2" not in result.output


def test_list_with_no_users_says_how_to_add_one(env: Path) -> None:
    result = _run("users", "list")
    assert result.exit_code == 0 and "crm users add" in result.output


def test_disable_ends_sessions(env: Path) -> None:
    _run("users", "add", "gina", "--role", "marketer", input="a-long-password\n" * 2)
    store = Store(env)
    authenticator = auth.Authenticator(store, 12)
    signed = authenticator.sign_in("gina", "a-long-password", "127.0.0.1")
    assert authenticator.session(signed.token) is not None
    result = _run("users", "disable", "gina")
    assert result.exit_code == 0 and "1 session(s) ended" in result.output
    assert authenticator.session(signed.token) is None
    assert authenticator.sign_in("gina", "a-long-password", "127.0.0.1").token is None


def test_disable_unknown_user(env: Path) -> None:
    result = _run("users", "disable", "nobody")
    assert result.exit_code == 1 and "crm users list" in result.output


def test_serve_without_users_says_how_to_add_one(env: Path) -> None:
    result = _run("serve")
    assert result.exit_code == 1
    assert "crm users add" in result.output and "--role" in result.output


def test_serve_uses_settings_and_flags(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    _run("users", "add", "hank", "--role", "marketer", input="a-long-password\n" * 2)
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setenv("CRM_PORTAL_PORT", "8123")
    assert _run("serve").exit_code == 0
    assert (calls[-1]["host"], calls[-1]["port"]) == ("127.0.0.1", 8123)
    assert _run("serve", "--host", "0.0.0.0", "--port", "9001").exit_code == 0
    assert (calls[-1]["host"], calls[-1]["port"]) == ("0.0.0.0", 9001)
    assert calls[-1]["app"].state.settings.portal_db == env


def test_portal_db_defaults_beside_the_warehouse(tmp_path: Path) -> None:
    from orchestration.settings import load_settings

    s = load_settings(env_file=None, warehouse=tmp_path / "warehouse.duckdb")
    assert s.portal_db == tmp_path / "portal.sqlite3"
    other = load_settings(env_file=None, warehouse=tmp_path / "cdnow.duckdb")
    assert other.portal_db == tmp_path / "portal-cdnow.sqlite3"
    given = load_settings(env_file=None, portal_db=tmp_path / "x" / "p.db")
    assert given.portal_db == tmp_path / "x" / "p.db"
    assert (s.portal_host, s.portal_port, s.portal_session_hours, s.portal_secure_cookie) == (
        "127.0.0.1",
        8000,
        12,
        False,
    )
