"""What the browser tests share: the day, the users, the viewport, the published data and
signing in (the fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

AS_OF = "2026-06-30"
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "portal"

#: user name -> (role, password); added through the CLI as an operator would.
USERS = {
    "mia": ("marketer", "marketer-password-1"),
    "ann": ("analyst", "analyst-password-22"),
    "ada": ("admin", "admin-password-333"),
}
ROLE_USER = {role: name for name, (role, _) in USERS.items()}


@dataclass
class Published:
    root: Path
    settings: Any  # orchestration.settings.Settings
    as_of: str
    manifest: dict[str, Any]
    phones: list[str]  # the members file's phones, digits only (without a leading 86)
    emails: list[str]  # lower case

    @property
    def folder(self) -> Path:
        return self.settings.export_dir / self.as_of

    def list_entry(self, name: str) -> dict[str, Any]:
        return next(item for item in self.manifest["lists"] if item["list"] == name)


def sign_in(page: Any, name: str, password: str | None = None) -> None:
    """Fill and submit the sign-in form (the user's own password unless one is given)."""
    page.goto("/login")
    page.fill("#username", name)
    page.fill("#password", USERS[name][1] if password is None else password)
    with page.expect_navigation():
        page.click("#sign-in")
