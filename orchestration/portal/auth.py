"""Accounts, passwords, sessions, CSRF tokens and sign-in throttling.

- Passwords: argon2id (argon2-cffi defaults), at least 10 characters; no default account
  and no password in configuration (`crm users add` sets them).
- Sessions: a random 32-byte token in the `crm_session` cookie; only its SHA-256 is
  stored, so a copy of the SQLite file does not sign anyone in. A session ends at sign-out,
  after CRM_PORTAL_SESSION_HOURS, or when its user is disabled.
- CSRF: one random token per session, required in every POST form; the sign-in form uses
  a pre-session token (cookie + form field, compared in constant time).
- Throttling: 5 failed sign-ins per user name or per address within 15 minutes, then
  HTTP 429 until the oldest of them is 15 minutes old.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from orchestration.errors import CrmError
from orchestration.portal.store import Store, User, iso, utc_now

#: Lowest to highest: each role may do everything the roles before it may.
ROLES = ("marketer", "analyst", "admin")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
THROTTLE_FAILURES = 5
#: one sign-in check at a time in this process (see Auth.sign_in)
_SIGN_IN_LOCK = threading.Lock()
THROTTLE_WINDOW = timedelta(minutes=15)
_NAME = re.compile(r"[\w.@-]{1,64}")

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def role_at_least(role: str, needed: str) -> bool:
    """True when `role` may do what `needed` may (marketer < analyst < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_name(name: str) -> str:
    """A user name: 1-64 letters, digits, `_`, `.`, `@` or `-` (no spaces)."""
    if not _NAME.fullmatch(name):
        raise CrmError(
            f"user name {name!r} is not allowed; use 1-64 letters, digits, '_', '.', '@' or '-'"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise CrmError(f"role {role!r} is unknown; choose one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CrmError(
            f"the password is too short ({len(password)} characters); use at least "
            f"{MIN_PASSWORD_LENGTH}, e.g. a few unrelated words"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CrmError(f"the password is too long; use at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _equalise_timing(password: str) -> None:
    """Spend the time of a real verification, so an unknown name answers as slowly."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


def create_user(store: Store, name: str, role: str, password: str) -> User:
    """Check and add a user (the password is stored only as its argon2 hash)."""
    check_name(name)
    check_role(role)
    check_password(password)
    if store.user(name) is not None:
        raise CrmError(
            f"user {name!r} already exists; pick another name (`crm users list` shows them)"
        )
    return store.add_user(name, role, hash_password(password))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A random 32-byte token, URL-safe text."""
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _retry_after(failures: list[str], now: datetime) -> int:
    """Seconds until fewer than THROTTLE_FAILURES of these (sorted) failures are in the
    window; 0 when that is already so."""
    excess = len(failures) - THROTTLE_FAILURES
    if excess < 0:
        return 0
    frees_at = datetime.fromisoformat(failures[excess]) + THROTTLE_WINDOW
    return max(int((frees_at - now).total_seconds()) + 1, 1)


class SignInOutcome(Enum):
    OK = "ok"
    FAILED = "failed"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SignIn:
    outcome: SignInOutcome
    token: str | None = None  # the new session's cookie value (OK only)
    user: User | None = None
    retry_after_seconds: int = 0  # THROTTLED: when the oldest counted failure expires


@dataclass(frozen=True)
class Session:
    """A signed-in request's user."""

    user: str
    role: str
    csrf_token: str
    token_hash: str
    expires_at: str

    def may(self, needed: str) -> bool:
        return role_at_least(self.role, needed)


class Authenticator:
    """Sign-in, sessions and throttling on top of the store; `clock` is UTC now."""

    def __init__(
        self,
        store: Store,
        session_hours: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.session_lifetime = timedelta(hours=session_hours)
        self.clock = clock

    def sign_in(self, name: str, password: str, address: str | None) -> SignIn:
        """Check a sign-in attempt (throttled first), audit it, and open a session.

        Attempts are checked one at a time: the throttle counts every earlier attempt
        (parallel requests cannot all pass the count before the first failure is
        recorded), and at most one password hash is computed at once (memory, CPU)."""
        with _SIGN_IN_LOCK:
            return self._sign_in(name, password, address)

    def _sign_in(self, name: str, password: str, address: str | None) -> SignIn:
        now = self.clock()
        name = name.strip()[:64]
        if len(password) > MAX_PASSWORD_LENGTH:  # longer than any stored one: cannot match
            password = ""
        since = now - THROTTLE_WINDOW
        user = self.store.user(name) if name else None
        # the audit log names a user only if the name is one: a password typed into the
        # name box must not end up in a log that admins read
        who = user.name if user is not None else None
        by_user, by_address = self.store.failures_since(name, address, since)
        if len(by_user) >= THROTTLE_FAILURES or len(by_address) >= THROTTLE_FAILURES:
            which = "this user" if len(by_user) >= THROTTLE_FAILURES else "this address"
            self.store.audit(
                "sign_in_throttled",
                user=who,
                address=address,
                detail=f"{max(len(by_user), len(by_address))} failed sign-ins in "
                f"{int(THROTTLE_WINDOW.total_seconds() // 60)} minutes ({which})",
                at=now,
            )
            wait = max(_retry_after(times, now) for times in (by_user, by_address))
            return SignIn(SignInOutcome.THROTTLED, retry_after_seconds=wait)
        if user is None:
            _equalise_timing(password)
            ok = False
        else:
            ok = verify_password(user.password_hash, password) and not user.disabled
        if not ok:
            self.store.add_failure(name, address, now)
            why = "unknown user" if user is None else "disabled" if user.disabled else "password"
            self.store.audit("sign_in_failed", user=who, address=address, detail=why, at=now)
            return SignIn(SignInOutcome.FAILED)
        assert user is not None
        if _hasher.check_needs_rehash(user.password_hash):
            self.store.set_password_hash(user.name, hash_password(password))
        self.store.clear_failures(user.name, before=since)
        token = new_token()
        self.store.add_session(
            token_hash(token), user.name, new_token(), now, now + self.session_lifetime, address
        )
        self.store.audit("sign_in", user=user.name, address=address, at=now)
        return SignIn(SignInOutcome.OK, token=token, user=user)

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie value; an expired one (or a disabled user's) ends."""
        if not token or len(token) > 200:
            return None
        hashed = token_hash(token)
        row = self.store.session(hashed)
        if row is None:
            return None
        if row.disabled or row.expires_at <= iso(self.clock()):
            self.store.delete_session(hashed)
            return None
        return Session(row.user, row.role, row.csrf_token, hashed, row.expires_at)

    def sign_out(self, session: Session, address: str | None) -> None:
        self.store.delete_session(session.token_hash)
        self.store.audit("sign_out", user=session.user, address=address, at=self.clock())
