"""The portal's own SQLite file (CRM_PORTAL_DB): users, sessions, audit log, sign-in
failures and sent marks. Never the DuckDB warehouse.

The schema is created on first use (WAL mode, so the pipeline can read `sent_marks` while
the portal writes). `sent_marks` is read by the pipeline with Python's sqlite3: keep its
columns exactly as they are. Times are ISO 8601 in UTC (`2026-07-01T09:30:00+00:00`), so
they compare as text; `sent_on` and `as_of` are `YYYY-MM-DD`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestration.errors import CrmError

SCHEMA = """
create table if not exists users (
    name text primary key,
    role text not null,
    password_hash text not null,
    disabled integer not null default 0,
    created_at text not null
);
create table if not exists sessions (
    token_hash text primary key,
    user text not null,
    csrf_token text not null,
    created_at text not null,
    expires_at text not null,
    address text
);
create index if not exists sessions_by_user on sessions (user);
create table if not exists audit (
    id integer primary key autoincrement,
    at text not null,
    user text,
    action text not null,
    detail text,
    file text,
    rows integer,
    address text
);
create table if not exists sign_in_failures (
    user text,
    address text,
    at text not null
);
create index if not exists sign_in_failures_by_user on sign_in_failures (user, at);
create index if not exists sign_in_failures_by_address on sign_in_failures (address, at);
create table if not exists sent_marks (
    id integer primary key,
    as_of text,
    list_name text,
    campaign_id text,
    sent_on text,
    channel text,
    platform_campaign_id text,
    marked_by text,
    marked_at text,
    revoked integer default 0
);
"""

#: Audit actions (docs/portal.md).
ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_in_throttled",
    "sign_out",
    "download",
    "download_refused",
    "mark_sent",
    "mark_revoked",
    "refused",  # a page or form refused: the role may not, or the form's CSRF token failed
    "user_added",
    "user_disabled",
)


def utc_now() -> datetime:
    """Now in UTC, to the second (what the store writes)."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """A UTC timestamp as the store writes it."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: str


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    user: str
    role: str
    disabled: bool
    csrf_token: str
    created_at: str
    expires_at: str


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str
    user: str | None
    action: str
    detail: str | None
    file: str | None
    rows: int | None
    address: str | None


@dataclass(frozen=True)
class SentMark:
    id: int
    as_of: str
    list_name: str
    campaign_id: str
    sent_on: str
    channel: str
    platform_campaign_id: str | None
    marked_by: str
    marked_at: str
    revoked: bool


class Store:
    """Access to the portal's SQLite file; one short connection per operation (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_schema(self) -> None:
        with self._lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # password hashes and session data: readable by the owner only
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            try:
                con.execute("pragma journal_mode=wal")
                con.executescript(SCHEMA)
            finally:
                con.close()
            self._ready = True

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; use `with con:` blocks for transactions."""
        self._ensure_schema()
        con = sqlite3.connect(self.path, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            con.execute("pragma busy_timeout = 10000")
            yield con
        finally:
            con.close()

    # users ---------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str) -> User:
        created = iso(utc_now())
        with self.connect() as con:
            try:
                with con:
                    con.execute(
                        "insert into users (name, role, password_hash, disabled, created_at) "
                        "values (?, ?, ?, 0, ?)",
                        [name, role, password_hash, created],
                    )
            except sqlite3.IntegrityError:
                raise CrmError(
                    f"user {name!r} already exists; pick another name (`crm users list` shows them)"
                ) from None
        return User(name, role, password_hash, False, created)

    def user(self, name: str) -> User | None:
        with self.connect() as con:
            row = con.execute("select * from users where name = ?", [name]).fetchone()
        return _user(row) if row else None

    def users(self) -> list[User]:
        with self.connect() as con:
            rows = con.execute("select * from users order by name").fetchall()
        return [_user(r) for r in rows]

    def active_user_count(self) -> int:
        with self.connect() as con:
            return int(con.execute("select count(*) from users where not disabled").fetchone()[0])

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self.connect() as con, con:
            con.execute("update users set password_hash = ? where name = ?", [password_hash, name])

    def disable_user(self, name: str) -> int:
        """Disable the user and end their sessions; returns the number of sessions ended."""
        with self.connect() as con, con:
            found = con.execute("update users set disabled = 1 where name = ?", [name]).rowcount
            if not found:
                raise CrmError(f"no user {name!r}; `crm users list` shows the users")
            return con.execute("delete from sessions where user = ?", [name]).rowcount

    def session_counts(self, now: datetime) -> dict[str, int]:
        with self.connect() as con:
            rows = con.execute(
                "select user, count(*) from sessions where expires_at > ? group by user",
                [iso(now)],
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # sessions ------------------------------------------------------------------------

    def add_session(
        self,
        token_hash: str,
        user: str,
        csrf_token: str,
        created: datetime,
        expires: datetime,
        address: str | None,
    ) -> None:
        with self.connect() as con, con:
            con.execute("delete from sessions where expires_at <= ?", [iso(created)])
            con.execute(
                "insert into sessions (token_hash, user, csrf_token, created_at, expires_at, "
                "address) values (?, ?, ?, ?, ?, ?)",
                [token_hash, user, csrf_token, iso(created), iso(expires), address],
            )

    def session(self, token_hash: str) -> SessionRow | None:
        """The session with its user's current role and state (None: no such session)."""
        with self.connect() as con:
            row = con.execute(
                "select s.token_hash, s.user, u.role, u.disabled, s.csrf_token, s.created_at, "
                "s.expires_at from sessions as s join users as u on u.name = s.user "
                "where s.token_hash = ?",
                [token_hash],
            ).fetchone()
        if row is None:
            return None
        return SessionRow(
            row["token_hash"],
            row["user"],
            row["role"],
            bool(row["disabled"]),
            row["csrf_token"],
            row["created_at"],
            row["expires_at"],
        )

    def delete_session(self, token_hash: str) -> None:
        with self.connect() as con, con:
            con.execute("delete from sessions where token_hash = ?", [token_hash])

    # sign-in failures ----------------------------------------------------------------

    def add_failure(self, user: str, address: str | None, at: datetime) -> None:
        with self.connect() as con, con:
            con.execute(
                "insert into sign_in_failures (user, address, at) values (?, ?, ?)",
                [user, address, iso(at)],
            )

    def failures_since(
        self, user: str, address: str | None, since: datetime
    ) -> tuple[list[str], list[str]]:
        """Times of failed sign-ins after `since`, oldest first: (for this user name, from
        this address)."""
        with self.connect() as con:
            by_user = con.execute(
                "select at from sign_in_failures where user = ? and at > ? order by at",
                [user, iso(since)],
            ).fetchall()
            by_address = con.execute(
                "select at from sign_in_failures where address is ? and at > ? order by at",
                [address, iso(since)],
            ).fetchall()
        return [r[0] for r in by_user], [r[0] for r in by_address]

    def clear_failures(self, user: str, before: datetime) -> None:
        """Forget the user's failures (after a successful sign-in) and everyone's older ones."""
        with self.connect() as con, con:
            con.execute("delete from sign_in_failures where user = ?", [user])
            con.execute("delete from sign_in_failures where at <= ?", [iso(before)])

    # audit ---------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        user: str | None,
        address: str | None,
        detail: str | None = None,
        file: str | None = None,
        rows: int | None = None,
        at: datetime | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        with self.connect() as con, con:
            con.execute(
                "insert into audit (at, user, action, detail, file, rows, address) "
                "values (?, ?, ?, ?, ?, ?, ?)",
                [iso(at or utc_now()), user, action, detail, file, rows, address],
            )

    def audit_rows(self, limit: int = 200, before_id: int | None = None) -> list[AuditRow]:
        """Newest first; `before_id` pages back."""
        with self.connect() as con:
            rows = con.execute(
                "select * from audit where (? is null or id < ?) order by id desc limit ?",
                [before_id, before_id, limit],
            ).fetchall()
        return [
            AuditRow(
                r["id"],
                r["at"],
                r["user"],
                r["action"],
                r["detail"],
                r["file"],
                r["rows"],
                r["address"],
            )  # fmt: skip
            for r in rows
        ]

    # sent marks ----------------------------------------------------------------------

    def add_mark(
        self,
        *,
        as_of: str,
        list_name: str,
        campaign_id: str,
        sent_on: str,
        channel: str,
        platform_campaign_id: str | None,
        marked_by: str,
    ) -> int:
        with self.connect() as con, con:
            cur = con.execute(
                "insert into sent_marks (as_of, list_name, campaign_id, sent_on, channel, "
                "platform_campaign_id, marked_by, marked_at, revoked) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    as_of, list_name, campaign_id, sent_on, channel, platform_campaign_id,
                    marked_by, iso(utc_now()),
                ],
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def marks(self, as_of: str, list_name: str) -> list[SentMark]:
        with self.connect() as con:
            rows = con.execute(
                "select * from sent_marks where as_of = ? and list_name = ? order by id",
                [as_of, list_name],
            ).fetchall()
        return [_mark(r) for r in rows]

    def revoke_mark(self, mark_id: int, as_of: str, list_name: str) -> SentMark | None:
        """Revoke a mark of this day's list; None when there is no such live mark."""
        with self.connect() as con, con:
            row = con.execute(
                "select * from sent_marks where id = ? and as_of = ? and list_name = ? "
                "and not coalesce(revoked, 0)",
                [mark_id, as_of, list_name],
            ).fetchone()
            if row is None:
                return None
            con.execute("update sent_marks set revoked = 1 where id = ?", [mark_id])
        return _mark(row)


def _user(row: sqlite3.Row) -> User:
    return User(
        row["name"], row["role"], row["password_hash"], bool(row["disabled"]), row["created_at"]
    )


def _mark(row: sqlite3.Row) -> SentMark:
    return SentMark(
        int(row["id"]),
        row["as_of"],
        row["list_name"],
        row["campaign_id"],
        row["sent_on"],
        row["channel"],
        row["platform_campaign_id"],
        row["marked_by"],
        row["marked_at"],
        bool(row["revoked"]),
    )
